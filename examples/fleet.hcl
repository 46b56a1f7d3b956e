# The simulated fleet behind `hubflow run` when no hub connection string is
# given, and a starting point for `hubflow simulate -fleet FILE`.
#
# 40 devices on three sites and three time zones. Most run firmware 2.0.0.
# Reboots and firmware stages take a second or three, so a firmware job over
# the whole fleet ends in about a minute. A few devices fail an update, two
# never come online, some answer late and some drop their connection now and
# then. Every draw follows the simulator's seed, so a given seed always gives
# the same fleet.

defaults {
  reported = {
    fwVersion = weighted({ "2.0.0" = 9, "1.9.4" = 1 })
  }

  reboot {
    duration = "1s..3s"
  }

  firmware {
    downloading      = "1s..3s"
    applying         = "1s..2s"
    fail_downloading = 0.02
    fail_applying    = 0.02
  }

  maintenance_window {
    delay = "200ms..1s"
  }
}

group "plant7-press" {
  count = 12
  id    = "plant7-press-%03d"

  tags = {
    site     = "plant-7"
    line     = one_of(["A", "B", "C"])
    model    = weighted({ "PX-100" = 3, "PX-200" = 1 })
    timezone = "Europe/Berlin"
  }

  offline {
    fraction = 0.1 # one press is switched off for the whole run
  }
}

group "plant7-robot" {
  count = 8
  id    = "plant7-robot-%03d"

  tags = {
    site     = "plant-7"
    line     = one_of(["A", "B", "C"])
    model    = "RB-6"
    timezone = "Europe/Berlin"
  }

  slow {
    fraction = 0.25
    delay    = "2s..4s"
  }
}

group "newark-conveyor" {
  count = 10
  id    = "nwk-conveyor-%03d"

  tags = {
    site     = "newark"
    model    = one_of(["CV-10", "CV-20"])
    timezone = "America/New_York"
  }

  flaky {
    fraction             = 0.2
    disconnects_per_hour = 12
    downtime             = "3s..10s"
  }

  offline {
    fraction = 0.1
  }
}

group "osaka-sensor" {
  count = 10
  id    = "osaka-sensor-%03d"

  tags = {
    site     = "osaka"
    model    = "TH-3"
    timezone = "Asia/Tokyo"
  }

  reported = {
    calibration = { interval = "30d", offset = 0.2 }
  }
}
