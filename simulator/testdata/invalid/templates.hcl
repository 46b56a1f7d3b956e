group "a" {
  count = 2
  tags = {
    model = weighted({ "PX-100" = -1 }) # ERROR: Invalid function argument
  }
}

group "b" {
  count = 2
  tags  = "plant-7" # ERROR: Invalid tags
}

group "c" {
  count    = 2
  reported = { "fw version" = "1.0" } # ERROR: Invalid reported
}

group "d" {
  count = 2
  tags  = { site = one_of([]) } # ERROR: Invalid function argument
}

group "e" {
  count = 2
  tags  = { site = nosuch(1) } # ERROR: Call to unknown function
}
