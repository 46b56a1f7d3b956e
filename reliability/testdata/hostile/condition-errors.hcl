# RUN: failed
# Conditions that fail for every device at every observation (a number
# read from a string that is not one): the error is recorded once per
# device, the condition counts as not satisfied, and the step times out.

job "condition-errors" {
  target {
    devices = ["a*", "?"]
  }
  step "mark" {
    desired = { condition_errors = "not a number" }
    success = tonumber(desired.condition_errors) > 0
    timeout = "3s"
  }
}
