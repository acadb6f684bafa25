output "url" {
  value = "https://${aws_lb.web.dns_name}"
}

output "test_url" {
  description = "The test listener: the colour the last release went to."
  value       = "http://${aws_lb.web.dns_name}:8080"
}

output "active_color" {
  value = immutable_bluegreen_deployment.web.active_color
}

output "active_release" {
  value = immutable_bluegreen_deployment.web.active_release
}

output "previous_release" {
  description = "The image tag still running on the standby colour: set var.release to it to roll back."
  value       = immutable_bluegreen_deployment.web.previous_release
}

output "images" {
  description = "The image tag each colour's service runs."
  value       = local.image_tag
}
