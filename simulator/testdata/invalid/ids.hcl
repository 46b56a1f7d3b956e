group "a" {
  count = 3
  id    = "dev" # ERROR: Invalid ID pattern
}

group "b" {
  count = 3
  id    = "dev %d" # ERROR: Invalid ID pattern
}

group "c" {
  count = 1.5 # ERROR: Invalid count
}

group "a" { # ERROR: Duplicate group
  count = 1
}

group "d" {
  count = 2
  id    = "one-device" # ERROR: Invalid ID pattern
}
