job "broken" {
  target {
    query = = "tags.site = 'a'" # ERROR: Invalid expression
  }
}
