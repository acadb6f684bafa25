# Two releases through the module against a real listener, and the inputs it refuses.
#
#   terraform test -var-file=release.tfvars
#
# release.tfvars gives the module's listener_arn, blue_target_group_arn,
# green_target_group_arn and service_url, and the fleets below. Everything the runs
# create is destroyed at the end; the deployment's destroy leaves the listener serving the
# last release, the one before it warm.

variable "fleets" {
  description = "The targets of each release: v1 and v2."
  type = map(list(object({
    id   = string
    port = optional(number)
  })))
}

variable "elbv2_endpoint" {
  description = "The ELBv2 API to call instead of AWS's (LocalStack, moto): unset on AWS."
  type        = string
  default     = null
}

# Credentials and region come from the standard AWS chain (AWS_REGION, AWS_PROFILE, ...).
provider "immutable" {
  endpoints {
    elbv2 = var.elbv2_endpoint
  }
}

run "refuses_an_empty_release" {
  command = plan

  variables {
    release = ""
    targets = var.fleets["v1"]
  }

  expect_failures = [var.release]
}

run "refuses_a_target_group_as_the_listener" {
  command = plan

  variables {
    listener_arn = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-blue/0123456789abcdef"
    release      = "v1"
    targets      = var.fleets["v1"]
  }

  expect_failures = [var.listener_arn]
}

run "first_release" {
  variables {
    release = "v1"
    targets = var.fleets["v1"]
  }

  assert {
    condition     = output.live_release == "v1"
    error_message = "v1 is not live: ${output.live_release}."
  }

  assert {
    condition     = output.traffic_weights == tomap({ (output.live_color) = 100, (output.standby_color) = 0 })
    error_message = "The listener's weights are ${jsonencode(output.traffic_weights)}, not all on ${output.live_color}."
  }

  assert {
    condition     = output.service_checked_at != null
    error_message = "The service was not checked after the cut-over."
  }
}

run "second_release" {
  variables {
    release = "v2"
    targets = var.fleets["v2"]
  }

  assert {
    condition     = output.live_release == "v2" && output.live_color == run.first_release.standby_color
    error_message = "v2 is not live on ${run.first_release.standby_color}: ${output.live_release} on ${output.live_color}."
  }

  assert {
    condition     = output.traffic_weights == tomap({ (output.live_color) = 100, (output.standby_color) = 0 })
    error_message = "The listener's weights are ${jsonencode(output.traffic_weights)}, not all on ${output.live_color}."
  }

  assert {
    condition     = output.previous_release == "v1" && output.releases[output.standby_color] == "v1"
    error_message = "v1 is not kept warm on ${output.standby_color}: ${jsonencode(output.releases)}."
  }
}
