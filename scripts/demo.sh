#!/usr/bin/env bash
# make demo: a blue/green release, a failed release and a rollback, end to end on this machine.
#
# Everything runs on loopback and goes away at the end (also on failure or Ctrl-C): the ALB
# emulator (acceptance-tests' alb-emulator, with moto_server behind it as the store of record)
# plays ELBv2 as AWS behaves: it health-checks the registered targets for real, validates and
# throttles requests as AWS does, and routes requests through a data-plane port per listener.
# boto3 (from .venv) creates an application load balancer with a listener that answers a fixed
# 503 and two colour target groups; three instances of the test app (acceptance-tests) play the
# releases v1, v2 and a broken v3. Terraform drives immutable_bluegreen_deployment through four
# releases: v1, v2 (the colour flips), v3 (fails its health gate, traffic stays) and a rollback
# to v1. During each apply, what the load balancer reports for the release's target group (and
# the provider's temporary warm-up rule, when it needs one) is printed as it changes; after
# each, the listener's weights, the releases held, the targets' health and who answers 20
# requests sent through the listener.
#
# Environment (all optional):
#   TERRAFORM=path      the Terraform CLI (default: terraform on PATH, else .tools/terraform-1.15.5)
#   MOTO_PORT=N         moto's port (default: a free one)
#   EMULATOR_PORT=N     the ALB emulator's port, the ELBv2 endpoint (default: a free one)
#   DEMO_KEEP=1         keep the Terraform working directory and the logs (its path is printed)
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

# shellcheck source=scripts/demo-lib.sh
source "$ROOT/scripts/demo-lib.sh"
demo_init demo.sh "stopped moto, the ALB emulator and the apps"

# --- Tools -----------------------------------------------------------------------------------
header "0/4 Setup: build, tools, moto, the ALB emulator, apps, load balancer"
command -v cargo >/dev/null || die "cargo not found: install Rust from https://rustup.rs, then rerun make demo"
bash scripts/tools.sh install || exit 1 # it says what to do when python3, pip or the network is missing
PY="$ROOT/.venv/bin/python"

work="$(mktemp -d "${TMPDIR:-/tmp}/immutable-demo.XXXXXX")"
# Terraform: the demo's own CLI config (dev_overrides: this build, no registry, no init) and
# no update checks. AWS: fake credentials for moto, nothing from the machine's profiles.
export TF_CLI_CONFIG_FILE="$work/cli.tfrc" CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1 TF_INPUT=0
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE="$work/none" AWS_SHARED_CREDENTIALS_FILE="$work/none"
export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}" no_proxy="127.0.0.1,localhost${no_proxy:+,$no_proxy}"
unset TF_LOG TF_LOG_PROVIDER TF_DATA_DIR TF_WORKSPACE

TERRAFORM="${TERRAFORM:-$(command -v terraform || echo "$ROOT/.tools/terraform-1.15.5/terraform")}"
tf_version="$("$TERRAFORM" version </dev/null 2>/dev/null | sed -n '1s/^Terraform v//p' || true)"
[[ -n "$tf_version" ]] ||
  die "$TERRAFORM does not run ('terraform version' failed): fix it, or set TERRAFORM=$ROOT/.tools/terraform-1.15.5/terraform"
((${tf_version%%.*} >= 1)) ||
  die "Terraform $tf_version ($TERRAFORM) is too old: the provider needs 1.0 or later; upgrade it, or set TERRAFORM=$ROOT/.tools/terraform-1.15.5/terraform"
say "terraform $tf_version ($TERRAFORM)"

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port_in_use() { die "port $1 is in use: stop what listens on it, or choose another with $2=N (or unset $2)"; }
for var in MOTO_PORT EMULATOR_PORT; do
  if [[ -n "${!var:-}" ]]; then
    [[ "${!var}" =~ ^[0-9]+$ ]] || die "$var=${!var}: not a port number"
    listening "${!var}" && port_in_use "${!var}" "$var"
  fi
done

say "building the provider, the test app and the ALB emulator (cargo build)"
cargo build --locked -p terraform-provider-immutable -p acceptance-tests \
  --bin terraform-provider-immutable --bin test-app --bin alb-emulator || die "cargo build failed (see above)"
