package reliability_test

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/hubflow/hubflow/emulator"
	"github.com/hubflow/hubflow/runner"
	"github.com/hubflow/hubflow/simulator"
	"github.com/hubflow/hubflow/state"
)

// faultFleet has one group of devices per hub fault, so that each case
// runs on devices no other case has touched.
const faultFleet = `
defaults {
  reported = { fwVersion = "2.0.0" }
  reboot { duration = "50ms..150ms" }
  firmware {
    downloading = "50ms..150ms"
    applying    = "50ms..150ms"
  }
}
group "storm0" {
  count = 25
  id    = "storm0-%03d"
  tags  = { site = "storm0" }
}
group "storm" {
  count = 25
  id    = "storm-%03d"
  tags  = { site = "storm" }
}
group "burst" {
  count = 25
  id    = "burst-%03d"
  tags  = { site = "burst" }
}
group "outage" {
  count = 25
  id    = "outage-%03d"
  tags  = { site = "outage" }
}
group "outage2" {
  count = 25
  id    = "outage2-%03d"
  tags  = { site = "outage2" }
}
group "latency" {
  count = 25
  id    = "latency-%03d"
  tags  = { site = "latency" }
}
group "timeouts" {
  count = 25
  id    = "timeouts-%03d"
  tags  = { site = "timeouts" }
}
group "drops" {
  count = 25
  id    = "drops-%03d"
  tags  = { site = "drops" }
}
group "mqtt" {
  count = 25
  id    = "mqtt-%03d"
  tags  = { site = "mqtt" }
}
group "mute" {
  count = 10
  id    = "mute-%03d"
  tags  = { site = "mute" }
  slow {
    delay = "10m"
  }
}
`

// knownSimulatorIssue describes a simulator behaviour the 429 storm finds:
// a simulated device drops a reported-properties patch that the hub
// throttled, where a device SDK retries it, so a device's progress made
// during a storm never reaches its twin and its step times out.
const knownSimulatorIssue = "known issue: simulated devices drop reported-properties patches the hub answers 429, " +
	"instead of retrying them as device SDKs do; their progress never reaches the twin and the step times out"

// faultCase is one hub fault of TestHubFaults.
type faultCase struct {
	name string
	job  jobSpec
	// before injects the fault before the run starts; otherwise it is
	// injected once after calls have reached devices.
	before bool
	after  int64
	inject func(f *emulator.Faults) string
	// clearAfter clears every fault this long after injecting it (0: the
	// fault ends by itself, or with the case).
	clearAfter time.Duration
	// want is the run's end; the error of every device that did not
	// succeed must match reason.
	want   state.RunState
	reason *regexp.Regexp
	// throttled means the run must have seen 429 answers.
	throttled bool
	// blind is how long the fault keeps twins from being read.
	blind time.Duration
}

