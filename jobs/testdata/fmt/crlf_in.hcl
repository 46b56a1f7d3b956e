job "crlf" {
  target {
      devices = ["a"]
  }
  step "s" {
    method="m"
  }
}
