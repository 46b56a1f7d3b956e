package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/hubflow/hubflow/internal/hubadapter"
	"github.com/hubflow/hubflow/state"
)

// TestRun_Quota measures a small fleet with S1 quotas on: the hub restarts
// with quotas, the fleet reconnects, and the run is paced by the job's
// rate, as the devices' reported patches bind first on S1.
func TestRun_Quota(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a hub and a fleet")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	rep, err := Run(ctx, Config{
		Sizes: []int{12}, Workflow: WorkflowFirmware, Stage: 20 * time.Millisecond, Tier: "s1",
		Concurrency: 16, Sample: 1, Topology: TopologyInProcess, Dir: t.TempDir(), NewHub: hubadapter.New,
		Logger: slog.New(slog.DiscardHandler), settle: time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	x := rep.Results[0]
	if rep.Tier != "S1" || rep.Units != 1 {
		t.Errorf("got tier %q × %d, want S1 × 1", rep.Tier, rep.Units)
	}
	if x.Succeeded != 12 {
		t.Errorf("got %d succeeded, want 12", x.Succeeded)
	}
	q := x.Quota
	if q == nil {
		t.Fatal("got no quota figures")
	}
	if q.AllowedExecutionsPerSecond != 12.5 || q.AllowedDevicesPerSecond != 12.5 || q.JobRate != 11.875 || q.MethodRate != 40 {
		t.Errorf("got allowed %v exec/s = %v devices/s, job rate %v/s, method rate %v/s; want 12.5, 12.5, 11.875 and 40",
			q.AllowedExecutionsPerSecond, q.AllowedDevicesPerSecond, q.JobRate, q.MethodRate)
	}
	if x.Executions != 12 {
		t.Errorf("got %d executions, want 12 (one step)", x.Executions)
	}
	if x.Limit.Source != "quota" || x.Limit.ExecutionsPerSecond != 12.5 || x.WorkflowLimit != nil {
		t.Errorf("got limit %+v and workflow limit %+v, want the quota's 12.5/s and none measured", x.Limit, x.WorkflowLimit)
	}
	if !(q.MethodsPerSecond > 0 && q.AllowedShare > 0 && q.MethodShare > 0) || q.ThrottledScope == "" {
		t.Errorf("got %+v, want the shares measured", q)
	}
	if x.HubOps == nil || x.HubOps.TwinUpdates < 12*4 {
		t.Errorf("hub ops %+v: want the devices' reported patches counted", x.HubOps)
	}
}

