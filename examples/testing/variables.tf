variable "listener_arn" {
  description = "The production listener whose default action the deployment owns."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:elasticloadbalancing:[^:]+:[0-9]{12}:listener/", var.listener_arn))
    error_message = "listener_arn must be the ARN of an ELBv2 listener (arn:aws:elasticloadbalancing:REGION:ACCOUNT:listener/...)."
  }
}

variable "blue_target_group_arn" {
  description = "The blue colour's target group."
  type        = string
}

variable "green_target_group_arn" {
  description = "The green colour's target group."
  type        = string
}

variable "release" {
  description = "The release being rolled out: an image tag, AMI ID or commit."
  type        = string

  validation {
    condition     = can(regex("^\\S+$", var.release))
    error_message = "release must be a non-empty name without whitespace."
  }
}

variable "targets" {
  description = "The release's fleet: instance IDs or IP addresses, with their port."
  type = list(object({
    id                = string
    port              = optional(number)
    availability_zone = optional(string)
  }))

  validation {
    condition     = length(var.targets) > 0
    error_message = "A release needs at least one target."
  }
}

variable "service_url" {
  description = "Where users reach the service (through the listener), checked after every cut-over, e.g. https://app.example.com/health."
  type        = string

  validation {
    condition     = can(regex("^https?://", var.service_url))
    error_message = "service_url must be an http:// or https:// URL."
  }
}

variable "health_check_path" {
  description = "Checked on every target of the new release before it takes traffic."
  type        = string
  default     = "/health"
}

variable "healthy_threshold" {
  description = "Consecutive passing checks, on the targets and on service_url."
  type        = number
  default     = 3
}

variable "check_interval" {
  description = "Between two checks."
  type        = string
  default     = "5s"
}

variable "timeout" {
  description = "How long a release, and the check of service_url, may take."
  type        = string
  default     = "15m"
}
