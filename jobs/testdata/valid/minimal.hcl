job "reboot-one" {
  target {
    devices = ["press-01"]
  }
  step "reboot" {
    method = "rebootDevice"
  }
}
