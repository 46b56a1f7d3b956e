# Reboot every device once a night at 03:00 in its own time zone, which
# each device's twin holds in tags.timezone. A device without a valid zone
# is skipped, with the reason recorded.
#
# A run is created every day at noon UTC; each device then waits for its own
# 03:00, which comes within the next 24 hours wherever it is. The query is
# re-run at each window opening, so devices added during the day join.
#
#   hubflow plan examples/nightly-local.hcl

job "nightly-reboot" {
  description = "Nightly reboot at 03:00 device-local time"

  target {
    query  = "tags.site IN ['plant-7', 'newark', 'osaka']"
    follow = true
  }

  schedule {
    cron             = "0 12 * * *"
    prohibit_overlap = true
  }

  window "night" {
    cron          = "0 3 * * *"
    duration      = "1h"
    timezone_from = tags.timezone
  }

  rollout {
    concurrency = 10
    rate        = "1/s"
  }

  step "reboot" {
    method   = "rebootDevice"
    progress = try(reported.rebootTime, null)
    success  = try(timecmp(reported.rebootTime, step.started_at) > 0, false)
    timeout  = "10m"
  }
}
