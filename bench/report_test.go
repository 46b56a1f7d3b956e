package bench

import (
	"bytes"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// sampleReport is a two-step report of one fleet size, without quotas or
// with tier's: 1000 devices make 2000 executions.
func sampleReport(tier string) *Report {
	r := &Report{
		Machine:  Machine{CPU: "Test CPU", Cores: 2, Go: "go1.26.8", OS: "linux/amd64"},
		Command:  "hubflow bench -devices 1000,10000",
		Workflow: WorkflowTwoStep, StageMS: 100, Concurrency: 512, StepsPerDevice: 2,
		BaselineSample: 5, BaselinePollMS: 100,
		Started: time.Date(2026, 11, 22, 18, 0, 0, 0, time.UTC),
		Results: []Result{{
			Devices: 1000, Topology: TopologyInProcess, TopologyDetail: "one process",
			RunID: "bench-1", RunState: "succeeded", Succeeded: 1000, Executions: 2000,
			WallSeconds: 2.5, ExecutionsPerSecond: 800, DevicesPerSecond: 400, MeanExecutionSeconds: 0.4, MeanDeviceSeconds: 0.8,
			Limit:                 Limit{Source: "measured", RoundTripsPerSecond: 4000, Workers: 512, Seconds: 3, ExecutionsPerSecond: 4000},
			RunnerToLimit:         0.2,
			WorkflowLimit:         &WorkflowLimit{Workers: 512, Devices: 1000, Executions: 2000, Seconds: 2, ExecutionsPerSecond: 1000, DevicesPerSecond: 500},
			RunnerToWorkflowLimit: 0.8,
			Baseline:              Baseline{Devices: 5, PollMS: 100, SecondsPerDevice: 0.5, ExecutionsPerSecond: 4, DevicesPerSecond: 2, FleetSeconds: 500},
			HubflowToBaseline:     200,
			CPUSeconds:            3, CPUSecondsPer1000: 1.5, CPUScope: "this process",
			PeakRSSBytes: 300 << 20, DBBytes: 1 << 20, DBBytesPerExecution: 524.288,
		}},
	}
	if tier != "" {
		r.Tier, r.Units = tier, 1
		x := &r.Results[0]
		x.WorkflowLimit, x.RunnerToWorkflowLimit = nil, 0
		x.Limit = Limit{Source: "quota", ExecutionsPerSecond: 20}
		x.Quota = &Quota{
			Tier: tier, Units: 1, MethodRate: 40, AllowedExecutionsPerSecond: 20, AllowedDevicesPerSecond: 10, BoundBy: "twin updates",
			JobRate: 19, MethodsPerSecond: 18.6, MethodShare: 0.465, AllowedShare: 0.93,
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
		columns map[string]string // header: value in the first row
	}{
		{
			name: "no quota",
			want: []string{
				"devices", "exec/s", "devices/s", "runner/limit", "runner/wf limit", "hubflow/baseline",
				"1000", "2.50s", "800", "400", "4000", "0.20", "1000", "0.80", "4.00", "200×", "1.50", "300.0 MiB", "524",
				"workflow two-step (2 device executions per device, each one method call), stages of 100ms, concurrency 512",
				"(devices: 1000 succeeded, 0 failed, 0 timed out; 2000 executions)",
				"mean execution 400ms, mean device through the workflow 800ms",
				"limit: 4000 method round trips/s with 512 callers over 3.00s, one per execution",
				"workflow limit: 1000 devices (2000 executions) through the workflow in 2.00s",
				"baseline: 500ms per device on 5 devices (twin read every 100ms), 500s for the fleet",
			},
			notWant: []string{"allowed share", "quota:"},
			columns: map[string]string{
				"exec/s": "800", "devices/s": "400", "limit exec/s": "4000", "runner/limit": "0.20",
				"wf limit exec/s": "1000", "runner/wf limit": "0.80", "baseline exec/s": "4.00",
				"hubflow/baseline": "200×", "CPU s/1k exec": "1.50", "DB B/exec": "524",
			},
		},
		{
			name: "quota",
			tier: "S1",
			want: []string{
				"allowed share", "method share", "429s", "93.0%", "46.5%", "3 (0.4%)",
				"hub tier S1 × 1",
				"quota: S1 × 1 allows 20.0 exec/s = 10.0 devices/s (bound by twin updates); run reached 93.0% of it with the job's rate set to 19.0 executions started/s",
			},
			notWant: []string{"limit: ", "workflow limit:"},
			columns: map[string]string{"exec/s": "800", "devices/s": "400", "limit exec/s": "20.0", "wf limit exec/s": "-", "allowed share": "93.0%"},
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
				t.Fatalf("header and row are not aligned:\n%s\n%s", lines[0], lines[1])
			}
			// Columns are two spaces apart at least; headers hold single
			// spaces.
			sep := regexp.MustCompile(`\s{2,}`)
			head, row := sep.Split(strings.TrimSpace(lines[0]), -1), sep.Split(strings.TrimSpace(lines[1]), -1)
			if len(head) != len(row) {
				t.Fatalf("got %d headers and %d values:\n%s\n%s", len(head), len(row), lines[0], lines[1])
			}
			got := map[string]string{}
			for i, h := range head {
				got[h] = row[i]
			}
			if i := slices.Index(head, "devices/s"); i < 1 || head[i-1] != "exec/s" {
				t.Errorf("devices/s is not the column after exec/s: %q", head)
			}
			for h, want := range tc.columns {
				if got[h] != want {
					t.Errorf("column %q: got %q, want %q", h, got[h], want)
				}
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
		"steps_per_device", "baseline_sample", "baseline_poll_ms", "started", "results"} {
		if _, ok := doc[k]; !ok {
			t.Errorf("report lacks %q", k)
		}
	}
	res := doc["results"].([]any)[0].(map[string]any)
	for _, k := range []string{"devices", "topology", "topology_detail", "setup_s", "load_before", "run_id", "run_state",
		"succeeded", "failed", "timed_out", "executions", "wall_s", "executions_per_s", "devices_per_s",
		"mean_execution_s", "mean_device_s",
		"limit", "runner_to_limit", "baseline", "hubflow_to_baseline", "cpu_s", "cpu_s_per_1000_executions", "cpu_scope",
		"peak_rss_bytes", "db_bytes", "db_bytes_per_execution", "runner_calls", "quota"} {
		if _, ok := res[k]; !ok {
			t.Errorf("result lacks %q", k)
		}
	}
	q := res["quota"].(map[string]any)
	for _, k := range []string{"tier", "units", "method_rate_per_s", "allowed_executions_per_s", "allowed_devices_per_s", "bound_by", "job_rate_per_s",
		"methods_per_s", "method_share", "allowed_share", "throttled", "throttled_share", "throttled_scope"} {
		if _, ok := q[k]; !ok {
			t.Errorf("quota lacks %q", k)
		}
	}
	if got := res["executions_per_s"]; got != 800.0 {
		t.Errorf("executions_per_s: got %v, want 800", got)
	}
	if got := res["devices_per_s"]; got != 400.0 {
		t.Errorf("devices_per_s: got %v, want 400", got)
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