// TestHubFaults runs the two-step job against each hub fault in turn and
// checks that the run ends in the state the job-file contract gives:
// transient faults (429, short 5xx bursts, latency, lost calls, dropped
// connections) are waited out or retried and every device succeeds; faults
// that outlast the retry policy fail the devices they hit, each with its
// reason recorded; a throttled answer never fails a device. The record
// matches the witness throughout.
func TestHubFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped with -short: runs ten faulty rollouts")
	}
	h := startHub(t, faultFleet, hubOptions{seed: 3})
	tests := []faultCase{
		{
			name: "429 storm as the run starts", job: jobSpec{site: "storm0", concurrency: 20}, before: true,
			inject: func(f *emulator.Faults) string {
				f.Throttle(2 * time.Second)
				return "every metered call answered 429 for 2s"
			},
			want:      state.RunSucceeded,
			throttled: true,
		},
		{
			name: "429 storm mid-run", job: jobSpec{site: "storm", concurrency: 20, timeout: "20s"}, after: 10,
			inject: func(f *emulator.Faults) string {
				f.Throttle(2 * time.Second)
				return "every metered call answered 429 for 2s"
			},
			want:      state.RunSucceeded,
			throttled: true,
		},
		{
			name: "5xx burst", job: jobSpec{site: "burst", concurrency: 40, rate: "10/s"}, after: 5,
			inject: func(f *emulator.Faults) string {
				f.FailREST(503, 1500*time.Millisecond)
				return "every REST call answered 503 for 1.5s"
			},
			want: state.RunSucceeded,
		},
		{
			name: "5xx outage within the step timeout", job: jobSpec{site: "outage", concurrency: 40, rate: "10/s", attempts: 2, timeout: "30s"}, after: 5,
			inject: func(f *emulator.Faults) string {
				f.FailREST(500, 8*time.Second)
				return "every REST call answered 500 for 8s"
			},
			want: state.RunSucceeded, blind: 8 * time.Second,
		},
		{
			name: "5xx outage longer than the step timeout", job: jobSpec{site: "outage2", concurrency: 40, rate: "10/s", attempts: 2, responseTimeout: "5s", timeout: "5s"}, after: 5,
			inject: func(f *emulator.Faults) string {
				f.FailREST(500, 8*time.Second)
				return "every REST call answered 500 for 8s"
			},
			want: state.RunFailed, reason: regexp.MustCompile(`500|timeout|reached the device until the step timed out`), blind: 8 * time.Second,
		},
		{
			name: "latency spike", job: jobSpec{site: "latency", concurrency: 20, responseTimeout: "5s"}, after: 10,
			inject: func(f *emulator.Faults) string {
				f.MethodLatency(2 * time.Second)
				return "every method delayed 2s for 3s"
			},
			clearAfter: 3 * time.Second,
			want:       state.RunSucceeded,
		},
		{
			name: "method timeouts", job: jobSpec{site: "timeouts", concurrency: 20, responseTimeout: "5s"}, after: 10,
			inject: func(f *emulator.Faults) string {
				f.MethodLatency(6 * time.Second)
				return "every method delayed past its 5s response timeout for 2s"
			},
			clearAfter: 2 * time.Second,
			want:       state.RunSucceeded,
		},
		{
			name: "dropped methods", job: jobSpec{site: "drops", concurrency: 20, responseTimeout: "5s"}, after: 10,
			inject: func(f *emulator.Faults) string {
				f.DropMethods(0.3)
				return "30% of methods dropped (504 after 5s) for 3s"
			},
			clearAfter: 3 * time.Second,
			want:       state.RunSucceeded,
		},
		{
			name: "MQTT drops every device mid-step", job: jobSpec{site: "mqtt", concurrency: 40}, after: 15,
			inject: func(f *emulator.Faults) string { return fmt.Sprintf("%d device connections closed", f.DisconnectAll()) },
			want:   state.RunSucceeded,
		},
		{
			name: "devices that never answer", job: jobSpec{site: "mute", concurrency: 10, responseTimeout: "5s", attempts: 1},
			want: state.RunFailed, reason: regexp.MustCompile(`504.*GatewayTimeout`),
		},
	}
	injected := 0
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { runFaultCase(t, h, tt, &injected) })
	}
	t.Logf("%d hub faults injected", injected)
}

