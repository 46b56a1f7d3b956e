variable "count" {
  type    = number
  default = "many" # ERROR: Invalid default value for variable
}

variable "kind" {
  type = strng # ERROR: Invalid type specification
}

variable "count" { # ERROR: Duplicate variable name
  default = 1
}

variable "bad name!" { # ERROR: Invalid variable name
  default = 1
}

variable "extra" {
  default = 1
  value   = 2 # ERROR: Unsupported argument
}

job "uses-vars" {
  target {
    devices = ["a"]
  }
  step "s" {
    method = "m"
  }
}
