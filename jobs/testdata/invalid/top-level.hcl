step "outside" { # ERROR: Unsupported block type
  method = "rebootDevice"
}

name = "x" # ERROR: Unsupported argument

job "ok" {
  target {
    devices = ["a"]
  }
  step "s" {
    method = "m"
  }
}
