# Per-colour ECS services behind one listener: the slots data source says, at plan time,
# which colour receives var.release, so that colour's service is updated first and the
# deployment then gates it and cuts over, all in one apply.

variable "release" {
  description = "The image tag to release."
  type        = string
}

variable "image_repository" {
  description = "e.g. 123456789012.dkr.ecr.us-west-2.amazonaws.com/web"
  type        = string
}

variable "listener_arn" {
  type = string
}

variable "target_group_arns" {
  description = "The colour target groups: { blue = \"arn:...\", green = \"arn:...\" }."
  type        = map(string)
}

variable "cluster_arn" {
  type = string
}

variable "execution_role_arn" {
  type = string
}

variable "private_subnet_ids" {
  type = list(string)
}

variable "task_security_group_ids" {
  type = list(string)
}

data "immutable_bluegreen_slots" "web" {
  listener_arn           = var.listener_arn
  blue_target_group_arn  = var.target_group_arns["blue"]
  green_target_group_arn = var.target_group_arns["green"]
  release                = var.release
}

locals {
  # The image tag each colour runs. The live colour keeps its release, the standby colour
  # gets var.release (unless a colour already holds it: a rollback). A colour that has
  # never held a release (no immutable:release tag yet) starts on var.release.
  image_tag = {
    blue  = coalesce(data.immutable_bluegreen_slots.web.blue_release, var.release)
    green = coalesce(data.immutable_bluegreen_slots.web.green_release, var.release)
  }
}

resource "aws_ecs_task_definition" "web" {
  for_each = local.image_tag

  family                   = "web-${each.key}"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = 256
  memory                   = 512
  execution_role_arn       = var.execution_role_arn

  container_definitions = jsonencode([{
    name         = "web"
    image        = "${var.image_repository}:${each.value}"
    essential    = true
    portMappings = [{ containerPort = 8080 }]
  }])
}

resource "aws_ecs_service" "web" {
  for_each = local.image_tag

  name            = "web-${each.key}"
  cluster         = var.cluster_arn
  task_definition = aws_ecs_task_definition.web[each.key].arn
  desired_count   = 3
  launch_type     = "FARGATE"

  network_configuration {
    subnets         = var.private_subnet_ids
    security_groups = var.task_security_group_ids
  }

  # Each colour's tasks register themselves in that colour's target group.
  load_balancer {
    target_group_arn = var.target_group_arns[each.key]
    container_name   = "web"
    container_port   = 8080
  }

  # Terraform waits until the new tasks are running before the deployment gates them.
  wait_for_steady_state = true
}

resource "immutable_bluegreen_deployment" "web" {
  listener_arn           = var.listener_arn
  blue_target_group_arn  = var.target_group_arns["blue"]
  green_target_group_arn = var.target_group_arns["green"]
  release                = var.release

  # No `targets`: the services register their tasks themselves. The app's /health answer
  # names its version, so the gate passes only once the new tasks answer.
  health_check {
    path              = "/health"
    body_regex        = replace(var.release, ".", "\\.")
    healthy_threshold = 3
  }

  # Update the standby colour's service first, then gate and cut over.
  depends_on = [aws_ecs_service.web]
}

output "standby_color" {
  description = "The colour not serving traffic: where var.release lands, unless a colour already holds it."
  value       = data.immutable_bluegreen_slots.web.standby_color
}
