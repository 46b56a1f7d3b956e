group "press" {
  count = 2
  teleport { # ERROR: Unknown behaviour
    distance = 3
  }
  offline = 0.1 # ERROR: Behaviour written as an argument
  colour = "red" # ERROR: Unsupported argument
}

defaults {
  rebot { # ERROR: Unknown behaviour
    duration = "1s"
  }
}
