# A release module with a test of its own (tests/release.tftest.hcl): one release of a
# fleet behind an existing ALB listener, health-gated and cut over blue/green, then a smoke
# check of the service through the load balancer. The module configures no provider: its
# caller does, or the test file.

terraform {
  # optional() object attributes; the test file needs Terraform 1.13 or later.
  required_version = ">= 1.3"

  required_providers {
    immutable = {
      source = "immutable-infra/immutable"
    }
  }
}

# The release lands on the standby colour, passes the load balancer's health checks and
# health_check_path on every target, and takes all of the listener's traffic; the previous
# release stays warm at weight 0 for an instant rollback.
resource "immutable_bluegreen_deployment" "this" {
  listener_arn           = var.listener_arn
  blue_target_group_arn  = var.blue_target_group_arn
  green_target_group_arn = var.green_target_group_arn
  release                = var.release
  targets                = var.targets

  health_check {
    path              = var.health_check_path
    healthy_threshold = var.healthy_threshold
    interval          = var.check_interval
  }

  timeouts {
    create = var.timeout
    update = var.timeout
  }
}

# After every cut-over: the service answers where its users reach it. A failure fails the
# apply (and the test) after traffic moved; set `release` back to roll back.
resource "immutable_health_gate" "service" {
  url               = var.service_url
  healthy_threshold = var.healthy_threshold
  interval          = var.check_interval

  triggers = {
    release = immutable_bluegreen_deployment.this.active_release
  }

  timeouts {
    create = var.timeout
  }
}
