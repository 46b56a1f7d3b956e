job "bad-cron" {
  target {
    devices = ["a"]
  }
  schedule {
    cron = "0 25 * * *" # ERROR: Invalid cron spec
  }
  window "every" {
    cron     = "@every 1h" # ERROR: Invalid cron spec
    duration = "1h"
  }
  window "zone" {
    cron     = "CRON_TZ=Mars/Olympus 0 1 * * *" # ERROR: Unknown time zone
    duration = "1h"
  }
  window "never" {
    cron     = "0 1 30 2 *" # ERROR: Window never opens
    duration = "1h"
  }
  window "six" {
    cron     = "0 0 1 * * *" # ERROR: Invalid cron spec
    duration = "1h"
  }
  window "tz-only" {
    cron     = "CRON_TZ=UTC" # ERROR: Invalid cron spec
    duration = "1h"
  }
  step "s" {
    method = "m"
  }
}

job "both" {
  target {
    devices = ["a"]
  }
  schedule {
    cron = "0 0 * * *"
    at   = "2026-12-01T00:00:00Z" # ERROR: Conflicting schedule
  }
  step "s" {
    method = "m"
  }
}

job "bad-at" {
  target {
    devices = ["a"]
  }
  schedule {
    at = "2026-12-01 00:00" # ERROR: Invalid time
  }
  step "s" {
    method = "m"
  }
}

job "empty-schedule" {
  target {
    devices = ["a"]
  }
  schedule { # ERROR: Empty schedule
  }
  step "s" {
    method = "m"
  }
}

job "never-fires" {
  target {
    devices = ["a"]
  }
  schedule {
    cron = "0 0 31 4 *" # ERROR: Schedule never fires
  }
  step "s" {
    method = "m"
  }
}