# The demo runs links (copies where links cannot be made) of the binaries just built, in a
# directory of its own: a cargo build during the demo then changes nothing under it, and
# Terraform's dev_overrides finds only the provider there.
built="$(target_dir)/debug" bin_dir="$work/bin"
mkdir "$bin_dir"
for bin in terraform-provider-immutable test-app alb-emulator; do
  ln "$built/$bin" "$bin_dir/$bin" 2>/dev/null || cp "$built/$bin" "$bin_dir/$bin" ||
    die "cannot copy $built/$bin into $bin_dir"
done

# --- moto ------------------------------------------------------------------------------------
moto_port="${MOTO_PORT:-$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
# moto, the emulator and the apps run in sessions of their own, so that a Ctrl-C reaches only
# this script and Terraform: Terraform then stops gracefully against a live load balancer, and
# cleanup stops them.
: >"$work/moto.log"
"${detached[@]}" "$ROOT/.venv/bin/moto_server" -H 127.0.0.1 -p "$moto_port" >"$work/moto.log" 2>&1 </dev/null 3>&- 4>&- &
moto_pid=$!
pids+=("$moto_pid")
for _ in {1..150}; do
  grep -q "Running on" "$work/moto.log" && listening "$moto_port" && break
  if ! kill -0 "$moto_pid" 2>/dev/null; then
    grep -qi 'in use' "$work/moto.log" && port_in_use "$moto_port" MOTO_PORT
    die "moto_server exited at start: $(tail -1 "$work/moto.log") (rerun scripts/tools.sh, or remove .venv and rerun)"
  fi
  sleep 0.1
done
listening "$moto_port" || die "moto_server did not listen on 127.0.0.1:$moto_port within 15 s (see $work/moto.log, DEMO_KEEP=1 keeps it)"
moto_endpoint="http://127.0.0.1:$moto_port"
say "moto (the store of record behind the emulator) on $moto_endpoint"

# Waits for a line of a process's output file matching a sed -n pattern; prints what it captured.
wait_line() {
  local out="$1" pattern="$2" pid="$3" what="$4" tries="${5:-100}" found="" i
  for ((i = 0; i < tries; i++)); do
    found="$(sed -n "$pattern" "$out" | head -1)"
    [[ -n "$found" ]] && break
    kill -0 "$pid" 2>/dev/null || die "$what exited: $(tail -1 "$out")"
    sleep 0.05
  done
  [[ -n "$found" ]] || die "$what: nothing after $((tries / 20)) s (see $out, DEMO_KEEP=1 keeps it)"
  echo "$found"
}

# --- The ALB emulator, in front of moto: the ELBv2 endpoint of boto3 and the provider ----------
emu_out="$work/alb-emulator.out"
: >"$emu_out"
"${detached[@]}" "$bin_dir/alb-emulator" --moto "$moto_endpoint" --port "${EMULATOR_PORT:-0}" \
  >"$emu_out" 2>"$work/alb-emulator.err" </dev/null 3>&- 4>&- &
emu_pid=$!
pids+=("$emu_pid")
endpoint="$(wait_line "$emu_out" 's#^listening \(http://127\.0\.0\.1:[0-9]*\)$#\1#p' "$emu_pid" "alb-emulator")" || exit 1
say "ALB emulator (ELBv2 API, health checks, data plane) on $endpoint, in front of moto"

# --- The releases: test apps on loopback -------------------------------------------------------
start_app v1
start_app v2
start_app v3

"$PY" scripts/demo_aws.py setup "$endpoint" >"$work/aws.env" || die "creating the load balancer in moto failed (see above)"
# shellcheck disable=SC1091  # written just above: LISTENER_ARN, BLUE_TG_ARN, GREEN_TG_ARN
source "$work/aws.env"
# The emulator prints each listener's data-plane URL once it knows the listener.
listener_url="$(wait_line "$emu_out" "s#^listener $LISTENER_ARN \\(http://127\\.0\\.0\\.1:[0-9]*\\)\$#\\1#p" "$emu_pid" "alb-emulator (the listener's data plane)")" || exit 1
say "load balancer 'demo': listener :80 (answers 503 'no release yet'; its data plane: $listener_url),"
say "  target groups demo-blue and demo-green, health-checked by the load balancer on /health every 5 s"
say "  (in AWS time: the emulator runs it 20x faster), used by no action of the listener yet"

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

provider "immutable" {
  region      = "us-east-1"
  max_retries = 2
  endpoints {
    elbv2 = "$endpoint" # the ALB emulator, moto behind it
  }
}

