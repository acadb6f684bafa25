output "url" {
  value = "https://${aws_lb.web.dns_name}"
}

output "active_color" {
  value = immutable_bluegreen_deployment.web.active_color
}

output "active_release" {
  description = "The AMI serving traffic."
  value       = immutable_bluegreen_deployment.web.active_release
}

output "previous_release" {
  description = "The AMI on the standby colour: set var.release to it to roll back."
  value       = immutable_bluegreen_deployment.web.previous_release
}

output "traffic_weights" {
  value = immutable_bluegreen_deployment.web.traffic_weights
}
