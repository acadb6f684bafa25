output "live_color" {
  description = "The colour serving traffic."
  value       = immutable_bluegreen_deployment.this.active_color
}

output "standby_color" {
  description = "The colour at weight 0, where the next release lands."
  value       = immutable_bluegreen_deployment.this.standby_color
}

output "live_release" {
  value = immutable_bluegreen_deployment.this.active_release
}

output "previous_release" {
  description = "Warm on the standby colour: set `release` to it to roll back."
  value       = immutable_bluegreen_deployment.this.previous_release
}

output "releases" {
  description = "The release each colour holds."
  value = {
    blue  = immutable_bluegreen_deployment.this.blue_release
    green = immutable_bluegreen_deployment.this.green_release
  }
}

output "traffic_weights" {
  description = "The listener's weights per colour, as read back from the load balancer."
  value       = immutable_bluegreen_deployment.this.traffic_weights
}

output "service_checked_at" {
  description = "When service_url last passed its check."
  value       = immutable_health_gate.service.passed_at
}
