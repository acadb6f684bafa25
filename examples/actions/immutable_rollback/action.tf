# The incident's rollback, with no configuration change:
#
#   terraform apply -invoke=action.immutable_rollback.web
#
# moves all of the listener's traffic back to the warm colour, once the load balancer
# reports its targets healthy. The deployment's next plan takes the rollback as it is
# (see the deployment's page).
action "immutable_rollback" "web" {
  config {
    listener_arn           = immutable_bluegreen_deployment.web.listener_arn
    blue_target_group_arn  = immutable_bluegreen_deployment.web.blue_target_group_arn
    green_target_group_arn = immutable_bluegreen_deployment.web.green_target_group_arn

    # How long the load balancer has to report the warm colour healthy (default "5m").
    timeout = "2m"
  }
}
