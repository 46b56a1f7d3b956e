# A device id one character longer than the hub allows, and an empty one.

job "long" {
  target {
    devices = [
      "${join("", [for i in range(129) : "x"])}", # ERROR: Invalid device ID
      "", # ERROR: Invalid device ID
    ]
  }
  step "s" {
    method = "rebootDevice"
  }
}
