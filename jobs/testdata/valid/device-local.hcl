variable "sites" {
  type        = list(string)
  default     = ["plant-7", "plant-9"]
  description = "Sites to update."
}

variable "token" {
  type      = string
  default   = "not-a-real-token"
  sensitive = true
}

job "nightly" {
  target {
    query  = "tags.site IN ['${join("', '", var.sites)}']"
    follow = true
  }

  schedule {
    cron             = "CRON_TZ=Europe/Berlin 30 2 * * 1-5"
    prohibit_overlap = false
  }

  window "night" {
    cron          = "0 2 * * *"
    duration      = "2h"
    timezone_from = tags.timezone
  }

  window "weekend" {
    cron          = "0 8 * * sat"
    duration      = "10h"
    timezone_from = lower(try(tags.tz, "UTC")) == "utc" ? "UTC" : tags.tz
  }

  step "collect" {
    method        = "collectLogs"
    payload       = { token = var.token, job = job.name, since = "24h" }
    accept_status = [200, 202]
    progress      = try(reported.logs.uploaded, 0)
    success       = startswith(try(reported.logs.url, ""), "https://") && device_id != ""
    failure       = reported.logs.error != null
    timeout       = "30m"
  }
}

job "at-once" {
  description = "A single run at a fixed time."
  target {
    query = "tags.site = 'lab'"
  }
  schedule {
    at = "2026-12-01T00:00:00Z"
  }
  rollout {
    rate = "2/h"
    abort {
      failure_ratio = 1
      count         = ["timed_out"]
      action        = "abort"
    }
  }
  step "ping" {
    method           = "ping"
    response_timeout = "5s"
    connect_timeout  = "0s"
    timeout          = "10s"
    retry {
      attempts = 1
      backoff  = "0s"
    }
  }
}
