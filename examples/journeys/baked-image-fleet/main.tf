# Journey 1: a baked-image fleet. Every release is a new AMI. Terraform launches its
# instances beside the previous release's, and one `terraform apply` registers them in
# the standby colour, health-gates them, cuts the listener over and keeps the previous
# colour warm for an instant rollback.
#
#   release: terraform apply -var 'amis=["ami-0aaa","ami-0bbb"]' -var release=ami-0bbb
#   rollback: terraform apply -var 'amis=["ami-0aaa","ami-0bbb"]' -var release=ami-0aaa

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
  region = var.region

  # The deployment tags the colour target groups (immutable:release,
  # immutable:generation); the AWS provider must leave those tags alone.
  ignore_tags {
    key_prefixes = ["immutable:"]
  }
}

provider "immutable" {
  region = var.region
}

# --- Load balancer, colour target groups, listener ------------------------------------

resource "aws_security_group" "alb" {
  name_prefix = "web-alb-"
  vpc_id      = var.vpc_id

  ingress {
    from_port   = 443
    to_port     = 443
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }

  egress {
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = ["0.0.0.0/0"]
  }
}

# name_prefix: the instances' create_before_destroy extends to what they depend on, so a
# replaced security group is created before the old one is deleted.
resource "aws_security_group" "app" {
  name_prefix = "web-app-"
  vpc_id      = var.vpc_id

  ingress {
    description     = "From the load balancer"
    from_port       = var.app_port
    to_port         = var.app_port
    protocol        = "tcp"
    security_groups = [aws_security_group.alb.id]
  }

  ingress {
    description = "Health checks of the deployment, from where Terraform runs"
    from_port   = var.app_port
    to_port     = var.app_port
    protocol    = "tcp"
    cidr_blocks = [var.runner_cidr]
  }

  egress {
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = ["0.0.0.0/0"]
  }
}

resource "aws_lb" "web" {
  name               = "web"
  load_balancer_type = "application"
  subnets            = var.public_subnet_ids
  security_groups    = [aws_security_group.alb.id]
}

resource "aws_lb_target_group" "color" {
  for_each = toset(["blue", "green"])

  name                 = "web-${each.key}"
  vpc_id               = var.vpc_id
  target_type          = "ip"
  protocol             = "HTTP"
  port                 = var.app_port
  deregistration_delay = 30

  health_check {
    path                = "/health"
    matcher             = "200"
    interval            = 10
    healthy_threshold   = 2
    unhealthy_threshold = 2
  }
}

# Forwards to both colours from the start (blue 100, green 0), so that the load
# balancer health-checks both; a forward to blue alone works too (the first release adds
# a temporary warm-up rule). The deployment owns the default action afterwards.
resource "aws_lb_listener" "https" {
  load_balancer_arn = aws_lb.web.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
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

# --- The fleets: one instance per AMI and subnet ---------------------------------------

locals {
  instances = {
    for pair in setproduct(var.amis, var.private_subnet_ids) :
    "${pair[0]}/${pair[1]}" => { ami = pair[0], subnet_id = pair[1] }
  }
}

resource "aws_instance" "app" {
  for_each = local.instances

  ami                    = each.value.ami
  instance_type          = var.instance_type
  subnet_id              = each.value.subnet_id
  vpc_security_group_ids = [aws_security_group.app.id]

  tags = {
    Name    = "web"
    Release = each.value.ami
  }

  # An AMI dropped from var.amis is terminated only after the deployment's cut-over has
  # succeeded (without this, Terraform would terminate it before the deployment runs),
  # and not at all when the release fails.
  lifecycle {
    create_before_destroy = true
  }
}

# --- The release ------------------------------------------------------------------------

resource "immutable_bluegreen_deployment" "web" {
  listener_arn           = aws_lb_listener.https.arn
  blue_target_group_arn  = aws_lb_target_group.color["blue"].arn
  green_target_group_arn = aws_lb_target_group.color["green"].arn

  release = var.release
  # The release's fleet, registered in the standby colour (what else is registered
  # there is deregistered first). A rollback names the previous AMI, whose instances
  # are still registered in the other colour: nothing is registered again.
  targets = [
    for instance in aws_instance.app : { id = instance.private_ip, port = var.app_port }
    if instance.ami == var.release
  ]

  health_check {
    # Every healthy target of the standby colour is requested directly.
    path              = "/health"
    expected_status   = "200"
    healthy_threshold = 3
    interval          = "5s"
    request_timeout   = "2s"
    # The load balancer must report every instance of the release healthy.
    min_healthy_targets = length(var.private_subnet_ids)
  }

  traffic {
    strategy  = "all_at_once"
    bake_time = "5m"
  }

  timeouts {
    create = "30m"
    update = "30m"
  }

  lifecycle {
    precondition {
      condition     = contains(var.amis, var.release)
      error_message = "var.release must be one of var.amis: the AMI to serve must be running."
    }
  }
}
