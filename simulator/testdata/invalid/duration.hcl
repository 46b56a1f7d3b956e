group "press" {
  count = 4
  reboot {
    duration = "3 seconds" # ERROR: Invalid duration
  }
  firmware {
    downloading = "3s..1s" # ERROR: Invalid duration
    applying    = "-1s"    # ERROR: Invalid duration
  }
  slow {
    delay = 5 # ERROR: Invalid duration
  }
  flaky {
    disconnects_per_hour = -2 # ERROR: Invalid disconnect rate
    downtime             = "1s.." # ERROR: Invalid duration
  }
}
