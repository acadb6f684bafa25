#!/usr/bin/env bash
# Builds the release artifacts in dist/ (gitignored), in the layout the Terraform Registry takes:
#   terraform-provider-immutable_VERSION_OS_ARCH.zip        the binary terraform-provider-immutable_vVERSION
#   terraform-provider-immutable_VERSION_manifest.json      the plugin protocols it speaks
#   terraform-provider-immutable_VERSION_SHA256SUMS         sha256sum format, over the two above
#   terraform-provider-immutable_VERSION_SHA256SUMS.sig     its detached GnuPG signature (binary), with GPG_FINGERPRINT
# and, as `terraform providers mirror` writes it, a provider network mirror to serve as static
# files over https (`provider_installation { network_mirror { url = "https://HOST/" } }`):
#   mirror/registry.terraform.io/immutable-infra/immutable/
#     *.zip          a copy of each zip (those of earlier releases left here are kept)
#     index.json     the versions of the zips here
#     VERSION.json   their platforms: each zip's relative URL, h1: and zh: hashes
# Usage: scripts/release.sh   (make release)
#   GPG_FINGERPRINT=KEY   sign the sums with this secret key (of GNUPGHOME, else ~/.gnupg)
#   PROFILE=debug         package a debug build, for tests (default: release)
#   DIST=DIR              write into DIR instead of dist/
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PROFILE="${PROFILE:-release}"
GPG_FINGERPRINT="${GPG_FINGERPRINT:-}"
dist="${DIST:-$ROOT/dist}"
version="$(crate_version)"
platform="$(os_arch)"
name="terraform-provider-immutable_$version"
mirror="$dist/mirror/registry.terraform.io/immutable-infra/immutable"

# Before the build: a signature that cannot be made fails now, not after minutes of building.
if [[ -n "$GPG_FINGERPRINT" ]]; then
  command -v gpg >/dev/null || die "GPG_FINGERPRINT is set but gpg is not installed: install GnuPG (e.g. apt-get install gnupg)"
  gpg --batch --list-secret-keys -- "$GPG_FINGERPRINT" >/dev/null 2>&1 ||
    die "no secret key $GPG_FINGERPRINT in ${GNUPGHOME:-$HOME/.gnupg}: import it (gpg --import), or set GNUPGHOME to the keyring that has it"
fi

echo "release.sh: building terraform-provider-immutable $version ($PROFILE, $platform)"
binary="$(build_provider "$PROFILE")"

mkdir -p "$dist" "$mirror" || die "cannot create $mirror: choose another DIST"
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

if [[ -n "$GPG_FINGERPRINT" ]]; then
  gpg --batch --yes --local-user "$GPG_FINGERPRINT" --output "$dist/${name}_SHA256SUMS.sig" \
    --detach-sign "$dist/${name}_SHA256SUMS" ||
    die "gpg could not sign with $GPG_FINGERPRINT (see above; a key with a passphrase needs a gpg-agent that can ask for it)"
  echo "release.sh: signed ${name}_SHA256SUMS with $GPG_FINGERPRINT"
else
  echo "release.sh: ${name}_SHA256SUMS is unsigned: a registry requires its .sig (set GPG_FINGERPRINT=KEY to sign)"
fi

cp -f "$zip_file" "$mirror/"
# The mirror protocol's JSON, from the zips in the mirror. h1: is Terraform's hash of a provider
# package (its "dirhash" of the unpacked files: the sha256 of sorted "SHA256  PATH" lines), the
# one `terraform init` computes and records in .terraform.lock.hcl; zh: is the zip's sha256.
python3 - "$mirror" <<'EOF' || die "writing the mirror's index failed (see above)"
import base64, hashlib, json, os, re, sys, zipfile
mirror = sys.argv[1]
zip_name = re.compile(r"terraform-provider-immutable_(?P<version>[^_]+)_(?P<platform>[a-z0-9]+_[a-z0-9]+)\.zip")
versions = {}
for name in sorted(os.listdir(mirror)):
    match = zip_name.fullmatch(name)
    if not match:
        continue
    path = os.path.join(mirror, name)
    with open(path, "rb") as f:
        zh = hashlib.sha256(f.read()).hexdigest()
    with zipfile.ZipFile(path) as z:
        files = sorted((i for i in z.infolist() if not i.is_dir()), key=lambda i: i.filename)
        summary = "".join(f"{hashlib.sha256(z.read(i)).hexdigest()}  {i.filename}\n" for i in files)
    h1 = base64.b64encode(hashlib.sha256(summary.encode()).digest()).decode()
    versions.setdefault(match["version"], {})[match["platform"]] = {"url": name, "hashes": [f"h1:{h1}", f"zh:{zh}"]}
for version, archives in versions.items():
    with open(os.path.join(mirror, f"{version}.json"), "w") as f:
        json.dump({"archives": archives}, f, indent=2, sort_keys=True)
with open(os.path.join(mirror, "index.json"), "w") as f:
    json.dump({"versions": {v: {} for v in versions}}, f, indent=2, sort_keys=True)
EOF

echo "release.sh: wrote $dist/:"
for file in "$dist/${name}_"* "$mirror/"*; do
  printf '  %10s  %s\n' "$(wc -c <"$file")" "${file#"$dist/"}"
done
