variable "want" {
  default = "2.1.0"
}

job "conditions" {
  target {
    devices = ["a"]
  }
  step "refs" {
    method   = "m"
    progress = reportd.status # ERROR: Unknown variable
    success  = step.finished_at != null # ERROR: Unsupported attribute
    failure  = var.wanted == "x" # ERROR: Reference to undeclared variable
  }
  step "funcs" {
    method   = "m"
    progress = try(lowr(reported.status), "") # ERROR: Call to unknown function
    success  = "maybe" # ERROR: Invalid success expression
    failure  = contains(reported.errors) # ERROR: Not enough function arguments
  }
  step "types" {
    method  = "m"
    success = 42 # ERROR: Invalid success expression
    failure = job.id == "x" # ERROR: Unsupported attribute
  }
  step "ok" {
    method   = "m"
    progress = reported.fw.version
    success  = reported.fw.version == var.want && job.name == "conditions"
  }
}
