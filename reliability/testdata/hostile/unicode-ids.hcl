# Device ids outside the hub's 7-bit alphabet: accents, a right-to-left
# override that makes an id read as another, an emoji, a zero-width space,
# full-width letters, a NUL.

job "unicode" {
  target {
    devices = [
      "pump-é",        # ERROR: Invalid device ID
      "\u202e1234",    # ERROR: Invalid device ID
      "😀",            # ERROR: Invalid device ID
      "pump\u200b01",  # ERROR: Invalid device ID
      "ｐｕｍｐ",      # ERROR: Invalid device ID
      "nul\u0000",     # ERROR: Invalid device ID
    ]
  }
  step "s" {
    method = "rebootDevice"
  }
}
