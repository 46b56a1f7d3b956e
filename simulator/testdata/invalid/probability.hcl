group "press" {
  count = 4
  firmware {
    fail_downloading = 0.5
    fail_applying    = 1.5 # ERROR: Probability out of range
  }
  offline {
    fraction = -0.1 # ERROR: Fraction out of range
  }
  maintenance_window {
    accept = "often" # ERROR: Invalid number
  }
}
