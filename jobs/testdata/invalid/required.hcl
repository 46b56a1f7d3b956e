variable "required" { # ERROR: No value for required variable
  type = string
}

variable "optional" {
  type    = string
  default = "x"
}

job "needs-a-value" {
  target {
    devices = [var.required]
  }
  step "s" {
    method = "m"
  }
}