variable "release" { type = string }
variable "app_port" { type = number }

resource "immutable_bluegreen_deployment" "app" {
  listener_arn           = "$LISTENER_ARN"
  blue_target_group_arn  = "$BLUE_TG_ARN"
  green_target_group_arn = "$GREEN_TG_ARN"

  release = var.release
  targets = [{ id = "127.0.0.1", port = var.app_port }]

  health_check {
    path                = "/health"
    healthy_threshold   = 3
    unhealthy_threshold = 3
    interval            = "250ms"
    request_timeout     = "1s"
  }

  timeouts {
    create = "30s"
    update = "30s"
  }
}
EOF
say "Terraform config: $work/main.tf (the resource block:)"
sed -n '/^resource/,/^}/p' "$work/main.tf" | sed 's/^/    /'

tf() { (cd "$work" && "$TERRAFORM" "$@"); }

# The plan lines that tell the story: the colour flip, the generation, the weights, the releases.
plan_story() {
  awk '
    /^ *[-+~] *(active_color|standby_color|generation|release|active_release|previous_release|blue_release|green_release) +=/ { print; next }
    /traffic_weights +=/ { print; map = /\{ *$/; next }
    map { print; if ($0 ~ /^ *\} *$/) map = 0; next }
    /^(Plan:|No changes)/ { print }
  ' | sed -E 's/^  //; s/^(Plan:|No changes)/    \1/'
}

# The listener's weights, each colour's release and targets' health from the ELBv2 API, and
# who answers requests sent through the listener; with a colour, also checks that the listener
# sends all traffic to it.
show_aws() {
  "$PY" scripts/demo_aws.py show "$endpoint" "$listener_url" "$LISTENER_ARN" "$BLUE_TG_ARN" "$GREEN_TG_ARN" ${1:+"$1"} ||
    die "the listener does not send all traffic to $1, the active colour in Terraform's state"
}

# While an apply runs: what the load balancer reports for the colour the plan lands on, and
# the listener's rules, as they change (demo_aws.py watch). Started before the apply, stopped
# (after one last look) when it ends.
watch_pid=""
watch_start() {
  local color="$1" tg="$GREEN_TG_ARN"
  [[ "$color" != blue ]] || tg="$BLUE_TG_ARN"
  : >"$work/watch.out"
  "$PY" scripts/demo_aws.py watch "$endpoint" "$LISTENER_ARN" "$tg" "$color" >"$work/watch.out" 2>&1 </dev/null 3>&- 4>&- &
  watch_pid=$!
  pids+=("$watch_pid")
  # Its first look (two lines) before the apply starts, so that it sees everything the apply does.
  local i
  for ((i = 0; i < 100; i++)); do
    (($(wc -l <"$work/watch.out") >= 2)) && return 0
    kill -0 "$watch_pid" 2>/dev/null || break
    sleep 0.05
  done
  say "watching the load balancer did not start: $(tail -1 "$work/watch.out")"
}
watch_stop() {
  [[ -n "$watch_pid" ]] || return 0
  kill -TERM "$watch_pid" 2>/dev/null || true
  wait "$watch_pid" 2>/dev/null || true
  local pid rest=()
  for pid in "${pids[@]}"; do [[ "$pid" == "$watch_pid" ]] || rest+=("$pid"); done
  pids=("${rest[@]}")
  watch_pid=""
  echo "    the load balancer, during the apply (DescribeTargetHealth of the release's group, DescribeRules):"
  cat "$work/watch.out"
}

# plan + apply for one release; returns apply's status, the apply time in $apply_secs.
release() {
  local version="$1" port="${app_port[$1]}" t
  local vars=(-var "release=$version" -var "app_port=$port")
  echo "  \$ terraform plan -var release=$version -var app_port=$port"
  if ! tf plan -no-color -input=false -out=tfplan "${vars[@]}" >"$work/plan.log" 2>&1; then
    cat "$work/plan.log"
    die "terraform plan failed (output above)"
  fi
  plan_story <"$work/plan.log"
  # The colour the release lands on: the plan's new active_color.
  local lands
  lands="$(sed -nE 's/^ *[+~] *active_color *= *(".*" -> )?"(blue|green)".*/\2/p' "$work/plan.log" | head -1)"
  echo "  \$ terraform apply tfplan"
  [[ -n "$lands" ]] && watch_start "$lands"
  t="$(now)"
  local status=0
  tf apply -no-color -input=false -auto-approve tfplan >"$work/apply.log" 2>&1 || status=$?
  apply_secs="$(secs "$t")"
  watch_stop
  return "$status"
}

