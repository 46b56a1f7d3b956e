package bench

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/hubflow/hubflow/iothub"
)

// Workflow names, as -workflow takes them.
const (
	WorkflowFirmware = "firmware"
	WorkflowReboot   = "reboot"
	WorkflowTwoStep  = "two-step"
)

// Workflows lists the workflow names in the order help shows them.
func Workflows() []string { return []string{WorkflowFirmware, WorkflowReboot, WorkflowTwoStep} }

// Device ID patterns and the reported property that tells the benchmarked
// fleet from the baseline's sample, so that the job's target is one query.
const (
	fleetIDPattern  = "bench-%05d"
	sampleIDPattern = "bench-sample-%02d"
	groupProperty   = "benchGroup"
	fleetGroup      = "fleet"
	sampleGroup     = "sample"
	// pingMethod is a method no simulated device implements: the device
	// client answers it 404 at once, which makes it the cheapest round trip
	// through hub and device.
	pingMethod = "hubflowBenchPing"

	initialVersion = "1.0.0"
	targetVersion  = "2.0.0"
	firmwareURI    = "https://firmware.example.com/bench-" + targetVersion + ".bin"
	// The workflow limit runs after the job and installs another version,
	// so that nothing it leaves could look like the job's success.
	limitFirmwareURI = "https://firmware.example.com/bench-3.0.0.bin"
)

// workflow is what one device execution asks of the hub and the device.
type workflow struct {
	name  string
	steps []stepKind
}

type stepKind int

const (
	stepFirmware stepKind = iota
	stepReboot
)

// stepCost is what one step costs the hub besides the runner's own
// observation.
type stepCost struct{ methods, devicePatches, deviceReads int }

// cost is what the simulated devices do: a firmware update reports four
// patches (downloading, downloadComplete, applying, completed); a reboot
// reports rebootTime once and, reconnecting, reads its twin twice (the
// device client's own re-read after a reconnect, and the device's).
func (s stepKind) cost() stepCost {
	if s == stepFirmware {
		return stepCost{methods: 1, devicePatches: 4}
	}
	return stepCost{methods: 1, devicePatches: 1, deviceReads: 2}
}

func lookupWorkflow(name string) (workflow, error) {
	switch name {
	case WorkflowFirmware:
		return workflow{name, []stepKind{stepFirmware}}, nil
	case WorkflowReboot:
		return workflow{name, []stepKind{stepReboot}}, nil
	case WorkflowTwoStep:
		return workflow{name, []stepKind{stepFirmware, stepReboot}}, nil
	}
	return workflow{}, fmt.Errorf("unknown workflow %q: want %s", name, strings.Join(Workflows(), ", "))
}

// methods is the number of direct-method calls one device execution needs.
func (w workflow) methods() int {
	n := 0
	for _, s := range w.steps {
		n += s.cost().methods
	}
	return n
}

func (w workflow) devicePatches() int {
	n := 0
	for _, s := range w.steps {
		n += s.cost().devicePatches
	}
	return n
}

func (w workflow) deviceReads() int {
	n := 0
	for _, s := range w.steps {
		n += s.cost().deviceReads
	}
	return n
}

// fleetHCL is the fleet file of one size: n devices for the runner and
// sample devices for the baseline, every stage taking stage.
func fleetHCL(n, sample int, stage time.Duration) string {
	d := stage.String()
	var b strings.Builder
	fmt.Fprintf(&b, `defaults {
  reported = { fwVersion = %q }
  reboot {
    duration = %q
  }
  firmware {
    downloading = %q
    applying    = %q
  }
}

group %q {
  count    = %d
  id       = %q
  reported = { %s = %q }
}
`, initialVersion, d, d, d, fleetGroup, n, fleetIDPattern, groupProperty, fleetGroup)
	if sample > 0 {
		fmt.Fprintf(&b, `
group %q {
  count    = %d
  id       = %q
  reported = { %s = %q }
}
`, sampleGroup, sample, sampleIDPattern, groupProperty, sampleGroup)
	}
	return b.String()
}

