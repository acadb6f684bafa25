"""The AWS side of `make demo` (scripts/demo.sh), through boto3, as ELBv2 reports it.

ENDPOINT is the ALB emulator (acceptance-tests' `alb-emulator`, moto behind it), which
health-checks targets for real, validates and throttles as AWS does, and serves a data plane
per listener; LISTENER_URL is that data plane for the demo's listener.

  demo_aws.py setup ENDPOINT
      Creates a VPC with two subnets, an application load balancer, the `blue` and `green`
      target groups (health-checked on /health every 5 s, healthy after 2 passes,
      deregistration delay 10 s: AWS's figures, which the emulator scales down) and a
      production listener (port 80) whose default action answers 503 "no release yet" (so
      neither colour serves, and no action uses either group). Prints shell assignments to
      eval: LISTENER_ARN, BLUE_TG_ARN, GREEN_TG_ARN.
  demo_aws.py show ENDPOINT LISTENER_URL LISTENER_ARN BLUE_TG_ARN GREEN_TG_ARN [COLOR]
      Prints the listener's forward weights per colour (DescribeListeners), the release each
      colour holds (the target groups' `immutable:release` tags, DescribeTags), each colour's
      targets as the load balancer reports them (DescribeTargetHealth), and which release
      answered 20 requests sent through the listener's data plane. With COLOR, exits 1
      unless the listener sends all traffic to that colour.
  demo_aws.py watch ENDPOINT LISTENER_ARN TG_ARN COLOR
      Prints what it sees first (a line), then, until SIGTERM, every change of the group's
      targets' health (DescribeTargetHealth) and of the listener's rules (DescribeRules), with
      the seconds since that first look; on SIGTERM it looks once more, then exits. Run during an apply, it shows what the load
      balancer did with the release's group. It reads the target health every 0.1 s and the
      rules every 0.2 s, 15 calls a second: inside ELBv2's throttling of Describe calls (a burst
      of 40, 10 a second), which the provider's calls share, for an apply of a second or two.

Run by the project's venv python (moto depends on boto3). Credentials and region are fixed
(test/test, us-east-1), so nothing of the machine's AWS configuration is used.
"""

import http.client
import json
import shlex
import signal
import sys
import time
import urllib.parse

import boto3
from botocore.config import Config

REGION = "us-east-1"
COLORS = ("blue", "green")


def client(service, endpoint):
    session = boto3.session.Session(
        aws_access_key_id="test", aws_secret_access_key="test", region_name=REGION
    )
    # Throttling is retried with backoff (standard mode), as the AWS CLI does.
    config = Config(retries={"mode": "standard", "max_attempts": 5})
    return session.client(service, endpoint_url=endpoint, config=config)


def setup(endpoint):
    ec2 = client("ec2", endpoint)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=az)["Subnet"]["SubnetId"]
        for cidr, az in (("10.0.1.0/24", "us-east-1a"), ("10.0.2.0/24", "us-east-1b"))
    ]
    elb = client("elbv2", endpoint)
    lb = elb.create_load_balancer(Name="demo", Type="application", Subnets=subnets)
    lb_arn = lb["LoadBalancers"][0]["LoadBalancerArn"]
    tgs = {}
    for color in COLORS:
        tg = elb.create_target_group(
            Name=f"demo-{color}",
            Protocol="HTTP",
            Port=80,
            VpcId=vpc,
            TargetType="ip",
            HealthCheckPath="/health",
            HealthCheckIntervalSeconds=5,
            HealthCheckTimeoutSeconds=2,
            HealthyThresholdCount=2,
            UnhealthyThresholdCount=2,
        )
        tgs[color] = tg["TargetGroups"][0]["TargetGroupArn"]
        elb.modify_target_group_attributes(
            TargetGroupArn=tgs[color],
            Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "10"}],
        )
    listener = elb.create_listener(
        LoadBalancerArn=lb_arn,
        Protocol="HTTP",
        Port=80,
        DefaultActions=[
            {
                "Type": "fixed-response",
                "FixedResponseConfig": {
                    "StatusCode": "503",
                    "ContentType": "text/plain",
                    "MessageBody": "no release yet",
                },
            }
        ],
    )
    for name, value in (
        ("LISTENER_ARN", listener["Listeners"][0]["ListenerArn"]),
        ("BLUE_TG_ARN", tgs["blue"]),
        ("GREEN_TG_ARN", tgs["green"]),
    ):
        print(f"{name}={shlex.quote(value)}")


def health_rows(elb, tg_arn):
    """`(id:port, state, reason)` of the group's targets, as DescribeTargetHealth says."""
    rows = []
    for d in elb.describe_target_health(TargetGroupArn=tg_arn)["TargetHealthDescriptions"]:
        t, h = d["Target"], d["TargetHealth"]
        rows.append((f"{t['Id']}:{t.get('Port', '')}", h["State"], h.get("Reason", "")))
    return sorted(rows)


def row_text(row):
    target, state, reason = row
    return f"{target} {state}" + (f" ({reason})" if reason else "")


