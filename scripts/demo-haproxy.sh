#!/usr/bin/env bash
# make demo-haproxy: the four releases of `make demo` (v1, v2, a broken v3, a rollback to v1) on
# a real HAProxy, under load, end to end on this machine.
#
# Everything runs on loopback and goes away at the end (also on failure or Ctrl-C): HAProxy
# (Debian's, installed by scripts/tools.sh) with a stats socket at level admin, a frontend on a
# free port and a backend "web" with its checks and no servers; three instances of the test app
# (acceptance-tests) play the releases v1, v2 and a broken v3. Terraform drives
# immutable_haproxy_deployment through the Runtime API: v1 lands on blue, v2 on green through
# a canary step, v3 fails its health gate (traffic never moves) and a rollback puts v1 back
# (still warm, within rollback_window: all at once, in about a second).
# During each apply a strict client (Python's http.client, a fresh connection per request, no
# retries) sends ~80 requests a second through the frontend; after each step it prints who
# served them and how many failed, and the servers and weights HAProxy reports (show stat).
#
# Environment (all optional):
#   TERRAFORM=path      the Terraform CLI (default: terraform on PATH, else .tools/terraform-1.15.5)
#   HAPROXY=path        the HAProxy executable (default: haproxy on PATH, else /usr/sbin/haproxy)
#   DEMO_RATE=N         requests per second of the load during each apply (default: 80)
#   DEMO_KEEP=1         keep the working directory and the logs (its path is printed)
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

# shellcheck source=scripts/demo-lib.sh
source "$ROOT/scripts/demo-lib.sh"
demo_init demo-haproxy.sh "stopped HAProxy, the apps and the load"

# --- Tools -----------------------------------------------------------------------------------
header "0/4 Setup: build, tools, HAProxy, apps"
command -v cargo >/dev/null || die "cargo not found: install Rust from https://rustup.rs, then rerun make demo-haproxy"
bash scripts/tools.sh install || exit 1 # it says what to do when python3, pip or the network is missing
PY="$ROOT/.venv/bin/python"
HAPROXY="${HAPROXY:-$(command -v haproxy || echo /usr/sbin/haproxy)}"
[[ -x "$HAPROXY" ]] || die "haproxy not found: run bash scripts/tools.sh install (Debian's haproxy), or set HAPROXY=path"
rate="${DEMO_RATE:-80}"
[[ "$rate" =~ ^[1-9][0-9]*$ ]] || die "DEMO_RATE=$rate: not a positive number"

work="$(mktemp -d "${TMPDIR:-/tmp}/immutable-demo-haproxy.XXXXXX")"
export TF_CLI_CONFIG_FILE="$work/cli.tfrc" CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1 TF_INPUT=0
export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}" no_proxy="127.0.0.1,localhost${no_proxy:+,$no_proxy}"
unset TF_LOG TF_LOG_PROVIDER TF_DATA_DIR TF_WORKSPACE

TERRAFORM="${TERRAFORM:-$(command -v terraform || echo "$ROOT/.tools/terraform-1.15.5/terraform")}"
tf_version="$("$TERRAFORM" version </dev/null 2>/dev/null | sed -n '1s/^Terraform v//p' || true)"
[[ -n "$tf_version" ]] ||
  die "$TERRAFORM does not run ('terraform version' failed): fix it, or set TERRAFORM=$ROOT/.tools/terraform-1.15.5/terraform"
((${tf_version%%.*} >= 1)) ||
  die "Terraform $tf_version ($TERRAFORM) is too old: the provider needs 1.0 or later"
say "terraform $tf_version ($TERRAFORM), $("$HAPROXY" -v 2>/dev/null | head -1 | cut -d' ' -f1-3) ($HAPROXY)"

say "building the provider and the test app (cargo build)"
cargo build --locked -p terraform-provider-immutable -p acceptance-tests \
  --bin terraform-provider-immutable --bin test-app || die "cargo build failed (see above)"
# Links (or copies) of the binaries just built, in a directory of the demo's own: dev_overrides
# finds only the provider there, and a cargo build during the demo changes nothing under it.
built="$(target_dir)/debug" bin_dir="$work/bin"
mkdir "$bin_dir"
for bin in terraform-provider-immutable test-app; do
  ln "$built/$bin" "$bin_dir/$bin" 2>/dev/null || cp "$built/$bin" "$bin_dir/$bin" ||
    die "cannot copy $built/$bin into $bin_dir"
done

# --- Helpers in Python: the Runtime API and the load ---------------------------------------------
# haproxy.py SOCKET info|stat: `show info` (readiness) or the backend's servers from `show stat`.
cat >"$work/haproxy.py" <<'PY'
import csv, socket, sys

