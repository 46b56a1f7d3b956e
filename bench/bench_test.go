package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hubflow/hubflow/internal/hubadapter"
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
	if q.AllowedExecutionsPerSecond != 12.5 || q.JobRate != 11.875 || q.MethodRate != 40 {
		t.Errorf("got allowed %v/s, job rate %v/s, method rate %v/s; want 12.5, 11.875 and 40", q.AllowedExecutionsPerSecond, q.JobRate, q.MethodRate)
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
	if x.Devices != 20 || x.Succeeded != 20 || x.Executions != 20 || x.RunState != "succeeded" {
		t.Errorf("got %d devices, %d succeeded of %d executions, run %s; want 20 succeeded", x.Devices, x.Succeeded, x.Executions, x.RunState)
	}
	if x.Topology != TopologyInProcess {
		t.Errorf("got topology %q, want %q", x.Topology, TopologyInProcess)
	}
	if rep.MethodsPerExecution != 2 {
		t.Errorf("got %d method calls per execution, want 2 for two-step", rep.MethodsPerExecution)
	}
	for name, v := range map[string]float64{
		"executions/s": x.ExecutionsPerSecond, "limit": x.Limit.ExecutionsPerSecond,
		"limit round trips/s": x.Limit.RoundTripsPerSecond, "baseline": x.Baseline.ExecutionsPerSecond,
		"wall": x.WallSeconds, "mean execution": x.MeanExecutionSeconds, "db bytes/exec": x.DBBytesPerExecution,
	} {
		if !(v > 0) {
			t.Errorf("%s: got %v, want > 0", name, v)
		}
	}
	if x.Limit.ExecutionsPerSecond < x.ExecutionsPerSecond {
		t.Errorf("limit %.1f exec/s is below the runner's %.1f exec/s; the limit should bound the runner",
			x.Limit.ExecutionsPerSecond, x.ExecutionsPerSecond)
	}
	if got, want := x.Limit.ExecutionsPerSecond, x.Limit.RoundTripsPerSecond/2; got != want {
		t.Errorf("limit: got %v exec/s, want round trips / 2 = %v", got, want)
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
	if !strings.Contains(tb.String(), "runner/limit") {
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
