# shellcheck shell=bash
# Sourced (not run) by scripts/demo.sh, install.sh and release.sh.
# Sets ROOT, and defines die, crate_version, target_dir, build_provider and os_arch.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

die() { echo "$(basename "$0"): error: $*" >&2; exit 1; }

# The provider crate's metadata field ("version", or "target_directory" of the workspace), as
# `cargo metadata` reports it.
cargo_field() {
  command -v cargo >/dev/null || die "cargo not found: install Rust (https://rustup.rs), then rerun"
  command -v python3 >/dev/null || die "python3 not found: install Python 3 (e.g. apt-get install python3)"
  (cd "$ROOT" && cargo metadata --no-deps --format-version 1 --locked) | python3 -c '
import json, sys
meta = json.load(sys.stdin)
if sys.argv[1] == "target_directory":
    print(meta["target_directory"])
else:
    print(next(p for p in meta["packages"] if p["name"] == "terraform-provider-immutable")["version"])
' "$1" || die "cargo metadata failed (run it in $ROOT to see why)"
}

crate_version() { cargo_field version; }
target_dir() { cargo_field target_directory; }

# Builds the provider binary with a PROFILE ($1: release or debug) and prints its path.
build_provider() {
  local flags=()
  case "$1" in
    release) flags=(--release) ;;
    debug) ;;
    *) die "PROFILE=$1: use PROFILE=release (the default) or PROFILE=debug" ;;
  esac
  (cd "$ROOT" && cargo build --locked "${flags[@]}" -p terraform-provider-immutable --bin terraform-provider-immutable) >&2 ||
    die "cargo build failed (see above)"
  local binary
  binary="$(target_dir)/$1/terraform-provider-immutable"
  [[ -x "$binary" ]] || die "$binary is missing after cargo build"
  echo "$binary"
}

# Terraform's name for this machine's platform: linux_amd64, darwin_arm64, ...
os_arch() {
  local os arch
  case "$(uname -s)" in
    Linux) os=linux ;;
    Darwin) os=darwin ;;
    FreeBSD) os=freebsd ;;
    OpenBSD) os=openbsd ;;
    *) die "unsupported OS $(uname -s): Terraform providers are built for linux, darwin, freebsd and openbsd" ;;
  esac
  case "$(uname -m)" in
    x86_64 | amd64) arch=amd64 ;;
    aarch64 | arm64) arch=arm64 ;;
    i386 | i686) arch=386 ;;
    armv6l | armv7l) arch=arm ;;
    *) die "unsupported CPU $(uname -m): Terraform providers are built for amd64, arm64, 386 and arm" ;;
  esac
  echo "${os}_${arch}"
}