def command(path, line):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(path)
    s.sendall(line.encode() + b"\n")
    out = b""
    while chunk := s.recv(65536):
        out += chunk
    s.close()
    return out.decode()

def servers(path, backend="web"):
    text = command(path, "show stat").lstrip("# ")
    return [r for r in csv.DictReader(text.splitlines())
            if r["pxname"] == backend and r["svname"] not in ("BACKEND", "FRONTEND")]

if __name__ == "__main__":
    path, what = sys.argv[1], sys.argv[2]
    if what == "info":
        print(command(path, "show info").splitlines()[0])
    else:
        rows = servers(path)
        if not rows:
            print("    (no server in backend web)")
        for r in rows:
            print(f"    web/{r['svname']:<8} {r['addr']:<16} {r['status']:<8} weight {r['weight']:>3}"
                  f"   check {r['check_status'] or '-'}{' ' + r['check_code'] if r['check_code'] else ''}")
PY

# load.py URL SOCKET RATE [first]: requests until SIGTERM, then one summary. Strict: a fresh
# connection per request, no retry; anything but a 200 with a version is a failure. With
# "first" (no release yet), the 503s HAProxy answers before the first release served are
# counted apart. It also polls the servers' weights and prints each split it saw.
cat >"$work/load.py" <<'PY'
import http.client, json, signal, sys, threading, time
from collections import Counter
sys.path.insert(0, sys.argv[0].rsplit("/", 1)[0])
import haproxy

url, sock, rate, first = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4:] == ["first"]
host, port = url.split("//")[1].split(":")
port = int(port.rstrip("/"))
workers = 4
stop = threading.Event()
lock = threading.Lock()
served, failed, before = Counter(), Counter(), 0
seen_ok = threading.Event()

def worker(offset):
    global before
    period = workers / rate
    t = time.monotonic() + offset * period / workers
    while not stop.is_set():
        delay = t - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        t += period
        version, reason = None, None
        try:
            c = http.client.HTTPConnection(host, port, timeout=3)
            c.request("GET", "/")
            r = c.getresponse()
            body = r.read()
            c.close()
            if r.status == 200:
                version = json.loads(body)["version"]
            else:
                reason = f"HTTP {r.status}"
        except Exception as e:  # every failure counts: no retry
            reason = type(e).__name__
        with lock:
            if version:
                served[version] += 1
                seen_ok.set()
            elif first and not seen_ok.is_set() and reason == "HTTP 503":
                before += 1
            else:
                failed[reason] += 1

splits = []
def watch():
    while not stop.is_set():
        try:
            w = Counter()
            for r in haproxy.servers(sock):
                w[r["svname"].split("_")[0]] += int(r["weight"] or 0)
            split = f"blue {w['blue']} / green {w['green']}"
            if not splits or splits[-1] != split:
                splits.append(split)
        except OSError:
            pass
        time.sleep(0.05)

signal.signal(signal.SIGTERM, lambda *_: stop.set())
threads = [threading.Thread(target=worker, args=(i,)) for i in range(workers)]
threads.append(threading.Thread(target=watch))
for th in threads:
    th.start()
started = time.monotonic()
while not stop.wait(0.1):
    pass
for th in threads:
    th.join()
took = time.monotonic() - started
total = sum(served.values()) + sum(failed.values()) + before
line = "served: " + (", ".join(f"{v} x{n}" for v, n in sorted(served.items())) or "none")
line += f"; failed: {sum(failed.values())}"
if failed:
    line += " (" + ", ".join(f"{r} x{n}" for r, n in failed.most_common()) + ")"
print(f"    load: {total} requests in {took:.1f} s ({total / max(took, 0.001):.0f}/s)")
print(f"    {line}")
if before:
    print(f"    (and {before} answered 503 before the first release was live: the backend had no server yet)")
print("    weights HAProxy reported during the apply (sum per colour): " + " -> ".join(splits))
PY

# --- The releases: test apps on loopback -------------------------------------------------------
start_app v1
start_app v2
start_app v3

# --- HAProxy -------------------------------------------------------------------------------------
fe_port="$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
sock="$work/admin.sock"
cat >"$work/haproxy.cfg" <<EOF
global
    stats socket $sock mode 600 level admin
    hard-stop-after 5s

defaults
    mode http
    timeout connect 1s
    timeout client 10s
    timeout server 10s
    timeout check 1s
    option idle-close-on-response

frontend fe
    bind 127.0.0.1:$fe_port
    default_backend web

