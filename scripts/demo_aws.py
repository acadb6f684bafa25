"""The AWS side of `make demo` (scripts/demo.sh), in moto through boto3, as ELBv2 reports it.

  demo_aws.py setup ENDPOINT
      Creates a VPC with two subnets, an application load balancer, the `blue` and `green`
      target groups and a production listener (port 80) whose default action answers 503
      "no release yet" (so neither colour serves). Prints shell assignments to eval:
      LISTENER_ARN, BLUE_TG_ARN, GREEN_TG_ARN.
  demo_aws.py show ENDPOINT LISTENER_ARN BLUE_TG_ARN GREEN_TG_ARN [COLOR]
      Prints the listener's forward weights per colour (DescribeListeners) and the release
      each colour holds (the target groups' `immutable:release` tags, DescribeTags). With
      COLOR, exits 1 unless the listener sends all traffic to that colour.

Run by the project's venv python (moto depends on boto3). Credentials and region are fixed
(test/test, us-east-1), so nothing of the machine's AWS configuration is used.
"""

import shlex
import sys

import boto3

REGION = "us-east-1"


def client(service, endpoint):
    session = boto3.session.Session(
        aws_access_key_id="test", aws_secret_access_key="test", region_name=REGION
    )
    return session.client(service, endpoint_url=endpoint)


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
    for color in ("blue", "green"):
        tg = elb.create_target_group(
            Name=f"demo-{color}", Protocol="HTTP", Port=80, VpcId=vpc, TargetType="ip"
        )
        tgs[color] = tg["TargetGroups"][0]["TargetGroupArn"]
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


def show(endpoint, listener_arn, blue_arn, green_arn, expect=None):
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
        text = "  ".join(f"{c}={weights[c]}" for c in ("blue", "green") if c in weights)
        print(f"  listener weights (ELBv2 DescribeListeners): {text}")
    else:
        print(f"  listener weights (ELBv2 DescribeListeners): none ({', '.join(other)})")
    tags = elb.describe_tags(ResourceArns=[blue_arn, green_arn])["TagDescriptions"]
    held = {colors[d["ResourceArn"]]: {t["Key"]: t["Value"] for t in d["Tags"]} for d in tags}
    text = "  ".join(
        f"{c}={held.get(c, {}).get('immutable:release', '-')}" for c in ("blue", "green")
    )
    print(f"  releases held (immutable:release tags):     {text}")
    if expect is not None:
        live = [c for c, w in weights.items() if w > 0]
        if live != [expect]:
            sys.exit(1)


def main(argv):
    if len(argv) == 2 and argv[0] == "setup":
        setup(argv[1])
    elif len(argv) in (5, 6) and argv[0] == "show":
        show(*argv[1:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
