package examples

import _ "embed" // for the go:embed directive

// FleetName names the built-in fleet in messages and diagnostics: the
// file it was built from.
const FleetName = "examples/fleet.hcl"

//go:embed fleet.hcl
var fleet string

// Fleet returns the source of examples/fleet.hcl as it was when hubflow was
// built.
func Fleet() []byte { return []byte(fleet) }
