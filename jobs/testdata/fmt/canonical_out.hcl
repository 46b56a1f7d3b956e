job "reboot" {
  target {
    devices = ["press-01", "press-02"]
  }

  step "reboot" {
    method  = "rebootDevice"
    payload = {}
    success = try(timecmp(reported.rebootTime, step.started_at) > 0, false)
    timeout = "5m"
  }
}
