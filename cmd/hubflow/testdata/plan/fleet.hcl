# The fleet behind the plan golden files.
defaults {
  reported = { fwVersion = "2.0.0" }
  reboot { duration = "50ms..100ms" }
  firmware {
    downloading = "50ms..100ms"
    applying    = "50ms..100ms"
  }
}

group "press" {
  count = 6
  id    = "press-%02d"
  tags  = { site = "plant-7", timezone = "Europe/Berlin" }
}

group "conveyor" {
  count = 3
  id    = "conveyor-%02d"
  tags  = { site = "newark", timezone = "America/New_York" }
}

group "sensor" {
  count = 2
  id    = "sensor-%02d"
  tags  = { site = "osaka", timezone = "Asia/Tokyo" }
}

group "lost" {
  count = 1
  id    = "lost-%02d"
  tags  = { site = "osaka" }
}
