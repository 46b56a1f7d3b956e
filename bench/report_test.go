package bench

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// sampleReport is a report with one run without quotas and one with.
func sampleReport(tier string) *Report {
	r := &Report{
		Machine:  Machine{CPU: "Test CPU", Cores: 2, Go: "go1.26.8", OS: "linux/amd64"},
		Command:  "hubflow bench -devices 1000,10000",
		Workflow: WorkflowTwoStep, StageMS: 100, Concurrency: 512, MethodsPerExecution: 2,
		BaselineSample: 5, BaselinePollMS: 100,
		Started: time.Date(2026, 11, 22, 18, 0, 0, 0, time.UTC),
		Results: []Result{{
			Devices: 1000, Topology: TopologyInProcess, TopologyDetail: "one process",
			RunID: "bench-1", RunState: "succeeded", Succeeded: 1000, Executions: 1000,
			WallSeconds: 2.5, ExecutionsPerSecond: 400, MeanExecutionSeconds: 0.8,
			Limit:         Limit{Source: "measured", RoundTripsPerSecond: 4000, Workers: 512, Seconds: 3, ExecutionsPerSecond: 2000},
			RunnerToLimit: 0.2,
			WorkflowLimit: &WorkflowLimit{Workers: 512, Executions: 1000, Seconds: 2, ExecutionsPerSecond: 500}, RunnerToWorkflowLimit: 0.8,
			Baseline:          Baseline{Devices: 5, PollMS: 100, SecondsPerDevice: 0.5, ExecutionsPerSecond: 2, FleetSeconds: 500},
			HubflowToBaseline: 200,
			CPUSeconds:        3, CPUSecondsPer1000: 3, CPUScope: "this process",
			PeakRSSBytes: 300 << 20, DBBytes: 1 << 20, DBBytesPerExecution: 1048.576,
		}},
	}
	if tier != "" {
		r.Tier, r.Units = tier, 1
		x := &r.Results[0]
		x.WorkflowLimit, x.RunnerToWorkflowLimit = nil, 0
		x.Limit = Limit{Source: "quota", ExecutionsPerSecond: 10}
		x.Quota = &Quota{
			Tier: tier, Units: 1, MethodRate: 40, AllowedExecutionsPerSecond: 10, BoundBy: "twin updates",
			JobRate: 9.5, MethodsPerSecond: 18.6, MethodShare: 0.465, AllowedShare: 0.93,
			Throttled: 3, ThrottledShare: 0.004, ThrottledScope: "every metered hub operation",
		}
	}
	return r
}

func TestWriteTable(t *testing.T) {
	for _, tc := range []struct {
		name    string
		tier    string
		want    []string
		notWant []string
	}{
		{
			name: "no quota",
			want: []string{
				"devices", "exec/s", "runner/limit", "runner/wf limit", "hubflow/baseline",
				"1000", "2.50s", "400", "2000", "0.20", "500", "0.80", "200×", "300.0 MiB", "1049",
				"workflow two-step (2 method call(s) per device execution), stages of 100ms, concurrency 512",
				"limit: 4000 method round trips/s with 512 callers over 3.00s, / 2 calls per execution",
				"baseline: 500ms per device on 5 devices (twin read every 100ms), 500s for the fleet",
			},
			notWant: []string{"allowed share", "quota:"},
		},
		{
			name: "quota",
			tier: "S1",
			want: []string{
				"allowed share", "method share", "429s", "93.0%", "46.5%", "3 (0.4%)",
				"hub tier S1 × 1",
				"quota: S1 × 1 allows 10.0 exec/s (bound by twin updates); run reached 93.0% of it with the job's rate set to 9.50/s",
			},
			notWant: []string{"limit: ", "workflow limit:"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := WriteTable(&b, sampleReport(tc.tier)); err != nil {
				t.Fatal(err)
			}
			out := b.String()
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("table lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(out, w) {
					t.Errorf("table has %q, want it left out:\n%s", w, out)
				}
			}
			lines := strings.Split(out, "\n")
			if len(lines) < 2 || utf8.RuneCountInString(lines[0]) != utf8.RuneCountInString(lines[1]) {
				t.Errorf("header and row are not aligned:\n%s\n%s", lines[0], lines[1])
			}
		})
	}
}

// TestWriteJSON pins the field names scripts read.
func TestWriteJSON(t *testing.T) {
	var b bytes.Buffer
	if err := WriteJSON(&b, sampleReport("S1")); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatalf("output does not parse: %v\n%s", err, b.String())
	}
	for _, k := range []string{"machine", "command", "workflow", "stage_ms", "concurrency", "tier", "units",
		"method_calls_per_execution", "baseline_sample", "baseline_poll_ms", "started", "results"} {
		if _, ok := doc[k]; !ok {
			t.Errorf("report lacks %q", k)
		}
	}
	res := doc["results"].([]any)[0].(map[string]any)
	for _, k := range []string{"devices", "topology", "topology_detail", "setup_s", "load_before", "run_id", "run_state",
		"succeeded", "failed", "timed_out", "executions", "wall_s", "executions_per_s", "mean_execution_s",
		"limit", "runner_to_limit", "baseline", "hubflow_to_baseline", "cpu_s", "cpu_s_per_1000_executions", "cpu_scope",
		"peak_rss_bytes", "db_bytes", "db_bytes_per_execution", "runner_calls", "quota"} {
		if _, ok := res[k]; !ok {
			t.Errorf("result lacks %q", k)
		}
	}
	q := res["quota"].(map[string]any)
	for _, k := range []string{"tier", "units", "method_rate_per_s", "allowed_executions_per_s", "bound_by", "job_rate_per_s",
		"methods_per_s", "method_share", "allowed_share", "throttled", "throttled_share", "throttled_scope"} {
		if _, ok := q[k]; !ok {
			t.Errorf("quota lacks %q", k)
		}
	}
	if got := res["executions_per_s"]; got != 400.0 {
		t.Errorf("executions_per_s: got %v, want 400", got)
	}
	var back Report
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.Results[0].Quota.BoundBy != "twin updates" || !back.Started.Equal(sampleReport("").Started) {
		t.Errorf("round trip lost fields: %+v", back.Results[0].Quota)
	}
}

func TestFormatters(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{fmtSeconds(0), "0s"},
		{fmtSeconds(0.0421), "42ms"},
		{fmtSeconds(2.5), "2.50s"},
		{fmtSeconds(564), "564s"},
		{fmtSeconds(7200), "2.0h"},
		{fmtRate(0), "0"},
		{fmtRate(3.3149), "3.31"},
		{fmtRate(12.34), "12.3"},
		{fmtRate(1234.5), "1234"},
		{fmtBytes(0), "-"},
		{fmtBytes(512), "512 B"},
		{fmtBytes(1536), "1.5 KiB"},
		{fmtBytes(300 << 20), "300.0 MiB"},
		{fmtBytes(3 << 30), "3.00 GiB"},
		{pct(0.931), "93.1%"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}
