variable "region" {
  type    = string
  default = "us-west-2"
}

variable "vpc_id" {
  type = string
}

variable "public_subnet_ids" {
  description = "Subnets of the load balancer."
  type        = list(string)
}

variable "private_subnet_ids" {
  description = "Subnets of the instances: one instance per release and subnet."
  type        = list(string)
}

variable "certificate_arn" {
  description = "ACM certificate of the HTTPS listener."
  type        = string
}

variable "runner_cidr" {
  description = "Where Terraform runs (a CI runner inside the VPC): health_check.path probes each instance directly from there."
  type        = string
}

variable "amis" {
  description = "The baked AMIs kept running, oldest first: the release being served and the previous one, warm for rollback. Add a new AMI and drop the oldest to release."
  type        = list(string)

  validation {
    condition     = length(var.amis) >= 1 && length(var.amis) <= 3
    error_message = "Keep one to three AMIs running."
  }
}

variable "release" {
  description = "The AMI that serves traffic, one of var.amis. A new AMI lands on the standby colour; setting it back to the previous AMI is a rollback."
  type        = string
}

variable "instance_type" {
  type    = string
  default = "t3.small"
}

variable "app_port" {
  type    = number
  default = 8080
}
