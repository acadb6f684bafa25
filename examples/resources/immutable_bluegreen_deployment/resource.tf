terraform {
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

variable "region" {
  type    = string
  default = "us-west-2"
}

variable "vpc_id" {
  type = string
}

variable "public_subnet_ids" {
  description = "Subnets of the load balancer."
  type        = list(string)
}

variable "certificate_arn" {
  type = string
}

variable "fleets" {
  description = "Private IPs of the hosts of each release still running, e.g. { \"ami-0b1c...\" = [\"10.0.1.10\", \"10.0.2.11\"] }."
  type        = map(list(string))
}

variable "release" {
  description = "The release to serve: a key of var.fleets. Setting it back to the previous one is a rollback."
  type        = string
}

provider "aws" {
  region = var.region

  # The deployment tags the colour target groups with what they hold; without this, the
  # next AWS apply would remove those tags.
  ignore_tags {
    key_prefixes = ["immutable:"]
  }
}

provider "immutable" {
  region = var.region
}

resource "aws_lb" "web" {
  name               = "web"
  load_balancer_type = "application"
  subnets            = var.public_subnet_ids
}

# One target group per colour. IP targets, so that health_check.path can probe each
# target directly (from a runner inside the VPC).
resource "aws_lb_target_group" "color" {
  for_each = toset(["blue", "green"])

  name                 = "web-${each.key}"
  vpc_id               = var.vpc_id
  target_type          = "ip"
  protocol             = "HTTP"
  port                 = 8080
  deregistration_delay = 30

  health_check {
    path                = "/health"
    matcher             = "200"
    interval            = 10
    healthy_threshold   = 2
    unhealthy_threshold = 2
  }
}

# Created forwarding to both colours (blue 100, green 0), so that the load balancer
# health-checks both from the start. A forward to blue alone, or a fixed response, works
# too: the first release then adds a temporary warm-up rule. From then on the deployment
# owns the default action.
resource "aws_lb_listener" "https" {
  load_balancer_arn = aws_lb.web.arn
  port              = 443
  protocol          = "HTTPS"
  certificate_arn   = var.certificate_arn

  default_action {
    type = "forward"
    forward {
      target_group {
        arn    = aws_lb_target_group.color["blue"].arn
        weight = 100
      }
      target_group {
        arn    = aws_lb_target_group.color["green"].arn
        weight = 0
      }
    }
  }

  lifecycle {
    ignore_changes = [default_action]
  }
}

resource "immutable_bluegreen_deployment" "web" {
  listener_arn           = aws_lb_listener.https.arn
  blue_target_group_arn  = aws_lb_target_group.color["blue"].arn
  green_target_group_arn = aws_lb_target_group.color["green"].arn

  release = var.release
  targets = [for ip in var.fleets[var.release] : { id = ip, port = 8080 }]

  health_check {
    path              = "/health"
    expected_status   = "200"
    healthy_threshold = 3
    interval          = "5s"
    # The load balancer must also report every target of the release healthy.
    min_healthy_targets = length(var.fleets[var.release])
  }

  traffic {
    strategy       = "canary"
    canary_percent = 10
    step_interval  = "2m"
    bake_time      = "5m"
  }

  timeouts {
    create = "20m"
    update = "20m"
  }

  lifecycle {
    precondition {
      condition     = contains(keys(var.fleets), var.release)
      error_message = "var.release must be one of the fleets in var.fleets."
    }
  }
}

output "active" {
  value = "${immutable_bluegreen_deployment.web.active_color} serves ${immutable_bluegreen_deployment.web.active_release}"
}
