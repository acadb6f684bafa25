# Journey 5: multi-region. One provider configuration per region (aliases), one
# deployment per region, released region by region in one `terraform apply`: eu-west-1
# depends on us-east-1, so when the first region's gate fails, the apply stops there and
# the second region is not touched.
#
# The load balancers, the colour target groups and each release's instances exist in both
# regions already (built by other stacks, e.g. the baked-image pipeline); instances carry
# their build in a Release tag. Only the cut-over is managed here.

terraform {
  required_version = ">= 1.2"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0"
    }
    immutable = {
      source = "immutable-infra/immutable"
    }
  }
}

provider "aws" {
  alias  = "us"
  region = "us-east-1"
}

provider "aws" {
  alias  = "eu"
  region = "eu-west-1"
}

provider "immutable" {
  alias  = "us"
  region = "us-east-1"
}

provider "immutable" {
  alias  = "eu"
  region = "eu-west-1"
}

# --- us-east-1 ----------------------------------------------------------------------------

data "aws_lb" "us" {
  provider = aws.us
  name     = var.load_balancer_name
}

data "aws_lb_listener" "us" {
  provider          = aws.us
  load_balancer_arn = data.aws_lb.us.arn
  port              = 443
}

data "aws_lb_target_group" "us" {
  for_each = toset(["blue", "green"])
  provider = aws.us
  name     = "${var.load_balancer_name}-${each.key}"
}

data "aws_instances" "us" {
  provider             = aws.us
  instance_state_names = ["running"]

  filter {
    name   = "tag:Release"
    values = [var.release]
  }
}

resource "immutable_bluegreen_deployment" "us" {
  provider = immutable.us

  listener_arn           = data.aws_lb_listener.us.arn
  blue_target_group_arn  = data.aws_lb_target_group.us["blue"].arn
  green_target_group_arn = data.aws_lb_target_group.us["green"].arn

  release = var.release
  # Sorted: `targets` is a list, and any change to it (even of order) is a new release.
  targets = [for ip in sort(data.aws_instances.us.private_ips) : { id = ip, port = var.app_port }]

  health_check {
    path              = "/health"
    healthy_threshold = 3
  }

  # The first region takes the release gradually.
  traffic {
    strategy       = "canary"
    canary_percent = 10
    step_interval  = "5m"
    bake_time      = "10m"
  }

  timeouts {
    create = "30m"
    update = "30m"
  }

  lifecycle {
    precondition {
      condition     = length(data.aws_instances.us.private_ips) > 0
      error_message = "No running instance in us-east-1 is tagged Release = ${var.release}."
    }
  }
}

# --- eu-west-1, after us-east-1 -------------------------------------------------------------

data "aws_lb" "eu" {
  provider = aws.eu
  name     = var.load_balancer_name
}

data "aws_lb_listener" "eu" {
  provider          = aws.eu
  load_balancer_arn = data.aws_lb.eu.arn
  port              = 443
}

data "aws_lb_target_group" "eu" {
  for_each = toset(["blue", "green"])
  provider = aws.eu
  name     = "${var.load_balancer_name}-${each.key}"
}

data "aws_instances" "eu" {
  provider             = aws.eu
  instance_state_names = ["running"]

  filter {
    name   = "tag:Release"
    values = [var.release]
  }
}

resource "immutable_bluegreen_deployment" "eu" {
  provider = immutable.eu

  listener_arn           = data.aws_lb_listener.eu.arn
  blue_target_group_arn  = data.aws_lb_target_group.eu["blue"].arn
  green_target_group_arn = data.aws_lb_target_group.eu["green"].arn

  release = var.release
  targets = [for ip in sort(data.aws_instances.eu.private_ips) : { id = ip, port = var.app_port }]

  health_check {
    path              = "/health"
    healthy_threshold = 3
  }

  # Proven in us-east-1 already: all at once, then a shorter bake.
  traffic {
    bake_time = "5m"
  }

  lifecycle {
    precondition {
      condition     = length(data.aws_instances.eu.private_ips) > 0
      error_message = "No running instance in eu-west-1 is tagged Release = ${var.release}."
    }
  }

  # Released only once us-east-1 has taken the release, passed its bake and is done.
  depends_on = [immutable_bluegreen_deployment.us]
}
