job "durations" {
  target {
    devices = ["a"]
  }
  window "w" {
    cron     = "0 1 * * *"
    duration = "3 hours" # ERROR: Invalid duration
  }
  window "short" {
    cron     = "0 1 * * *"
    duration = "30s" # ERROR: Duration out of range
  }
  step "s" {
    method           = "m"
    timeout          = "1d"     # ERROR: Invalid duration
    response_timeout = "1s"     # ERROR: Duration out of range
    connect_timeout  = "1500ms" # ERROR: Invalid duration
  }
  step "t" {
    method           = "m"
    response_timeout = "60s"
    timeout          = "30s" # ERROR: Step timeout shorter than response timeout
    retry {
      attempts = 0     # ERROR: Invalid attempts
      backoff  = "-1s" # ERROR: Duration out of range
    }
  }
  step "u" {
    method  = "m"
    timeout = 30 # ERROR: Invalid duration
  }
}
