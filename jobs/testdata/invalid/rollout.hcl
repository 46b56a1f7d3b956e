job "rollout" {
  target {
    devices = ["a"]
  }
  rollout {
    concurrency = 0      # ERROR: Invalid concurrency
    rate        = "fast" # ERROR: Invalid rate
    canary      = -1     # ERROR: Invalid canary
    abort {
      failure_ratio = 1.5           # ERROR: Invalid failure_ratio
      min_finished  = 0             # ERROR: Invalid min_finished
      count         = ["crashed"]   # ERROR: Invalid count
      action        = "stop"        # ERROR: Invalid abort action
    }
  }
  step "s" {
    method = "m"
  }
}

job "rates" {
  target {
    devices = ["a"]
  }
  rollout {
    rate = "10/d" # ERROR: Invalid rate
    abort { # ERROR: Missing required argument
    }
  }
  step "s" {
    method = "m"
  }
}

job "ratio-zero" {
  target {
    devices = ["a"]
  }
  rollout {
    concurrency = 2.5 # ERROR: Invalid concurrency
    abort {
      failure_ratio = 0 # ERROR: Invalid failure_ratio
    }
  }
  step "s" {
    method = "m"
  }
}