# The backend the deployment owns: a dynamic algorithm, its checks, and no servers.
backend web
    balance roundrobin
    option httpchk GET /health
EOF
"$HAPROXY" -c -q -f "$work/haproxy.cfg" >"$work/haproxy-check.log" 2>&1 ||
  die "HAProxy refused the config: $(tail -3 "$work/haproxy-check.log")"
"${detached[@]}" "$HAPROXY" -W -f "$work/haproxy.cfg" >"$work/haproxy.log" 2>&1 </dev/null 3>&- 4>&- &
haproxy_pid=$!
pids+=("$haproxy_pid")
for _ in {1..100}; do
  "$PY" "$work/haproxy.py" "$sock" info >/dev/null 2>&1 && break
  kill -0 "$haproxy_pid" 2>/dev/null || die "haproxy exited at start: $(tail -2 "$work/haproxy.log")"
  sleep 0.05
done
"$PY" "$work/haproxy.py" "$sock" info >/dev/null 2>&1 || die "HAProxy did not answer on $sock within 5 s (see $work/haproxy.log, DEMO_KEEP=1 keeps it)"
frontend="http://127.0.0.1:$fe_port"
say "HAProxy (master-worker) on $frontend, Runtime API unix://$sock (level admin); backend web has no server:"
sed -n '/^backend/,$p' "$work/haproxy.cfg" | sed 's/^/    /'

# --- The configuration ---------------------------------------------------------------------------
cat >"$work/cli.tfrc" <<EOF
provider_installation {
  dev_overrides {
    "immutable-infra/immutable" = "$bin_dir"
  }
  direct {}
}
EOF
cat >"$work/main.tf" <<EOF
terraform {
  required_providers {
    immutable = { source = "immutable-infra/immutable" }
  }
}

provider "immutable" {}

variable "release" { type = string }
variable "app_port" { type = number }
# The first release goes all at once: a canary step needs a live colour to split with.
variable "canary" { type = bool }

resource "immutable_haproxy_deployment" "web" {
  runtime_api = "unix://$sock"
  backend     = "web"
  release     = var.release
  targets     = [{ id = "127.0.0.1", port = var.app_port }]

  health_check {
    path                = "/health"
    healthy_threshold   = 3
    unhealthy_threshold = 3
    interval            = "250ms"
    request_timeout     = "1s"
  }

  dynamic "traffic" {
    for_each = var.canary ? [1] : []
    content {
      strategy       = "canary"
      canary_percent = 20
      step_interval  = "3s"
    }
  }

  # A rollback to the colour that served until less than this long ago skips the traffic steps.
  rollback_window = "1h"

  timeouts {
    create = "30s"
    update = "30s"
  }
}
EOF
say "Terraform config: $work/main.tf (the resource block:)"
sed -n '/^resource/,/^}/p' "$work/main.tf" | sed 's/^/    /'

tf() { (cd "$work" && "$TERRAFORM" "$@"); }

state() {
  tf show -json -no-color | "$PY" -c '
import json, sys
resources = json.load(sys.stdin)["values"]["root_module"]["resources"]
print(sys.argv[1].format(**[r for r in resources if r["type"] == "immutable_haproxy_deployment"][0]["values"]))' "$1"
}
read_state() {
  read -r active serving <<<"$(state '{active_color} {active_color} serves {active_release}')"
}

load_pid=""
load_start() {
  : >"$work/load.out"
  "$PY" "$work/load.py" "$frontend" "$sock" "$rate" "$@" >"$work/load.out" 2>&1 </dev/null 3>&- 4>&- &
  load_pid=$!
  pids+=("$load_pid")
  sleep 0.3 # a few requests before the apply starts
}
load_stop() {
  [[ -n "$load_pid" ]] || return 0
  sleep 0.3 # and a few after it ended
  kill -TERM "$load_pid" 2>/dev/null || true
  wait "$load_pid" 2>/dev/null || true
  local pid rest=()
  for pid in "${pids[@]}"; do [[ "$pid" == "$load_pid" ]] || rest+=("$pid"); done
  pids=("${rest[@]}")
  load_pid=""
  cat "$work/load.out"
  load_failed="$(sed -n 's/.*; failed: \([0-9]*\).*/\1/p' "$work/load.out")"
}

