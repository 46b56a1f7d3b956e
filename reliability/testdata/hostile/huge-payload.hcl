# Payloads the hub would refuse: over 128 KB once sent as JSON, built by
# a function rather than written out.

job "huge" {
  target {
    devices = ["a"]
  }
  step "padded" {
    method  = "firmwareUpdate"
    payload = { pad = format("%0200000d", 1) } # ERROR: Payload too large
  }
}

job "repeated" {
  target {
    devices = ["a"]
  }
  step "joined" {
    method  = "firmwareUpdate"
    payload = { pad = join("", [for i in range(1000) : format("%0200d", i)]) } # ERROR: Payload too large
  }
}