// TestRun_Smoke measures a small fleet in-process and checks that the
// figures are there and consistent; it asserts nothing about speed.
func TestRun_Smoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a hub and a fleet")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	rep, err := Run(ctx, Config{
		Sizes: []int{20}, Workflow: WorkflowTwoStep, Stage: 20 * time.Millisecond,
		Concurrency: 32, Sample: 2, LimitDuration: 500 * time.Millisecond,
		Topology: TopologyInProcess, Dir: t.TempDir(), NewHub: hubadapter.New,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 1 {
		t.Fatalf("got %d results, want 1", len(rep.Results))
	}
	x := rep.Results[0]
	if x.Devices != 20 || x.Succeeded != 20 || x.Executions != 40 || x.RunState != "succeeded" {
		t.Errorf("got %d devices, %d succeeded, %d executions, run %s; want 20 succeeded and 40 executions (two steps each)",
			x.Devices, x.Succeeded, x.Executions, x.RunState)
	}
	if x.Topology != TopologyInProcess {
		t.Errorf("got topology %q, want %q", x.Topology, TopologyInProcess)
	}
	if rep.StepsPerDevice != 2 {
		t.Errorf("got %d steps per device, want 2 for two-step", rep.StepsPerDevice)
	}
	for name, v := range map[string]float64{
		"executions/s": x.ExecutionsPerSecond, "devices/s": x.DevicesPerSecond, "limit": x.Limit.ExecutionsPerSecond,
		"limit round trips/s": x.Limit.RoundTripsPerSecond, "baseline": x.Baseline.ExecutionsPerSecond,
		"wall": x.WallSeconds, "mean execution": x.MeanExecutionSeconds, "mean device": x.MeanDeviceSeconds,
		"db bytes/exec": x.DBBytesPerExecution,
	} {
		if !(v > 0) {
			t.Errorf("%s: got %v, want > 0", name, v)
		}
	}
	if x.Limit.ExecutionsPerSecond < x.ExecutionsPerSecond {
		t.Errorf("limit %.1f exec/s is below the runner's %.1f exec/s; the limit should bound the runner",
			x.Limit.ExecutionsPerSecond, x.ExecutionsPerSecond)
	}
	if got, want := x.Limit.ExecutionsPerSecond, x.Limit.RoundTripsPerSecond; got != want {
		t.Errorf("limit: got %v exec/s, want the round trips/s, %v", got, want)
	}
	if got, want := x.ExecutionsPerSecond, 2*x.DevicesPerSecond; math.Abs(got-want) > 1e-9*want {
		t.Errorf("got %v exec/s, want twice the %v devices/s", got, x.DevicesPerSecond)
	}
	if got, want := x.Baseline.ExecutionsPerSecond, 2*x.Baseline.DevicesPerSecond; math.Abs(got-want) > 1e-9*want {
		t.Errorf("baseline: got %v exec/s, want twice the %v devices/s", got, x.Baseline.DevicesPerSecond)
	}
	if w := x.WorkflowLimit; w == nil || w.Devices != 20 || w.Executions != 40 {
		t.Errorf("workflow limit: got %+v, want 20 devices and 40 executions", w)
	}
	// A device's span covers each of its executions.
	if x.MeanDeviceSeconds < x.MeanExecutionSeconds {
		t.Errorf("mean device %v s is below the mean execution %v s", x.MeanDeviceSeconds, x.MeanExecutionSeconds)
	}
	if x.RunnerCalls.Methods < 40 {
		t.Errorf("runner made %d method calls, want at least 2 per device", x.RunnerCalls.Methods)
	}
	if x.HubOps == nil || x.HubOps.Methods < 40 || x.HubOps.TwinUpdates < 20*5 {
		t.Errorf("hub ops %+v: want at least 40 methods and 100 reported patches", x.HubOps)
	}
	if x.Quota != nil {
		t.Errorf("got quota figures %+v without a tier", x.Quota)
	}

	var js bytes.Buffer
	if err := WriteJSON(&js, rep); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatalf("JSON output does not parse: %v", err)
	}
	if back.Results[0].ExecutionsPerSecond != x.ExecutionsPerSecond {
		t.Errorf("JSON round trip: got %v exec/s, want %v", back.Results[0].ExecutionsPerSecond, x.ExecutionsPerSecond)
	}
	var tb bytes.Buffer
	if err := WriteTable(&tb, rep); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(tb.String(), "runner/limit") || !strings.Contains(tb.String(), "devices/s") {
		t.Errorf("table lacks its header:\n%s", tb.String())
	}
}

