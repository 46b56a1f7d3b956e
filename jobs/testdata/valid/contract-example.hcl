variable "image_uri" {
  type    = string
  default = "https://firmware.example.com/edge-2.1.0.bin"
}

job "firmware-2-1-0" {
  description = "Firmware 2.1.0 for plant-7, at night, device-local time"

  target {
    # IoT Hub query condition (the WHERE clause of SELECT * FROM devices)
    query = "tags.site = 'plant-7' AND properties.reported.fwVersion != '2.1.0'"
    # or:  devices = ["press-01", "press-02"]   (any length: chunked under the query limit)
    follow = false                # true: re-run the query at each window opening, so devices
                                  # that start matching later join the run (continuous job)
  }

  schedule {
    cron = "0 0 * * *"            # when a run is created (robfig/cron/v3; CRON_TZ= allowed)
    # or:  at = "2026-12-01T00:00:00Z"   (one run)
    # none: a run is created only by `hubflow run`
    prohibit_overlap = true       # default: no new run while the previous one is unfinished
  }

  window "night" {
    cron     = "0 1 * * *"        # the window opens at 01:00 ...
    duration = "3h"               # ... and closes at 04:00
    timezone = "Europe/Berlin"    # a fixed IANA zone, or:
    # timezone_from = tags.timezone   # each device's own zone, read from its twin
  }

  rollout {
    concurrency = 100             # device executions in flight at once
    rate        = "50/s"          # new method invocations per second (token bucket)
    canary      = 5               # these many devices first; the rest wait until all succeed
    abort {
      failure_ratio = 0.10        # trip when (failed+timed_out)/finished >= 10% ...
      min_finished  = 20          # ... once at least 20 have finished
      count         = ["failed", "timed_out"]   # which outcomes count (default both)
      action        = "pause"     # "pause": wait for `hubflow resume RUN`; "abort": end the run
    }
  }

  step "update" {
    method           = "firmwareUpdate"
    payload          = { fwPackageUri = var.image_uri }
    response_timeout = "30s"      # hub responseTimeoutInSeconds
    connect_timeout  = "10s"      # hub connectTimeoutInSeconds (device offline)
    accept_status    = [200]      # device's method status codes that count as accepted

    progress = reported.firmwareStatus                      # recorded on every change
    success  = reported.firmwareStatus == "completed"
    failure  = contains(["failed", "error"], reported.firmwareStatus)
    timeout  = "20m"              # from invocation to success

    retry {
      attempts = 3                # invocations that fail transiently (offline, 429, 5xx, timeout)
      backoff  = "30s"            # first delay; doubles, with jitter
    }
  }

  step "reboot" {
    method  = "rebootDevice"
    payload = {}
    success = try(timecmp(reported.rebootTime, step.started_at) > 0, false)
    timeout = "5m"
  }
}