# plan + apply for one release under load; returns apply's status, its time in $apply_secs.
release() {
  local version="$1" port="${app_port[$1]}" t status=0 canary=true
  shift
  [[ "${1:-}" != first ]] || canary=false
  local vars=(-var "release=$version" -var "app_port=$port" -var "canary=$canary")
  echo "  \$ terraform apply -var release=$version -var app_port=$port -var canary=$canary   (under load: ~$rate req/s through $frontend)"
  if ! tf plan -no-color -input=false -out=tfplan "${vars[@]}" >"$work/plan.log" 2>&1; then
    cat "$work/plan.log"
    die "terraform plan failed (output above)"
  fi
  load_start "$@"
  t="$(now)"
  tf apply -no-color -input=false -auto-approve tfplan >"$work/apply.log" 2>&1 || status=$?
  apply_secs="$(secs "$t")"
  load_stop
  return "$status"
}
applied() {
  read_state
  echo "    $(grep -m1 '^Apply complete' "$work/apply.log") (${apply_secs} s): $serving"
}
show_haproxy() {
  echo "    HAProxy's backend web now (show stat):"
  "$PY" "$work/haproxy.py" "$sock" stat
}
# An apply that failed: Terraform's output, then why. A Ctrl-C reaches Terraform, which stops
# gracefully (traffic back where it was) and exits 1, so bash never runs the INT trap: tell it here.
apply_failed() {
  cat "$work/apply.log"
  if grep -q '^Interrupted' "$work/apply.log"; then say "interrupted"; exit 130; fi
  die "$1 failed (output above)"
}
healthy_step() {
  ((${load_failed:-1} == 0)) || die "$1: $load_failed requests failed under load (see above)"
}

# --- 1. v1 ---------------------------------------------------------------------------------------
header "1/4 Release v1: the first release lands on blue"
release v1 first || apply_failed "releasing v1"
applied
healthy_step "release v1"
summary=("1. v1          -> $serving; failed: $load_failed")
show_haproxy

# --- 2. v2 ---------------------------------------------------------------------------------------
header "2/4 Release v2: lands on green, gated, then a canary step (20%) and the rest after 3 s"
before="$active"
release v2 || apply_failed "releasing v2"
applied
[[ "$active" != "$before" ]] || die "v2 did not flip the colour: $before still serves"
healthy_step "release v2"
summary+=("2. v2          -> $serving; failed: $load_failed")
show_haproxy

# --- 3. broken v3 --------------------------------------------------------------------------------
header "3/4 Release v3, broken: fails its health gate, traffic stays on v2"
"$PY" - "http://127.0.0.1:${app_port[v3]}/_control/behavior" "failing 503" <<'PY' ||
import sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
opener.open(urllib.request.Request(sys.argv[1], data=sys.argv[2].encode(), method="POST"), timeout=5)
PY
  die "could not switch app v3 to failing through its control endpoint"
say "app v3 now answers 503 on every path (POST /_control/behavior 'failing 503')"
before="$active"
if release v3; then
  cat "$work/apply.log"
  die "releasing the broken v3 succeeded, but its health gate should have failed"
elif grep -q '^Interrupted' "$work/apply.log"; then
  apply_failed "releasing v3"
fi
grep -qi 'traffic was not moved\|was not deployed to' "$work/apply.log" || {
  cat "$work/apply.log"
  die "releasing the broken v3 failed, but not at its health gate (output above)"
}
echo "    apply failed, as it should, after ${apply_secs} s:"
sed -n '/Error: /,/^╵/p' "$work/apply.log" | sed -E 's/^(│|╷|╵) ?//' |
  grep -vE '^ *$|^ *(with |on main\.tf|[0-9]+: )' | head -8 | sed 's/^/      /'
read_state
[[ "$active" == "$before" ]] || die "after the failed v3, $active serves instead of $before"
healthy_step "the failed release v3"
summary+=("3. v3 (broken) -> gate failed in ${apply_secs} s; $serving, traffic never moved; failed: $load_failed")
show_haproxy

# --- 4. rollback ---------------------------------------------------------------------------------
header "4/4 Rollback to v1: set release back to v1"
before="$active"
standby="$(state '{standby_color}')"
held="$(state "{${standby}_release}")"
if [[ "$held" == v1 ]]; then
  say "$standby still holds v1 (kept warm, served less than rollback_window ago): one check, then all traffic at once"
else
  say "$standby holds $held now (the failed release landed there), so v1 is added there again, gated, then shifted"
fi
release v1 || apply_failed "rolling back to v1"
applied
[[ "$active" != "$before" ]] || die "the rollback did not flip the colour: $before still serves"
healthy_step "the rollback to v1"
summary+=("4. rollback    -> $serving in ${apply_secs} s; failed: $load_failed")
show_haproxy

header "Done in $(secs "$started_at") s"
printf '  %s\n' "${summary[@]}"
