group "f" {
  count = 2
  firmware {
    version_pattern = "([0-9" # ERROR: Invalid version pattern
  }
  reboot {
    duration = "1s"
  }
  reboot { # ERROR: Duplicate reboot
    duration = "2s"
  }
}
