#!/usr/bin/env bash
# The scripted blue/green pipeline that `immutable_bluegreen_deployment` replaces, written the
# way the classic "blue/green with Terraform and an ALB" articles and team pipelines do it,
# one AWS CLI-like step at a time:
#
#   1. read which colour is live from the listener (DescribeListeners);
#   2. `terraform apply -var environment=<target>`: the pipeline's Terraform run, which records
#      the colour in state (here a config holding only `terraform_data`, the cheapest possible
#      one: no provider to start, nothing to refresh);
#   3. the load balancer's view: DescribeTargetHealth of the target colour until at least
#      MIN_HEALTHY targets are `healthy` (INTERVAL seconds apart, MAX_CHECKS reads at most);
#   4. poll the target colour's health endpoint with curl until HEALTHY_THRESHOLD consecutive
#      checks pass, INTERVAL seconds apart;
#   5. point the listener at the target colour (ModifyListener) and read it back
#      (DescribeListeners): the weights must be what was written.
#
# Each AWS step is one Python + boto3 process, as each `aws elbv2 ...` command of a pipeline is
# one process of Python + botocore (the write and its read-back share one). The provider's
# gate makes the same checks: the load balancer's target health, then HTTP checks of the
# targets, then the write and the read-back. A failed check leaves no record anywhere.
# Used by bench/bench.py for the rollback comparison; it prints `stage <name> <epoch seconds>`
# lines so the stages can be timed.
#
# Environment: PYTHON (with boto3), TF (terraform), TF_DIR (initialised config dir), ENDPOINT
# (ELBv2 endpoint URL), LISTENER_ARN, BLUE_TG_ARN, GREEN_TG_ARN, BLUE_URL, GREEN_URL (health
# URLs of each colour), MIN_HEALTHY (1), HEALTHY_THRESHOLD (2), INTERVAL (1), MAX_CHECKS (300).
set -euo pipefail

: "${PYTHON:?}" "${TF:?}" "${TF_DIR:?}" "${ENDPOINT:?}" "${LISTENER_ARN:?}"
: "${BLUE_TG_ARN:?}" "${GREEN_TG_ARN:?}" "${BLUE_URL:?}" "${GREEN_URL:?}"
MIN_HEALTHY="${MIN_HEALTHY:-1}" HEALTHY_THRESHOLD="${HEALTHY_THRESHOLD:-2}"
INTERVAL="${INTERVAL:-1}" MAX_CHECKS="${MAX_CHECKS:-300}"
export ENDPOINT LISTENER_ARN BLUE_TG_ARN GREEN_TG_ARN MIN_HEALTHY INTERVAL MAX_CHECKS

stage() { echo "stage $1 $(date +%s.%N)"; }
stage start

# 1. The live colour: the target group with the highest weight in the listener's forward.
current="$("$PYTHON" - <<'EOF'
import os, boto3
elb = boto3.client("elbv2", endpoint_url=os.environ["ENDPOINT"])
action = elb.describe_listeners(ListenerArns=[os.environ["LISTENER_ARN"]])["Listeners"][0]["DefaultActions"][0]
live = max(action["ForwardConfig"]["TargetGroups"], key=lambda t: t.get("Weight", 1))["TargetGroupArn"]
print("blue" if live == os.environ["BLUE_TG_ARN"] else "green")
EOF
)"
if [[ "$current" == blue ]]; then target=green url="$GREEN_URL"; else target=blue url="$BLUE_URL"; fi
stage read
echo "live: $current, deploying to: $target"
export TARGET="$target"

# 2. The pipeline's Terraform run.
(cd "$TF_DIR" && "$TF" apply -auto-approve -input=false -no-color -var "environment=$target" >/dev/null)
stage terraform

# 3. The load balancer's view of the target colour (`aws elbv2 describe-target-health`).
"$PYTHON" - <<'EOF'
import os, sys, time, boto3
elb = boto3.client("elbv2", endpoint_url=os.environ["ENDPOINT"])
tg = os.environ[os.environ["TARGET"].upper() + "_TG_ARN"]
for _ in range(int(os.environ["MAX_CHECKS"])):
    health = elb.describe_target_health(TargetGroupArn=tg)["TargetHealthDescriptions"]
    if sum(d["TargetHealth"]["State"] == "healthy" for d in health) >= int(os.environ["MIN_HEALTHY"]):
        sys.exit(0)
    time.sleep(float(os.environ["INTERVAL"]))
sys.exit(f"{os.environ['TARGET']}: the load balancer reports fewer than {os.environ['MIN_HEALTHY']} healthy targets")
EOF
stage lb_healthy

# 4. Health loop: HEALTHY_THRESHOLD consecutive passes, INTERVAL seconds apart.
passes=0 checks=0
while :; do
  checks=$((checks + 1))
  if curl -fsS -o /dev/null --max-time 2 "$url"; then passes=$((passes + 1)); else passes=0; fi
  ((passes >= HEALTHY_THRESHOLD)) && break
  if ((checks >= MAX_CHECKS)); then echo "$target is not healthy after $checks checks" >&2; exit 1; fi
  sleep "$INTERVAL"
done
stage healthy

# 5. Cut over, and read the listener back.
"$PYTHON" - <<'EOF'
import os, sys, boto3
elb = boto3.client("elbv2", endpoint_url=os.environ["ENDPOINT"])
new = os.environ[("GREEN" if os.environ["TARGET"] == "green" else "BLUE") + "_TG_ARN"]
old = os.environ[("BLUE" if os.environ["TARGET"] == "green" else "GREEN") + "_TG_ARN"]
listener = os.environ["LISTENER_ARN"]
elb.modify_listener(ListenerArn=listener, DefaultActions=[{
    "Type": "forward",
    "ForwardConfig": {"TargetGroups": [{"TargetGroupArn": new, "Weight": 100},
                                       {"TargetGroupArn": old, "Weight": 0}]},
}])
action = elb.describe_listeners(ListenerArns=[listener])["Listeners"][0]["DefaultActions"][0]
weights = {t["TargetGroupArn"]: t.get("Weight", 1) for t in action["ForwardConfig"]["TargetGroups"]}
if weights != {new: 100, old: 0}:
    sys.exit(f"the listener reads back {weights}, not what was written")
EOF
stage switched
echo "traffic on $target"