// jobHCL is the job the runner carries out: every step of w on the fleet
// group, concurrency devices at a time, at most rate new invocations per
// second (0: no rate). Conditions are those of the examples.
func jobHCL(w workflow, n, concurrency int, rate float64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "job %q {\n", "bench-"+w.name)
	fmt.Fprintf(&b, "  description = %q\n\n", fmt.Sprintf("hubflow bench: %s on %d devices", w.name, n))
	fmt.Fprintf(&b, "  target {\n    query = %q\n  }\n\n", fmt.Sprintf("properties.reported.%s = '%s'", groupProperty, fleetGroup))
	fmt.Fprintf(&b, "  rollout {\n    concurrency = %d\n", concurrency)
	if rate > 0 {
		fmt.Fprintf(&b, "    rate        = %q\n", fmt.Sprintf("%.3f/s", rate))
	}
	b.WriteString("  }\n")
	for _, s := range w.steps {
		switch s {
		case stepFirmware:
			fmt.Fprintf(&b, `
  step "update" {
    method           = "firmwareUpdate"
    payload          = { fwPackageUri = %q }
    response_timeout = "30s"

    progress = reported.firmwareStatus
    success  = reported.firmwareStatus == "completed" && reported.fwVersion == %q
    failure  = try(reported.firmwareStatus, "") == "failed"
    timeout  = "10m"

    retry {
      attempts = 5
      backoff  = "1s"
    }
  }
`, firmwareURI, targetVersion)
		case stepReboot:
			b.WriteString(`
  step "reboot" {
    method           = "rebootDevice"
    response_timeout = "30s"

    progress = try(reported.rebootTime, null)
    success  = try(timecmp(reported.rebootTime, step.started_at) > 0, false)
    timeout  = "10m"

    retry {
      attempts = 5
      backoff  = "1s"
    }
  }
`)
		}
	}
	b.WriteString("}\n")
	return b.String()
}

// baselineCall is one step as the tutorial back-end app does it: the method
// it invokes and the test it applies to each twin it reads.
type baselineCall struct {
	method  string
	payload json.RawMessage
	done    func(reported map[string]any, invoked time.Time) bool
}

func (w workflow) baselineCalls() []baselineCall {
	calls := make([]baselineCall, 0, len(w.steps))
	for _, s := range w.steps {
		switch s {
		case stepFirmware:
			payload, _ := json.Marshal(map[string]string{"fwPackageUri": firmwareURI})
			calls = append(calls, baselineCall{method: "firmwareUpdate", payload: payload, done: firmwareDone})
		case stepReboot:
			calls = append(calls, baselineCall{method: "rebootDevice", done: rebootDone})
		}
	}
	return calls
}

// driverCall is one step as the workflow limit's callers do it: the method,
// and the reported patch that says the device is done.
type driverCall struct {
	method  string
	payload json.RawMessage
	done    func(patch map[string]any) bool
}

func (w workflow) driverCalls() []driverCall {
	calls := make([]driverCall, 0, len(w.steps))
	for _, s := range w.steps {
		switch s {
		case stepFirmware:
			payload, _ := json.Marshal(map[string]string{"fwPackageUri": limitFirmwareURI})
			calls = append(calls, driverCall{method: "firmwareUpdate", payload: payload, done: func(p map[string]any) bool {
				return p["firmwareStatus"] == "completed" || p["firmwareStatus"] == "failed"
			}})
		case stepReboot:
			calls = append(calls, driverCall{method: "rebootDevice", done: func(p map[string]any) bool {
				_, ok := p["rebootTime"]
				return ok
			}})
		}
	}
	return calls
}

func firmwareDone(reported map[string]any, _ time.Time) bool {
	return reported["firmwareStatus"] == "completed" && reported["fwVersion"] == targetVersion
}

func rebootDone(reported map[string]any, invoked time.Time) bool {
	s, ok := reported["rebootTime"].(string)
	if !ok {
		return false
	}
	t, err := iothub.ParseTime(s)
	return err == nil && t.After(invoked)
}
