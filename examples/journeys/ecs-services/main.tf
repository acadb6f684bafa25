# Journey 2: ECS services that register themselves. One service per colour, each
# attached to its colour's target group. The immutable_bluegreen_slots data source tells,
# at plan time, which colour receives var.release, so one `terraform apply` updates the
# standby colour's service, waits for its tasks, health-gates them through the test
# listener and cuts the production listener over.
#
#   release:  terraform apply -var release=1.4.2
#   rollback: terraform apply -var release=1.4.1   (the previous tag, still running)

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

locals {
  colors = toset(["blue", "green"])
}

# --- Load balancer, colour target groups, listeners -------------------------------------

resource "aws_security_group" "alb" {
  name   = "web-alb"
  vpc_id = var.vpc_id

  ingress {
    description = "Production"
    from_port   = 443
    to_port     = 443
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }

  ingress {
    description = "Test listener: the standby colour, for the deployment's checks"
    from_port   = 8080
    to_port     = 8080
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

resource "aws_security_group" "tasks" {
  name   = "web-tasks"
  vpc_id = var.vpc_id

  ingress {
    from_port       = var.container_port
    to_port         = var.container_port
    protocol        = "tcp"
    security_groups = [aws_security_group.alb.id]
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
  for_each = local.colors

  name                 = "web-${each.key}"
  vpc_id               = var.vpc_id
  target_type          = "ip"
  protocol             = "HTTP"
  port                 = var.container_port
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
resource "aws_lb_listener" "production" {
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

# The deployment points this listener at the standby colour before its checks, as
# CodeDeploy's test traffic route does; it owns this default action too.
resource "aws_lb_listener" "test" {
  load_balancer_arn = aws_lb.web.arn
  port              = 8080
  protocol          = "HTTP"

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.color["green"].arn
  }

  lifecycle {
    ignore_changes = [default_action]
  }
}

# --- Which colour receives the release --------------------------------------------------

data "immutable_bluegreen_slots" "web" {
  listener_arn           = aws_lb_listener.production.arn
  blue_target_group_arn  = aws_lb_target_group.color["blue"].arn
  green_target_group_arn = aws_lb_target_group.color["green"].arn
  release                = var.release
}

locals {
  # The live colour keeps its release; the standby colour gets var.release, unless a
  # colour already holds it (a rollback: both keep theirs). A colour that has never held
  # a release (on the first apply) starts on var.release.
  image_tag = {
    blue  = coalesce(data.immutable_bluegreen_slots.web.blue_release, var.release)
    green = coalesce(data.immutable_bluegreen_slots.web.green_release, var.release)
  }
}

# --- One ECS service per colour -----------------------------------------------------------

resource "aws_ecs_cluster" "web" {
  name = "web"
}

resource "aws_cloudwatch_log_group" "web" {
  name              = "/ecs/web"
  retention_in_days = 30
}

resource "aws_iam_role" "execution" {
  name = "web-task-execution"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "ecs-tasks.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
}

resource "aws_iam_role_policy_attachment" "execution" {
  role       = aws_iam_role.execution.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

resource "aws_ecs_task_definition" "web" {
  for_each = local.colors

  family                   = "web-${each.key}"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = 256
  memory                   = 512
  execution_role_arn       = aws_iam_role.execution.arn

  container_definitions = jsonencode([{
    name         = "web"
    image        = "${var.image_repository}:${local.image_tag[each.key]}"
    essential    = true
    portMappings = [{ containerPort = var.container_port }]
    # The app reports its version on /health; the deployment's body_regex looks for it.
    environment = [{ name = "APP_VERSION", value = local.image_tag[each.key] }]
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.web.name
        awslogs-region        = var.region
        awslogs-stream-prefix = each.key
      }
    }
  }])
}

resource "aws_ecs_service" "web" {
  for_each = local.colors

  name            = "web-${each.key}"
  cluster         = aws_ecs_cluster.web.id
  task_definition = aws_ecs_task_definition.web[each.key].arn
  desired_count   = var.desired_count
  launch_type     = "FARGATE"

  network_configuration {
    subnets         = var.private_subnet_ids
    security_groups = [aws_security_group.tasks.id]
  }

  # The colour's tasks register themselves in the colour's target group.
  load_balancer {
    target_group_arn = aws_lb_target_group.color[each.key].arn
    container_name   = "web"
    container_port   = var.container_port
  }

  # Terraform waits until the new tasks run (and the old ones are gone) before the
  # deployment gates the colour.
  wait_for_steady_state = true

  depends_on = [aws_lb_listener.production, aws_iam_role_policy_attachment.execution]
}

# --- The cut-over -------------------------------------------------------------------------

resource "immutable_bluegreen_deployment" "web" {
  listener_arn           = aws_lb_listener.production.arn
  blue_target_group_arn  = aws_lb_target_group.color["blue"].arn
  green_target_group_arn = aws_lb_target_group.color["green"].arn
  release                = var.release

  # No `targets`: the services register their tasks themselves.
  test_listener_arn = aws_lb_listener.test.arn

  health_check {
    # The test listener forwards to the standby colour during the gate, and keeps
    # following the new colour while traffic moves and bakes.
    url               = "http://${aws_lb.web.dns_name}:8080/health"
    body_regex        = replace(var.release, ".", "\\.")
    healthy_threshold = 3
    interval          = "5s"
    # The load balancer must report every task of the colour healthy, too.
    min_healthy_targets = var.desired_count
  }

  traffic {
    strategy      = "linear"
    step_percent  = 25
    step_interval = "1m"
    bake_time     = "5m"
  }

  # A rollback within an hour of the last cut-over moves all traffic at once, after the
  # load balancer's target health and one passing check; bake_time still applies.
  rollback_window = "1h"

  timeouts {
    create = "30m"
    update = "30m"
  }

  # The standby colour's service is updated (and steady) before the gate starts.
  depends_on = [aws_ecs_service.web]
}
