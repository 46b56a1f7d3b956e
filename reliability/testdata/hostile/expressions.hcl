# Expressions that cannot be evaluated, or that try to reach outside the
# job file: each is an error at validate time, before any hub is touched.

job "bad-expressions" {
  target {
    devices = ["a"]
  }
  step "divide" {
    method  = "m"
    payload = { a = 1 / 0 } # ERROR: Invalid payload
  }
  step "convert" {
    method  = "m"
    payload = { a = tonumber("x") } # ERROR: Invalid function argument
  }
  step "decode" {
    method  = "m"
    payload = { a = jsondecode("{") } # ERROR: Error in function call
  }
  step "read-file" {
    method  = "m"
    payload = { a = file("/etc/passwd") } # ERROR: Call to unknown function
  }
  step "environment" {
    method  = "m"
    payload = { a = env("IOTHUB_CONNECTION_STRING") } # ERROR: Call to unknown function
  }
  step "undeclared" {
    method  = "m"
    payload = { a = var.missing } # ERROR: Reference to undeclared variable
  }
  step "device-value" {
    method  = "m"
    payload = { a = reported.fwVersion } # ERROR: Device value not allowed here
  }
  step "unknown-root" {
    method  = "m"
    success = secrets.key == "x" # ERROR: Unknown variable
  }
}
