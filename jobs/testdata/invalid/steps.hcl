job "steps" {
  target {
    devices = ["a"]
  }
  step "both" {
    method  = "m"
    desired = { a = 1 } # ERROR: Conflicting step action
  }
  step "neither" { # ERROR: Step has no action
    timeout = "1m"
  }
  step "big" {
    method  = "m"
    payload = { blob = format("%0140000d", 0) } # ERROR: Payload too large
  }
  step "desired-payload" {
    desired = { a = 1 }
    payload = { b = 2 } # ERROR: Argument only for method steps
  }
  step "desired-string" {
    desired = "on" # ERROR: Invalid desired patch
  }
  step "desired-key" {
    desired = { "a.b" = 1 } # ERROR: Invalid desired property name
  }
  step "accept" {
    method        = "m"
    accept_status = [] # ERROR: Invalid accept_status
  }
  step "accept-type" {
    method        = "m"
    accept_status = ["ok"] # ERROR: Incorrect attribute value type
  }
  step "empty-method" {
    method = "" # ERROR: Empty method name
  }
  step "device-payload" {
    method  = "m"
    payload = { fw = reported.fwVersion } # ERROR: Device value not allowed here
  }
  step "two-retries" {
    method = "m"
    retry {
      attempts = 2
    }
    retry { # ERROR: Duplicate retry block
      attempts = 3
    }
  }
}
