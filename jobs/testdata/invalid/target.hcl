job "empty" {
  target { # ERROR: Empty target
  }
  step "s" {
    method = "m"
  }
}

job "both" {
  target {
    query   = "tags.site = 'a'"
    devices = ["a"] # ERROR: Conflicting target
  }
  step "s" {
    method = "m"
  }
}

job "empty-list" {
  target {
    devices = [] # ERROR: Empty target
  }
  step "s" {
    method = "m"
  }
}

job "select" {
  target {
    query = "SELECT * FROM devices WHERE tags.site = 'a'" # ERROR: Query must be a condition
  }
  step "s" {
    method = "m"
  }
}

job "ids" {
  target {
    devices = [
      "press-01",
      "press 02", # ERROR: Invalid device ID
      "press-01", # ERROR: Duplicate device ID
    ]
    follow = true # ERROR: Follow needs a query
  }
  step "s" {
    method = "m"
  }
}

job "blank-query" {
  target {
    query = "  " # ERROR: Empty target
  }
  step "s" {
    method = "m"
  }
}

job "no-target" { # ERROR: Missing target block
  step "s" {
    method = "m"
  }
}

job "no-steps" { # ERROR: Job has no steps
  target {
    devices = ["a"]
  }
}

job "bad name" { # ERROR: Invalid job name
  target {
    devices = ["a"]
  }
  step "s" {
    method = "m"
  }
}
