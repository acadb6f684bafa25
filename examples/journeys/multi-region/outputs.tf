output "regions" {
  description = "What each region serves."
  value = {
    "us-east-1" = {
      active_color     = immutable_bluegreen_deployment.us.active_color
      active_release   = immutable_bluegreen_deployment.us.active_release
      previous_release = immutable_bluegreen_deployment.us.previous_release
    }
    "eu-west-1" = {
      active_color     = immutable_bluegreen_deployment.eu.active_color
      active_release   = immutable_bluegreen_deployment.eu.active_release
      previous_release = immutable_bluegreen_deployment.eu.previous_release
    }
  }
}
