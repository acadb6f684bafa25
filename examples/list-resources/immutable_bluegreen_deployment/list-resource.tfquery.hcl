# find.tfquery.hcl, beside the configuration that declares the provider:
#
#   terraform query                                      # list what is found
#   terraform query -generate-config-out=generated.tf    # import and resource blocks
list "immutable_bluegreen_deployment" "web" {
  provider         = immutable
  include_resource = true

  config {
    # Optional: one load balancer instead of every one in the provider's region.
    load_balancer_arn = "arn:aws:elasticloadbalancing:us-west-2:123456789012:loadbalancer/app/web/50dc6c495c0c9188"

    # Optional: only deployments whose two target groups both carry these tags.
    tags = {
      team = "payments"
    }
  }
}
