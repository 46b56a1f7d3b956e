group "a" {
  count = 5
  id    = "dev-%d"
}

group "b" { # ERROR: Duplicate device ID
  count = 3
  id    = "dev-%d"
  first = 5
}