func TestRun_BadConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no sizes", Config{NewHub: hubadapter.New}, "no fleet sizes"},
		{"no hub adapter", Config{Sizes: []int{1}}, "NewHub"},
		{"bad workflow", Config{Sizes: []int{1}, NewHub: hubadapter.New, Workflow: "dance"}, `unknown workflow "dance"`},
		{"bad tier", Config{Sizes: []int{1}, NewHub: hubadapter.New, Tier: "B1"}, "B1"},
		{"bad size", Config{Sizes: []int{0}, NewHub: hubadapter.New}, "fleet size 0"},
		{"bad topology", Config{Sizes: []int{1}, NewHub: hubadapter.New, Topology: "cloud"}, `unknown topology "cloud"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := Run(context.Background(), tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error mentioning %q", err, tc.want)
			}
			if rep != nil {
				t.Errorf("got a report for a refused config")
			}
		})
	}
}

// TestFigures_TwoStep checks the unit of every rate for a two-step
// workflow: a device execution is one device through one step, so the run
// counts two per device, and the limit's round trips (one method call per
// execution) are its executions per second.
func TestFigures_TwoStep(t *testing.T) {
	wf, err := lookupWorkflow(WorkflowTwoStep)
	if err != nil {
		t.Fatal(err)
	}
	steps := len(wf.steps)
	t0 := time.Date(2026, 11, 22, 18, 0, 0, 0, time.UTC)
	exec := func(id string, step int, st state.ExecState, from, to time.Duration) state.Execution {
		x := state.Execution{DeviceID: id, StepIndex: step, State: st}
		if st != state.ExecSkipped {
			x.StartedAt, x.EndedAt = t0.Add(from), t0.Add(to)
		}
		return x
	}

	t.Run("run", func(t *testing.T) {
		for _, tc := range []struct {
			name                      string
			counts                    state.Counts
			xs                        []state.Execution
			executions                int
			execPerS, devPerS         float64
			meanExecution, meanDevice float64
		}{
			{
				name:   "all succeed",
				counts: state.Counts{Succeeded: 3},
				xs: []state.Execution{
					exec("d1", 0, state.ExecSucceeded, 0, time.Second), exec("d1", 1, state.ExecSucceeded, time.Second, 2*time.Second),
					exec("d2", 0, state.ExecSucceeded, 0, time.Second), exec("d2", 1, state.ExecSucceeded, time.Second, 2*time.Second),
					exec("d3", 0, state.ExecSucceeded, 0, time.Second), exec("d3", 1, state.ExecSucceeded, time.Second, 2*time.Second),
				},
				executions: 3 * steps, execPerS: 3, devPerS: 1.5, meanExecution: 1, meanDevice: 2,
			},
			{
				// d2 fails its first step: its second never runs.
				name:   "one fails the first step",
				counts: state.Counts{Succeeded: 1, Failed: 1},
				xs: []state.Execution{
					exec("d1", 0, state.ExecSucceeded, 0, time.Second), exec("d1", 1, state.ExecSucceeded, time.Second, 3*time.Second),
					exec("d2", 0, state.ExecFailed, 0, time.Second), exec("d2", 1, state.ExecSkipped, 0, 0),
				},
				executions: 3, execPerS: 1.5, devPerS: 1, meanExecution: 4.0 / 3, meanDevice: 2,
			},
			{
				name:       "history unreadable",
				counts:     state.Counts{Succeeded: 3},
				executions: 3 * steps, execPerS: 3, devPerS: 1.5,
			},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var res Result
				tally(&res, tc.counts, tc.xs, steps, 2*time.Second)
				if res.Executions != tc.executions {
					t.Errorf("got %d executions, want %d", res.Executions, tc.executions)
				}
				for _, f := range []struct {
					name      string
					got, want float64
				}{
					{"exec/s", res.ExecutionsPerSecond, tc.execPerS},
					{"devices/s", res.DevicesPerSecond, tc.devPerS},
					{"mean execution", res.MeanExecutionSeconds, tc.meanExecution},
					{"mean device", res.MeanDeviceSeconds, tc.meanDevice},
				} {
					if math.Abs(f.got-f.want) > 1e-9 {
						t.Errorf("%s: got %v, want %v", f.name, f.got, f.want)
					}
				}
			})
		}
	})

	t.Run("limit", func(t *testing.T) {
		lim := measuredLimit(limitResult{roundTrips: 6000, elapsed: 3 * time.Second}, 512)
		if lim.RoundTripsPerSecond != 2000 || lim.ExecutionsPerSecond != lim.RoundTripsPerSecond {
			t.Errorf("got %v round trips/s and %v exec/s, want 2000 both", lim.RoundTripsPerSecond, lim.ExecutionsPerSecond)
		}
	})

	t.Run("workflow limit", func(t *testing.T) {
		// 99 devices carried through, one failed after its first step.
		w := workflowLimitFigures(workflowLimitResult{devices: 99, executions: 99*steps + 1, failed: 1, elapsed: 2 * time.Second}, 512)
		if w.Devices != 99 || w.Executions != 199 || w.ExecutionsPerSecond != 99.5 || w.DevicesPerSecond != 49.5 {
			t.Errorf("got %+v, want 99 devices, 199 executions, 99.5 exec/s and 49.5 devices/s", w)
		}
	})

	t.Run("baseline", func(t *testing.T) {
		b := baselineFigures(baselineResult{devices: 5, executions: 5 * steps, total: 5 * time.Second}, 100*time.Millisecond, 1000)
		if b.ExecutionsPerSecond != 2 || b.DevicesPerSecond != 1 || b.SecondsPerDevice != 1 || b.FleetSeconds != 1000 {
			t.Errorf("got %+v, want 2 exec/s, 1 device/s, 1 s per device and 1000 s for the fleet", b)
		}
	})
}
