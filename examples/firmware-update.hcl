# Roll firmware out to every site: five canary devices first, then the rest
# at a steady pace, inside a maintenance window, pausing if too many fail.
#
# The window defaults to hourly windows back to back (always open) so that a
# demo run starts at once; a real rollout narrows it, for example to 01:00
# to 04:00 UTC:
#
#   hubflow plan examples/firmware-update.hcl
#   hubflow run examples/firmware-update.hcl -var 'window_cron=0 1 * * *' -var window_duration=3h

variable "version" {
  description = "Firmware version to install."
  type        = string
  default     = "2.1.0"

  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+$", var.version))
    error_message = "A firmware version has the form MAJOR.MINOR.PATCH, such as 2.1.0."
  }
}

variable "sites" {
  description = "Sites whose devices get the update."
  type        = list(string)
  default     = ["plant-7", "newark", "osaka"]
}

variable "window_cron" {
  description = "When the maintenance window opens (cron, UTC)."
  type        = string
  default     = "0 * * * *"
}

variable "window_duration" {
  description = "How long the maintenance window stays open."
  type        = string
  default     = "1h"
}

job "firmware-update" {
  description = "Firmware ${var.version} for ${join(", ", var.sites)}"

  target {
    query = "tags.site IN [${join(", ", [for s in var.sites : "'${s}'"])}] AND properties.reported.fwVersion != '${var.version}'"
  }

  window "maintenance" {
    cron     = var.window_cron
    duration = var.window_duration
    timezone = "UTC"
  }

  rollout {
    concurrency = 10
    rate        = "5/s"
    canary      = 5

    abort {
      failure_ratio = 0.2
      min_finished  = 10
      action        = "pause"
    }
  }

  step "update" {
    method           = "firmwareUpdate"
    payload          = { fwPackageUri = "https://firmware.example.com/edge-${var.version}.bin" }
    response_timeout = "30s"
    connect_timeout  = "10s"

    progress = reported.firmwareStatus
    success  = reported.firmwareStatus == "completed" && reported.fwVersion == var.version
    failure  = contains(["failed", "error"], try(reported.firmwareStatus, ""))
    # A device that is offline is retried until then, and ends timed_out.
    # The simulated fleet updates in seconds; give real devices longer.
    timeout = "1m"

    retry {
      attempts = 3
      backoff  = "10s"
    }
  }

  step "reboot" {
    method  = "rebootDevice"
    success = try(timecmp(reported.rebootTime, step.started_at) > 0, false)
    timeout = "1m"
  }
}
