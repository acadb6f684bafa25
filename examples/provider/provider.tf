terraform {
  required_providers {
    immutable = {
      source = "immutable-infra/immutable"
    }
  }
}

variable "deployer_external_id" {
  description = "External ID required by the deployer role's trust policy."
  type        = string
  sensitive   = true
}

# Every setting is optional. Credentials and region come from the standard AWS chain
# (environment variables, shared config and credentials files, web identity, container
# and instance credentials); a configuration that only uses immutable_health_gate needs
# no AWS settings at all.
provider "immutable" {
  region      = "us-west-2"
  profile     = "prod"
  max_retries = 10

  # Deploy through a role in the workload account.
  assume_role {
    role_arn     = "arn:aws:iam::123456789012:role/deployer"
    session_name = "terraform-release"
    external_id  = var.deployer_external_id
  }

  # Send Elastic Load Balancing v2 (and CloudWatch, for analysis.cloudwatch_alarms) calls
  # to LocalStack, moto or a VPC endpoint.
  # endpoints {
  #   elbv2      = "http://127.0.0.1:5055"
  #   cloudwatch = "http://127.0.0.1:5055"
  # }
}

# Multi-region: one provider configuration per region, selected per resource with
# `provider = immutable.eu`.
provider "immutable" {
  alias  = "eu"
  region = "eu-west-1"
}
