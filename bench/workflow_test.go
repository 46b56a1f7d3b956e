package bench

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/hubflow/hubflow/jobs"
	"github.com/hubflow/hubflow/simulator"
)

func TestJobHCL_Loads(t *testing.T) {
	for _, name := range Workflows() {
		for _, rate := range []float64{0, 11.875} {
			wf, err := lookupWorkflow(name)
			if err != nil {
				t.Fatal(err)
			}
			src := jobHCL(wf, 1000, 512, rate)
			cfg, diags := jobs.Load(jobs.LoadConfig{Sources: []jobs.Source{{Name: "bench.hcl", Bytes: []byte(src)}}})
			if diags.HasErrors() {
				t.Fatalf("%s: job does not load: %v\n%s", name, diags, src)
			}
			j := cfg.Jobs[0]
			if got, want := len(j.Steps), len(wf.steps); got != want {
				t.Errorf("%s: got %d steps, want %d", name, got, want)
			}
			if j.Rollout.Concurrency != 512 || math.Abs(j.Rollout.Rate-rate) > 1e-9 {
				t.Errorf("%s: got concurrency %d rate %v, want 512 and %v", name, j.Rollout.Concurrency, j.Rollout.Rate, rate)
			}
		}
	}
}

func TestFleetHCL_Loads(t *testing.T) {
	for _, sample := range []int{0, 1, 5} {
		src := fleetHCL(20, sample, 25*time.Millisecond)
		f, diags := simulator.LoadFleet("fleet.hcl", []byte(src))
		if diags.HasErrors() {
			t.Fatalf("fleet does not load: %v\n%s", diags, src)
		}
		if got, want := f.Size(), 20+sample; got != want {
			t.Errorf("sample %d: got %d devices, want %d", sample, got, want)
		}
		g := f.Groups[0]
		if g.DeviceID(0) != "bench-00001" || g.Behaviour.Firmware.Downloading != simulator.Fixed(25*time.Millisecond) ||
			g.Behaviour.RebootTime != simulator.Fixed(25*time.Millisecond) {
			t.Errorf("first group: got id %s, download %v, reboot %v", g.DeviceID(0), g.Behaviour.Firmware.Downloading, g.Behaviour.RebootTime)
		}
	}
}

func TestWorkflow_Costs(t *testing.T) {
	for _, tc := range []struct {
		name                    string
		methods, patches, reads int
	}{
		{WorkflowFirmware, 1, 4, 0},
		{WorkflowReboot, 1, 1, 2},
		{WorkflowTwoStep, 2, 5, 2},
	} {
		wf, err := lookupWorkflow(tc.name)
		if err != nil {
			t.Fatal(err)
		}
		if wf.methods() != tc.methods || wf.devicePatches() != tc.patches || wf.deviceReads() != tc.reads {
			t.Errorf("%s: got %d methods, %d patches, %d reads; want %d, %d, %d", tc.name,
				wf.methods(), wf.devicePatches(), wf.deviceReads(), tc.methods, tc.patches, tc.reads)
		}
		if len(wf.baselineCalls()) != len(wf.steps) || len(wf.driverCalls()) != len(wf.steps) {
			t.Errorf("%s: baseline or driver calls do not match the steps", tc.name)
		}
	}
	if _, err := lookupWorkflow("dance"); err == nil || !strings.Contains(err.Error(), "firmware, reboot, two-step") {
		t.Errorf("got %v, want an error listing the workflows", err)
	}
}

func TestAllowedRate(t *testing.T) {
	for _, tc := range []struct {
		workflow, tier string
		units          int
		allowed        float64 // executions (device steps) per second
		devices        float64 // devices through the workflow per second
		boundBy        string
		jobRate        float64 // method invocations per second
	}{
		// Four reported patches per update against 50 twin updates/s.
		{WorkflowFirmware, "S1", 1, 12.5, 12.5, "twin updates", 11.875},
		// Two device reads and at least one of the runner's per reboot
		// against 100 twin reads/s bind before the 40 calls/s.
		{WorkflowReboot, "S1", 1, 100.0 / 3, 100.0 / 3, "twin reads", 31.666},
		// Five reported patches per device against 50 twin updates/s: 10
		// devices/s, each making two executions. The job's rate counts
		// invocations, one per execution.
		{WorkflowTwoStep, "S1", 1, 20, 10, "twin updates", 19},
		// Ten units: 400 calls/s, but twin reads stay at 100/s.
		{WorkflowReboot, "S1", 10, 100.0 / 3, 100.0 / 3, "twin reads", 31.666},
		{WorkflowFirmware, "s3", 1, 62.5, 62.5, "twin updates", 59.375},
		// S3's twin quotas leave two-step bound by 250 twin updates/s:
		// 50 devices/s, 100 executions/s.
		{WorkflowTwoStep, "S3", 1, 100, 50, "twin updates", 95},
	} {
		t.Run(fmt.Sprintf("%s on %s×%d", tc.workflow, tc.tier, tc.units), func(t *testing.T) {
			wf, _ := lookupWorkflow(tc.workflow)
			q := allowedRate(tc.tier, tc.units, wf)
			if q == nil {
				t.Fatal("got no quota")
			}
			if math.Abs(q.AllowedExecutionsPerSecond-tc.allowed) > 1e-9 || math.Abs(q.AllowedDevicesPerSecond-tc.devices) > 1e-9 ||
				!strings.HasPrefix(q.BoundBy, tc.boundBy) || math.Abs(q.JobRate-tc.jobRate) > 1e-9 {
				t.Errorf("got %v exec/s = %v devices/s bound by %q, job rate %v; want %v exec/s = %v devices/s by %q, rate %v",
					q.AllowedExecutionsPerSecond, q.AllowedDevicesPerSecond, q.BoundBy, q.JobRate, tc.allowed, tc.devices, tc.boundBy, tc.jobRate)
			}
		})
	}
	wf, _ := lookupWorkflow(WorkflowFirmware)
	if q := allowedRate("", 0, wf); q != nil {
		t.Errorf("got %+v without a tier, want nil", q)
	}
}

