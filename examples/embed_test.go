package examples_test

import (
	"bytes"
	"os"
	"testing"

	"github.com/hubflow/hubflow/examples"
	"github.com/hubflow/hubflow/simulator"
)

// TestFleet checks that the built-in fleet is this folder's fleet.hcl and
// that the simulator takes it as it is.
func TestFleet(t *testing.T) {
	onDisk, err := os.ReadFile("fleet.hcl")
	if err != nil {
		t.Fatal(err)
	}
	got := examples.Fleet()
	if !bytes.Equal(got, onDisk) {
		t.Errorf("got %d built-in bytes, want the %d of fleet.hcl", len(got), len(onDisk))
	}
	got[0] = 0 // a caller's copy; the next one is whole again
	if examples.Fleet()[0] != onDisk[0] {
		t.Error("changing a returned copy changed the built-in fleet")
	}
	fleet, diags := simulator.LoadFleet(examples.FleetName, examples.Fleet())
	if diags.HasErrors() {
		t.Fatalf("load %s: %v", examples.FleetName, diags)
	}
	if fleet == nil {
		t.Fatal("got no fleet")
	}
}
