variable "release" {
  description = "The build to release, e.g. \"2024.06.2\". Every region's instances of a build carry it in their Release tag."
  type        = string
}

variable "app_port" {
  type    = number
  default = 8080
}

variable "load_balancer_name" {
  description = "The application load balancer's name, the same in every region."
  type        = string
  default     = "web"
}