def through_data_plane(url, n=20):
    """Sends `n` requests through the listener, one keep-alive connection; counts who answered."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    answers = {}
    try:
        for _ in range(n):
            conn.request("GET", "/")
            response = conn.getresponse()
            body = response.read().decode(errors="replace")
            try:
                who = json.loads(body)["version"]
            except (ValueError, KeyError, TypeError):
                who = f"{response.status} {body.strip()[:40]!r}"
                if response.status != 200:
                    who += " (from the load balancer)"
            answers[who] = answers.get(who, 0) + 1
    except (OSError, http.client.HTTPException) as e:
        answers[f"error: {e}"] = answers.get(f"error: {e}", 0) + 1
    finally:
        conn.close()
    return answers


def show(endpoint, listener_url, listener_arn, blue_arn, green_arn, expect=None):
    elb = client("elbv2", endpoint)
    colors = {blue_arn: "blue", green_arn: "green"}
    listener = elb.describe_listeners(ListenerArns=[listener_arn])["Listeners"][0]
    weights = {}
    other = []
    for action in listener["DefaultActions"]:
        if action["Type"] == "forward":
            groups = action.get("ForwardConfig", {}).get("TargetGroups") or [
                {"TargetGroupArn": action["TargetGroupArn"], "Weight": 1}
            ]
            for group in groups:
                arn = group["TargetGroupArn"]
                weights[colors.get(arn, arn)] = group.get("Weight", 1)
        else:
            other.append(action["Type"])
    if weights:
        text = "  ".join(f"{c}={weights[c]}" for c in COLORS if c in weights)
        print(f"  listener weights (ELBv2 DescribeListeners):  {text}")
    else:
        print(f"  listener weights (ELBv2 DescribeListeners):  none ({', '.join(other)})")
    tags = elb.describe_tags(ResourceArns=[blue_arn, green_arn])["TagDescriptions"]
    held = {colors[d["ResourceArn"]]: {t["Key"]: t["Value"] for t in d["Tags"]} for d in tags}
    text = "  ".join(f"{c}={held.get(c, {}).get('immutable:release', '-')}" for c in COLORS)
    print(f"  releases held (immutable:release tags):      {text}")
    for color, arn in (("blue", blue_arn), ("green", green_arn)):
        rows = health_rows(elb, arn)
        text = ", ".join(row_text(r) for r in rows) or "no targets"
        print(f"  {color + ' targets (DescribeTargetHealth):':44} {text}")
    answers = through_data_plane(listener_url)
    text = ", ".join(f"{who} x{n}" for who, n in sorted(answers.items()))
    print(f"  {sum(answers.values())} requests through the listener ({listener_url}/): {text}")
    if expect is not None:
        live = [c for c, w in weights.items() if w > 0]
        if live != [expect]:
            sys.exit(1)


def rules_of(elb, listener_arn, tg_arn):
    """The listener's rules but the default one, as text by ARN (DescribeRules)."""
    rules = {}
    for rule in elb.describe_rules(ListenerArn=listener_arn)["Rules"]:
        if rule.get("IsDefault"):
            continue
        groups = [a.get("TargetGroupArn") for a in rule["Actions"]] + [
            g["TargetGroupArn"]
            for a in rule["Actions"]
            for g in a.get("ForwardConfig", {}).get("TargetGroups", [])
        ]
        headers = [
            c["HttpHeaderConfig"]["HttpHeaderName"]
            for c in rule["Conditions"]
            if c.get("HttpHeaderConfig", {}).get("HttpHeaderName")
        ]
        to = "this release's group" if tg_arn in groups else "another group"
        rules[rule["RuleArn"]] = (
            f"rule {rule['Priority']} ({', '.join(headers) or 'no header condition'}) forwarding to {to}"
        )
    return rules


def watch(endpoint, listener_arn, tg_arn, color):
    elb = client("elbv2", endpoint)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))

    def look_targets():
        return {row[0]: row for row in health_rows(elb, tg_arn)}

    targets, rules = look_targets(), rules_of(elb, listener_arn, tg_arn)
    start = time.monotonic()

    def say(text):
        print(f"      +{time.monotonic() - start:5.2f} s  {text}", flush=True)

    say(f"{color} targets: {', '.join(row_text(r) for r in targets.values()) or 'none'}")
    say(f"listener rules: {'; '.join(rules.values()) or 'none besides the default action'}")
    turn = 0
    while True:
        time.sleep(0.1)
        last = bool(stopping)
        turn += 1
        # The rules every other round and in the last, first; target health every round.
        if last or turn % 2 == 0:
            now = rules_of(elb, listener_arn, tg_arn)
            for arn in now.keys() - rules.keys():
                say(f"listener {now[arn]}: created")
            for arn in rules.keys() - now.keys():
                say(f"listener {rules[arn]}: deleted")
            rules = now
        now = look_targets()
        for target, row in now.items():
            if targets.get(target) != row:
                say(f"{color} target {row_text(row)}")
        for target in targets.keys() - now.keys():
            say(f"{color} target {target} gone (deregistered)")
        targets = now
        if last:
            return


def main(argv):
    if len(argv) == 2 and argv[0] == "setup":
        setup(argv[1])
    elif len(argv) in (6, 7) and argv[0] == "show":
        show(*argv[1:])
    elif len(argv) == 5 and argv[0] == "watch":
        watch(*argv[1:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