# The deployment's attributes in the state (`terraform show -json`), through a Python format
# string: state '{active_color}' prints e.g. blue.
state() {
  tf show -json -no-color | "$PY" -c '
import json, sys
resources = json.load(sys.stdin)["values"]["root_module"]["resources"]
print(sys.argv[1].format(**[r for r in resources if r["type"] == "immutable_bluegreen_deployment"][0]["values"]))' "$1"
}

# After an apply: what serves now ($active, $serving), from the state.
read_state() {
  read -r active serving <<<"$(state '{active_color} {active_color} serves {active_release}')"
}

applied() {
  read_state
  echo "    $(grep -m1 '^Apply complete' "$work/apply.log") (${apply_secs} s): $serving"
}

show_aws

# --- 1. v1 ---------------------------------------------------------------------------------------
header "1/4 Release v1: the first release lands on a colour (blue when neither serves)"
say "no action of the listener uses blue's group, so the load balancer would leave its targets 'unused':"
say "the provider adds a warm-up rule (matching no request) for the gate, and deletes it after the cut-over"
release v1 || { cat "$work/apply.log"; die "releasing v1 failed (output above)"; }
applied
summary=("1. v1          -> $serving")
show_aws "$active"

# --- 2. v2 ---------------------------------------------------------------------------------------
header "2/4 Release v2: lands on the standby colour, is gated, then traffic flips"
say "green is in the listener's forward (at weight 0) since the first cut-over: health-checked already, no rule"
before="$active"
release v2 || { cat "$work/apply.log"; die "releasing v2 failed (output above)"; }
applied
[[ "$active" != "$before" ]] || die "v2 did not flip the colour: $before still serves"
summary+=("2. v2          -> $serving (the colour flipped)")
show_aws "$active"

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
fi
grep -q 'was not deployed to' "$work/apply.log" || {
  cat "$work/apply.log"
  die "releasing the broken v3 failed, but not at its health gate (output above)"
}
echo "    apply failed, as it should, after ${apply_secs} s:"
# The error's summary and first lines of detail, without Terraform's box drawing.
sed -n '/Error: /,/^╵/p' "$work/apply.log" | sed -E 's/^(│|╷|╵) ?//' |
  grep -vE '^ *$|^ *(with |on main\.tf|[0-9]+: )' | head -8 | sed 's/^/      /'
read_state
[[ "$active" == "$before" ]] || die "after the failed v3, $active serves instead of $before"
summary+=("3. v3 (broken) -> gate failed in ${apply_secs} s; $serving, traffic never moved")
show_aws "$active"

# --- 4. rollback ---------------------------------------------------------------------------------
header "4/4 Rollback to v1: set release back to v1, the colour flips back"
before="$active"
standby="$(state '{standby_color}')"
held="$(state "{${standby}_release}")"
if [[ "$held" == v1 ]]; then
  say "$standby still holds v1 (kept warm): no registration, only the gate and the cut-over"
else
  say "$standby holds $held now (the standby colour took the failed release), so v1 is registered there again, gated, then traffic flips"
fi
t0="$(now)"
release v1 || { cat "$work/apply.log"; die "rolling back to v1 failed (output above)"; }
rollback_secs="$(secs "$t0")"
applied
[[ "$active" != "$before" ]] || die "the rollback did not flip the colour: $before still serves"
summary+=("4. rollback    -> $serving in ${rollback_secs} s (plan + apply; the apply, gate and cut-over: ${apply_secs} s)")
show_aws "$active"

header "Done in $(secs "$started_at") s"
printf '  %s\n' "${summary[@]}"
refused="$(grep -c ' by-provider: ' "$emu_out" || true)"
if ((refused == 0)); then
  say "the ALB emulator refused none of the provider's requests (it refuses what AWS would)"
else
  say "the ALB emulator refused $refused of the provider's requests, as AWS would:"
  grep ' by-provider: ' "$emu_out" | sed 's/^/    /'
fi
throttled="$(sed -n 's/^throttled [0-9]* (\([0-9]*\) of the provider.s)$/\1/p' "$emu_out" | tail -1)"
say "it answered ${throttled:-0} of the provider's requests 'Throttling' (as AWS does past its rate limits; the provider retries)"
