# Device ids that try to break out of the query hubflow builds from them
# (deviceId IN ['...']). Ids with spaces or backslashes are not IoT Hub
# device ids at all, so they are refused before anything is sent.

job "injection" {
  target {
    devices = [
      "x' OR 1=1 --", # ERROR: Invalid device ID
      "a\\'b",        # ERROR: Invalid device ID
      "x'] OR true OR deviceId IN ['", # ERROR: Invalid device ID
      "a\nb",         # ERROR: Invalid device ID
    ]
  }
  step "s" {
    method = "rebootDevice"
  }
}