// runFaultCase runs one case, counting the faults it injects.
func runFaultCase(t *testing.T, h *hubEnv, tt faultCase, injected *int) {
	f := h.hub.Faults()
	defer f.ClearAll()
	store := openStore(t, filepath.Join(t.TempDir(), "history.db"), state.Options{})
	r := h.runner(t, store)
	tt.job.name = tt.job.site
	job := loadJob(t, tt.job.hcl())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sim0 := quiesce(h)

	wo := witnessOptions{stepTimeout: job.Steps[0].Timeout}
	inject := func() {
		wo.blindFrom = time.Now()
		wo.blindUntil = wo.blindFrom.Add(tt.blind)
		t.Logf("fault: %s", tt.inject(f))
		*injected++
		if tt.clearAfter > 0 {
			tm := time.AfterFunc(tt.clearAfter, f.ClearAll)
			t.Cleanup(func() { tm.Stop() })
		}
	}
	type ran struct {
		res *runner.Result
		err error
	}
	if tt.before {
		inject()
	}
	done := make(chan ran, 1)
	sent0 := h.hub.Stats().MethodsInvoked
	go func() {
		res, err := r.Run(ctx, runner.Request{Job: job})
		done <- ran{res, err}
	}()
	var out ran
	if tt.inject != nil && !tt.before {
		for h.hub.Stats().MethodsInvoked-sent0 < tt.after {
			select {
			case out = <-done:
				t.Fatalf("the run ended before the fault: %v (%v)", out.res, out.err)
			case <-time.After(time.Millisecond):
			}
		}
		inject()
	}
	out = <-done
	if out.err != nil {
		t.Fatalf("run: %v", out.err)
	}
	res := out.res
	t.Logf("run %s: %+v (%s); hub: %s", res.State, res.Counts, res.Reason, invocationOutcomes(h.hub))

	ctx = context.Background()
	if err := store.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	devs, err := store.RunDevices(ctx, res.RunID, state.DeviceFilter{})
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(devs))
	for i, d := range devs {
		ids[i] = d.DeviceID
	}
	// The witness first: what it explains is not failed twice.
	rep := compareWithWitness(t, h.hub, store.Path(), executionsByKey(t, store, res.RunID), ids, wo)
	t.Logf("witness: %s", rep)

	lost := ""
	if res.Counts.TimedOut > 0 {
		lost = lostReports(h, sim0, ids)
	}
	excused := func(d state.Device) bool {
		return rep.knownDevices[d.DeviceID] || (lost != "" && d.State == state.ExecTimedOut)
	}
	failed := 0
	for _, d := range devs {
		if d.State == state.ExecSucceeded {
			continue
		}
		if d.Error == "" || (tt.reason != nil && !tt.reason.MatchString(d.Error)) {
			t.Errorf("%s: %s with error %q, want a reason matching %v", d.DeviceID, d.State, d.Error, tt.reason)
		}
		if excused(d) {
			continue
		}
		failed++
		if tt.want == state.RunSucceeded {
			t.Errorf("%s: got %s (%s), want succeeded", d.DeviceID, d.State, d.Error)
		}
	}
	switch {
	case res.State == tt.want:
	case tt.want == state.RunSucceeded && res.State == state.RunFailed && failed == 0:
		// Every device that did not succeed is explained by a known issue.
	default:
		t.Errorf("got run %s (%s), want %s", res.State, res.Reason, tt.want)
	}
	if tt.want == state.RunFailed && res.Counts.Failed+res.Counts.TimedOut == 0 {
		t.Errorf("got %+v, want devices failed by the fault", res.Counts)
	}
	if throttled := r.Budget().Stats().Throttled; tt.throttled && sum(throttled[:]) == 0 {
		t.Error("got no throttled answers counted, want the storm's")
	}
	if lost != "" {
		t.Log(lost)
		if !t.Failed() && len(rep.known) == 0 {
			t.Skipf("%s (%s)", knownSimulatorIssue, lost)
		}
	}
	failOnIssues(t, rep)
}

// quiesce waits until the fleet has been idle for a moment (devices of an
// earlier case may still be finishing what they were asked) and returns
// its counters.
func quiesce(h *hubEnv) simulator.Stats {
	last := h.sim.Stats()
	deadline := time.Now().Add(10 * time.Second)
	for still := 0; still < 3 && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		st := h.sim.Stats()
		if st.Methods == last.Methods && st.FirmwareCompleted == last.FirmwareCompleted && st.FirmwareFailed == last.FirmwareFailed && st.Reboots == last.Reboots {
			still++
		} else {
			still = 0
		}
		last = st
	}
	return last
}

// lostReports compares what the fleet says its devices did since before
// with what reached the hub, and describes the difference ("" when none).
func lostReports(h *hubEnv, before simulator.Stats, ids []string) string {
	after := h.sim.Stats()
	var completed, rebooted int64
	for _, d := range witness(h.hub, ids) {
		completed += int64(d.nCompleted)
		rebooted += int64(d.nRebooted)
	}
	simCompleted, simRebooted := after.FirmwareCompleted-before.FirmwareCompleted, after.Reboots-before.Reboots
	if simCompleted <= completed && simRebooted <= rebooted {
		return ""
	}
	return fmt.Sprintf("devices completed %d firmware updates and %d reboots, the hub received the reports of %d and %d",
		simCompleted, simRebooted, completed, rebooted)
}

func sum(xs []int64) int64 {
	var n int64
	for _, x := range xs {
		n += x
	}
	return n
}
