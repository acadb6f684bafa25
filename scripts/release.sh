#!/usr/bin/env bash
# Builds the release artifacts in dist/ (gitignored), in the layout the Terraform Registry and
# `terraform providers mirror` use:
#   terraform-provider-immutable_VERSION_OS_ARCH.zip     the binary terraform-provider-immutable_vVERSION
#   terraform-provider-immutable_VERSION_manifest.json   the plugin protocols it speaks
#   terraform-provider-immutable_VERSION_SHA256SUMS      sha256sum format, over the two above
# Usage: scripts/release.sh   (make release). Signing (the _SHA256SUMS.sig) is left to CI.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

version="$(crate_version)"
platform="$(os_arch)"
name="terraform-provider-immutable_$version"
dist="$ROOT/dist"

echo "release.sh: building terraform-provider-immutable $version (release, $platform)"
(cd "$ROOT" && cargo build --locked --release -p terraform-provider-immutable --bin terraform-provider-immutable) ||
  die "cargo build --release failed (see above)"
binary="$(target_dir)/release/terraform-provider-immutable"
[[ -x "$binary" ]] || die "$binary is missing after cargo build"

mkdir -p "$dist"
rm -f "$dist/${name}_"*
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
install -m 0755 "$binary" "$stage/terraform-provider-immutable_v$version"

zip_file="$dist/${name}_${platform}.zip"
if command -v zip >/dev/null; then
  (cd "$stage" && zip -q -X "$zip_file" "terraform-provider-immutable_v$version")
else
  command -v python3 >/dev/null || die "neither zip nor python3 found: install one (e.g. apt-get install zip)"
  python3 - "$stage/terraform-provider-immutable_v$version" "$zip_file" <<'EOF'
import os, sys, zipfile
src, dest = sys.argv[1], sys.argv[2]
info = zipfile.ZipInfo.from_file(src, os.path.basename(src))
info.compress_type = zipfile.ZIP_DEFLATED
info.external_attr = (0o100755 << 16)  # a regular, executable file once unpacked
with open(src, "rb") as f, zipfile.ZipFile(dest, "w") as z:
    z.writestr(info, f.read())
EOF
fi

printf '%s' '{"version":1,"metadata":{"protocol_versions":["6.0","5.0"]}}' >"$dist/${name}_manifest.json"
(cd "$dist" && sha256sum "${name}_"*.zip "${name}_manifest.json" >"${name}_SHA256SUMS")

echo "release.sh: wrote dist/:"
for file in "$dist/${name}_"*; do printf '  %10s  %s\n' "$(wc -c <"$file")" "$(basename "$file")"; done
