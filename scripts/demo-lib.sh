# shellcheck shell=bash
# Sourced by scripts/demo.sh and scripts/demo-haproxy.sh after lib.sh: timing and output
# helpers, and a cleanup that stops what the demo started however it ends.
#   demo_init NAME STOPPED   NAME prefixes the demo's lines (demo.sh); STOPPED is said once
#                            everything in "pids" is stopped.
# The demo appends the PIDs it starts to "pids" and may set "work" to a directory removed at
# the end (kept with DEMO_KEEP=1). The traps write to fds 3 and 4 (the script's stdout and
# stderr): they can run while a command's output goes to a log (Terraform's, after it
# handled a Ctrl-C).

started_at="${EPOCHREALTIME:-$(date +%s)}"
now() { echo "${EPOCHREALTIME:-$(date +%s.%N)}"; }
secs() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
header() { printf '\n=== %s ===\n' "$*"; }

# Started detached (own session) where setsid exists, so a Ctrl-C reaches only the script.
detached=()
command -v setsid >/dev/null && detached=(setsid)

# start_app VERSION: a test app from "$bin_dir" on a free loopback port, recorded in
# app_port[VERSION] and in "pids".
declare -A app_port
start_app() {
  local version="$1" out="$work/app-$1.out" port="" pid
  : >"$out"
  "${detached[@]}" "$bin_dir/test-app" --version "$version" --port 0 >"$out" 2>&1 </dev/null 3>&- 4>&- &
  pid=$!
  pids+=("$pid")
  for _ in {1..100}; do
    port="$(sed -n 's#^listening http://127.0.0.1:##p' "$out" || true)"
    [[ -n "$port" ]] && break
    kill -0 "$pid" 2>/dev/null || die "test-app $version did not start: $(tail -1 "$out")"
    sleep 0.05
  done
  [[ -n "$port" ]] || die "test-app $version did not report its port within 5 s"
  app_port[$version]="$port"
  say "app $version on http://127.0.0.1:$port (GET /health answers {\"version\":\"$version\",\"status\":\"ok\"})"
}

demo_init() {
  DEMO_NAME="$1" DEMO_STOPPED="$2"
  exec 3>&1 4>&2
  pids=()
  work=""
  trap demo_cleanup EXIT
  trap 'echo "$DEMO_NAME: error: unexpected failure (status $?) at scripts/$DEMO_NAME line $LINENO" >&4' ERR
  trap '{ echo; say "interrupted"; } >&3; exit 130' INT
  trap 'say "terminated" >&3; exit 143' TERM
}

say() { echo "$DEMO_NAME: $*"; }

demo_cleanup() {
  local status=$?
  trap - EXIT INT TERM
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [[ -n "$work" && -d "$work" ]]; then
    if [[ -n "${DEMO_KEEP:-}" ]]; then say "kept $work" >&3; else rm -rf "$work"; fi
  fi
  ((${#pids[@]} == 0)) || say "$DEMO_STOPPED" >&3
  exit "$status"
}
