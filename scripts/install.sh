#!/usr/bin/env bash
# Builds the provider and installs it into Terraform's implied local mirror, so that a
# configuration with `source = "immutable-infra/immutable"` passes `terraform init` without
# dev_overrides:
#   $PLUGIN_DIR/registry.terraform.io/immutable-infra/immutable/VERSION/OS_ARCH/terraform-provider-immutable_vVERSION
# Usage: scripts/install.sh                      (make install)
#   PLUGIN_DIR=DIR   install under DIR instead of ~/.terraform.d/plugins (e.g. a working
#                    directory's ./terraform.d/plugins, also an implied mirror)
#   PROFILE=debug    install a debug build (default: release)
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PROFILE="${PROFILE:-release}"
PLUGIN_DIR="${PLUGIN_DIR:-$HOME/.terraform.d/plugins}"

version="$(crate_version)"
platform="$(os_arch)"
echo "install.sh: building terraform-provider-immutable $version ($PROFILE)"
binary="$(build_provider "$PROFILE")"

dir="$PLUGIN_DIR/registry.terraform.io/immutable-infra/immutable/$version/$platform"
dest="$dir/terraform-provider-immutable_v$version"
mkdir -p "$dir" || die "cannot create $dir: choose another PLUGIN_DIR"
# Copy then rename: a provider running from the old file keeps running.
{ install -m 0755 "$binary" "$dest.tmp" && mv -f "$dest.tmp" "$dest"; } || die "cannot write $dest"
echo "install.sh: installed $dest"
cat <<EOF
install.sh: use it with
  terraform {
    required_providers {
      immutable = { source = "immutable-infra/immutable", version = "$version" }
    }
  }
install.sh: Terraform looks in ~/.terraform.d/plugins and ./terraform.d/plugins only when the CLI
            config has no provider_installation block; with one, add a filesystem_mirror for this dir.
            Where a .terraform.lock.hcl recorded an earlier build of $version, run terraform init -upgrade.
EOF
