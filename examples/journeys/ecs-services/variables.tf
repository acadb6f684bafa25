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
  description = "Subnets of the tasks."
  type        = list(string)
}

variable "certificate_arn" {
  description = "ACM certificate of the HTTPS listener."
  type        = string
}

variable "runner_cidr" {
  description = "Where Terraform runs: the deployment checks the standby colour through the test listener from there."
  type        = string
}

variable "image_repository" {
  description = "e.g. 123456789012.dkr.ecr.us-west-2.amazonaws.com/web"
  type        = string
}

variable "release" {
  description = "The image tag to serve. A new tag lands on the standby colour's service; setting it back to the previous tag is a rollback."
  type        = string
}

variable "desired_count" {
  description = "Tasks per colour. Both colours keep this many: the standby colour is the instant rollback."
  type        = number
  default     = 3
}

variable "container_port" {
  type    = number
  default = 8080
}