func TestJobRate(t *testing.T) {
	for _, tc := range []struct {
		name      string
		want      float64
		suggested float64
		tier      bool
		got       float64
	}{
		{"auto with a device-side bound", 0, 11.875, true, 11.875},
		{"auto, runner's budget binds", 0, 0, true, 0},
		{"auto without a tier", 0, 0, false, 0},
		{"none", -1, 11.875, true, 0},
		{"given", 30, 11.875, true, 30},
		{"given without a tier", 30, 0, false, 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var q *Quota
			if tc.tier {
				q = &Quota{JobRate: tc.suggested}
			}
			if got := jobRate(tc.want, q); got != tc.got {
				t.Errorf("got %v, want %v", got, tc.got)
			}
			if q != nil && q.JobRate != tc.got {
				t.Errorf("quota records %v, want %v", q.JobRate, tc.got)
			}
		})
	}
}

func TestPickTopology(t *testing.T) {
	for _, tc := range []struct {
		name     string
		want     string
		external bool
		devices  int
		limit    uint64
		got      string
		err      string
	}{
		{name: "small fleet", want: TopologyAuto, devices: 1000, limit: 20000, got: TopologyInProcess},
		{name: "large fleet", want: TopologyAuto, devices: 10005, limit: 20000, got: TopologyChildren},
		{name: "unknown limit", want: "", devices: 50000, limit: 0, got: TopologyInProcess},
		{name: "forced", want: TopologyChildren, devices: 10, limit: 20000, got: TopologyChildren},
		{name: "external", want: TopologyInProcess, external: true, devices: 10, limit: 20000, got: TopologyExternal},
		{name: "too large", want: TopologyAuto, devices: 19500, limit: 20000, err: "more than the 20000 open files"},
		{name: "bad name", want: "cloud", devices: 10, limit: 20000, err: `unknown topology "cloud"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := pickTopology(tc.want, tc.external, tc.devices, 512, tc.limit)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("got %q, %v; want an error mentioning %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.got {
				t.Errorf("got %q, %v; want %q", got, err, tc.got)
			}
		})
	}
}

func TestEmulatorOutput(t *testing.T) {
	banner := `hubflow IoT Hub emulator is running (Ctrl-C stops it)
  REST (HTTPS):  127.0.0.1:40001
  MQTT (TLS):    127.0.0.1:40002
  CA file:       /tmp/x/ca.pem
  Data dir:      /tmp/x

Service connection string (iothubowner):
  HostName=localhost:40001;SharedAccessKeyName=iothubowner;SharedAccessKey=a2V5

No devices are registered yet; create them with the service connection string.
`
	var o emulatorOutput
	done := -1
	for i, line := range strings.Split(banner, "\n") {
		if o.line(line) && done < 0 {
			done = i
		}
	}
	want := emulatorInfo{
		httpsAddr: "127.0.0.1:40001", mqttAddr: "127.0.0.1:40002", caFile: "/tmp/x/ca.pem",
		connectionString: "HostName=localhost:40001;SharedAccessKeyName=iothubowner;SharedAccessKey=a2V5",
	}
	if o.info != want {
		t.Errorf("got %+v, want %+v", o.info, want)
	}
	if done != 7 {
		t.Errorf("banner complete at line %d, want 7 (the connection string)", done)
	}
}

func TestReportWatch(t *testing.T) {
	w := newReportWatch()
	done := func(p map[string]any) bool { return p["firmwareStatus"] == "completed" }
	c := w.expect("d1", done)
	w.onReport("d1", map[string]any{"firmwareStatus": "completed"})
	select {
	case <-c:
		t.Fatal("delivered while inactive")
	default:
	}
	w.active.Store(true)
	w.onLine([]byte(`{"device":"d1","reported":{"firmwareStatus":"downloading"}}`))
	w.onLine([]byte(`not json`))
	select {
	case <-c:
		t.Fatal("delivered a patch that does not say done")
	default:
	}
	w.onLine([]byte(`{"device":"d1","reported":{"firmwareStatus":"completed"}}`))
	select {
	case <-c:
	default:
		t.Fatal("not delivered")
	}
	// A second done report finds no waiter and must not panic.
	w.onReport("d1", map[string]any{"firmwareStatus": "completed"})
}
