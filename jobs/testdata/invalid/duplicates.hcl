job "dup" {
  target {
    devices = ["a"]
  }
  target { # ERROR: Duplicate target block
    devices = ["b"]
  }
  window "w" {
    cron     = "0 1 * * *"
    duration = "1h"
  }
  window "w" { # ERROR: Duplicate window name
    cron     = "0 2 * * *"
    duration = "1h"
  }
  rollout {
    concurrency = 1
  }
  rollout { # ERROR: Duplicate rollout block
    concurrency = 2
  }
  step "s" {
    method = "m"
  }
  step "s" { # ERROR: Duplicate step name
    method = "n"
  }
}

job "dup" { # ERROR: Duplicate job name
  target {
    devices = ["a"]
  }
  step "s" {
    method = "m"
  }
}
