# Blue/green on the backend "web" of the HAProxy on this host. haproxy.cfg declares the
# backend with its checks and no servers; the provider adds blue_N and green_N at runtime.
resource "immutable_haproxy_deployment" "web" {
  runtime_api = "unix:///run/haproxy/admin.sock"
  backend     = "web"
  release     = var.release

  # The release's servers: one per instance of the new release, already running.
  targets = [
    { id = "10.0.1.21", port = 8080 },
    { id = "10.0.1.22", port = 8080 },
  ]

  health_check {
    path              = "/health"
    healthy_threshold = 3
    interval          = "2s"
  }

  traffic {
    strategy       = "canary"
    canary_percent = 10
    step_interval  = "2m"
    bake_time      = "5m"
  }

  rollback_window = "1h"
}

# The same from a CI runner, through SSH to the HAProxy host (host key pinned).
resource "immutable_haproxy_deployment" "remote" {
  runtime_api = "unix:///run/haproxy/admin.sock"
  backend     = "api"
  release     = var.release
  targets     = [{ id = "10.0.2.31", port = 9000 }]

  ssh {
    host        = "lb1.example.com"
    user        = "deploy"
    private_key = var.deploy_key
    host_key    = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFnJKU8R80MtKqRnmfJAEYhhxyMW3GHKePY4QVRNOTBE lb1"
  }
}

variable "release" {
  type = string
}

variable "deploy_key" {
  type      = string
  sensitive = true
}
