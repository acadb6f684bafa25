# The listener's lease, held from the start of the run to its end (Terraform 1.10+).
ephemeral "immutable_lease" "web" {
  listener_arn           = var.listener_arn
  blue_target_group_arn  = var.blue_target_group_arn
  green_target_group_arn = var.green_target_group_arn
}

# A self-registering fleet: the standby service's new task definition registers its tasks
# into the standby target group before the deployment runs. It is updated under the lease:
# a second pipeline on this listener is refused from here on, not only once the
# deployment starts.
resource "aws_ecs_service" "standby" {
  name            = "web-${var.standby_color}"
  cluster         = var.cluster_arn
  task_definition = var.task_definition_arn
  desired_count   = 3

  load_balancer {
    target_group_arn = var.standby_target_group_arn
    container_name   = "web"
    container_port   = 8080
  }

  depends_on = [ephemeral.immutable_lease.web]
}

# The deployment of the same run takes the lease as its own; the end of the run gives it
# back.
resource "immutable_bluegreen_deployment" "web" {
  listener_arn           = var.listener_arn
  blue_target_group_arn  = var.blue_target_group_arn
  green_target_group_arn = var.green_target_group_arn
  release                = var.release

  depends_on = [aws_ecs_service.standby]
}
