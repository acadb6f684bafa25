terraform {
  required_providers {
    immutable = {
      source = "immutable-infra/immutable"
    }
  }
}

variable "release" {
  description = "The release being rolled out, e.g. an image tag or a commit."
  type        = string
}

variable "health_check_headers" {
  description = "Headers the health endpoint requires, e.g. { Authorization = \"Bearer ...\" }."
  type        = map(string)
  default     = {}
  sensitive   = true
}

# Blocks the apply until the app answers 200 with the expected body three times in a
# row, checking every 5 seconds for at most 10 minutes.
resource "immutable_health_gate" "app" {
  url             = "https://app.example.com/healthz"
  headers         = var.health_check_headers
  expected_status = "200"
  body_regex      = "\"status\":\\s*\"ok\""

  healthy_threshold = 3
  interval          = "5s"
  request_timeout   = "2s"

  # Check again for every release, even when nothing else in this block changed.
  triggers = {
    release = var.release
  }

  timeouts {
    create = "10m"
  }
}

# Whatever must wait for a healthy release (a DNS switch, a feature flag, the next
# region's rollout) depends on the gate: when the gate fails, Terraform never gets to it.
resource "terraform_data" "promote" {
  input = var.release

  depends_on = [immutable_health_gate.app]
}
