variable "site" {
  type    = string
  default = "plant 7"
  validation {
    condition     = can(regex("^[a-z0-9-]+$", var.site)) # ERROR: Invalid value for variable
    error_message = "A site is lower-case letters, digits and dashes."
  }
}

variable "ratio" {
  default = 0.5
  validation {
    condition     = var.ratio > 0 && var.ratio <= 1
    error_message = "A ratio is in (0, 1]."
  }
}

job "validated" {
  target {
    query = "tags.site = '${var.site}'"
  }
  step "s" {
    method = "m"
  }
}
