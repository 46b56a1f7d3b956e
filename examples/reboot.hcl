# Reboot the presses of plant-7, a few at a time.
#
# The rebootDevice method only starts a reboot; a press has rebooted once it
# reports a rebootTime later than the moment hubflow asked it to. Presses
# that are switched off are retried until the step times out.
#
#   hubflow validate examples/reboot.hcl
#   hubflow run examples/reboot.hcl

job "reboot-plant-7-presses" {
  description = "Reboot every press of plant-7"

  target {
    query = "tags.site = 'plant-7' AND tags.model IN ['PX-100', 'PX-200']"
  }

  rollout {
    concurrency = 4
    rate        = "2/s"
  }

  step "reboot" {
    method           = "rebootDevice"
    response_timeout = "30s"

    progress = try(reported.rebootTime, null)
    success  = try(timecmp(reported.rebootTime, step.started_at) > 0, false)
    timeout  = "3m"

    retry {
      attempts = 5
      backoff  = "5s"
    }
  }
}
