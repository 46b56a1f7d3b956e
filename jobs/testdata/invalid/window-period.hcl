job "period" {
  target {
    devices = ["a"]
  }
  window "overlapping" {
    cron     = "*/30 * * * *"
    duration = "1h" # ERROR: Window longer than its period
  }
  window "daily" {
    cron     = "0 1 * * *"
    duration = "25h" # ERROR: Window longer than its period
  }
  window "weekdays" {
    cron     = "0 22 * * 1-5"
    duration = "24h"
  }
  window "missing-duration" { # ERROR: Missing required argument
    cron = "0 1 * * *"
  }
  step "s" {
    method = "m"
  }
}
