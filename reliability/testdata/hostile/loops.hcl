# Expressions that would build enormous values: range() stops at 1024
# values, so a long loop is an error rather than a hang.

job "loops" {
  target {
    devices = ["a"]
  }
  step "long-range" {
    method  = "m"
    payload = { a = [for i in range(100000000) : i] } # ERROR: Error in function call
  }
  step "backwards" {
    method  = "m"
    payload = { a = [for i in range(0, -100000000, 1) : i] } # ERROR: Invalid function argument
  }
}
