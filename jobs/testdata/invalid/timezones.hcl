job "zones" {
  target {
    devices = ["a"]
  }
  window "unknown" {
    cron     = "0 1 * * *"
    duration = "1h"
    timezone = "Europe/Atlantis" # ERROR: Unknown time zone
  }
  window "local" {
    cron     = "0 1 * * *"
    duration = "1h"
    timezone = "Local" # ERROR: Unknown time zone
  }
  window "both" {
    cron          = "0 1 * * *"
    duration      = "1h"
    timezone      = "UTC"
    timezone_from = tags.timezone # ERROR: Conflicting time zones
  }
  window "cron-tz" {
    cron     = "CRON_TZ=Europe/Berlin 0 1 * * *" # ERROR: Conflicting time zones
    duration = "1h"
    timezone = "Europe/Berlin"
  }
  window "step-ref" {
    cron          = "0 1 * * *"
    duration      = "1h"
    timezone_from = step.started_at # ERROR: Unknown variable
  }
  window "number" {
    cron          = "0 1 * * *"
    duration      = "1h"
    timezone_from = [1, 2] # ERROR: Invalid timezone_from expression
  }
  step "s" {
    method = "m"
  }
}
