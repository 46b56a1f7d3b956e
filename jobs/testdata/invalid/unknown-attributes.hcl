job "typos" {
  descripton = "typo in an attribute" # ERROR: Unsupported argument

  target {
    query = "tags.site = 'a'"
    quer  = "x" # ERROR: Unsupported argument
  }

  step "s" {
    methd  = "reboot" # ERROR: Unsupported argument
    method = "reboot"
  }

  windows "w" { # ERROR: Unsupported block type
  }
}
