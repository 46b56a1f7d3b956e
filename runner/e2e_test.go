package runner_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hubflow/hubflow/emulator"
	"github.com/hubflow/hubflow/iothub"
	"github.com/hubflow/hubflow/iothub/device"
	"github.com/hubflow/hubflow/runner"
	"github.com/hubflow/hubflow/state"
)

// lateDevice registers a device with tags that stays offline until connect
// is called, then answers rebootDevice as the tutorial device does.
type lateDevice struct {
	t   testing.TB
	hub *emulator.Hub
	id  string
}

func newLateDevice(t testing.TB, f *fixture, id string, tags map[string]any) *lateDevice {
	t.Helper()
	if _, err := f.hub.CreateDevice(id); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.UpdateTwin(context.Background(), id, iothub.TwinPatch{Tags: tags}, ""); err != nil {
		t.Fatal(err)
	}
	return &lateDevice{t: t, hub: f.hub, id: id}
}

func (d *lateDevice) connect() error {
	raw, err := d.hub.DeviceConnectionString(d.id)
	if err != nil {
		return err
	}
	cs, err := iothub.ParseConnectionString(raw)
	if err != nil {
		return err
	}
	c, err := device.New(device.Config{ConnectionString: cs, RootCAs: d.hub.CAPool()})
	if err != nil {
		return err
	}
	d.t.Cleanup(func() { c.Close() })
	c.Handle("rebootDevice", func(ctx context.Context, _ json.RawMessage) (int, []byte) {
		go func() {
			time.Sleep(50 * time.Millisecond)
			_, _ = c.UpdateReported(context.Background(), map[string]any{"rebootTime": time.Now().UTC().Format(time.RFC3339Nano)})
		}()
		return 200, []byte(`{"result":"Reboot started"}`)
	})
	return c.Connect(context.Background())
}

// TestRun_OfflineDeviceRetriedAndBack runs a reboot on a device that
// comes online two seconds into the run: it is retried, not failed, and
// invoked exactly once with an answer.
func TestRun_OfflineDeviceRetriedAndBack(t *testing.T) {
	f := startFixture(t, smallFleet, fixtureOptions{seed: 8})
	late := newLateDevice(t, f, "press-99", map[string]any{"site": "plant-7"})
	go func() {
		// Connect only once the hub has turned a call away as offline, so
		// the retry is exercised however slowly the run gets to the device.
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if offlineCalls(f.hub, "press-99") > 0 {
				break
			}
		}
		if err := late.connect(); err != nil {
			t.Errorf("connect late device: %v", err)
		}
	}()
	r := f.newRunner(t, runner.Config{})
	job := loadJob(t, strings.Replace(rebootJob, `timeout  = "30s"`, "timeout  = \"30s\"\n    retry { backoff = \"200ms\" }", 1))
	res := runJob(t, r, runner.Request{Job: job})
	if res.State != state.RunSucceeded {
		t.Fatalf("got %s (%s), want succeeded", res.State, res.Reason)
	}
	x := executions(t, f.store, res.RunID)["press-99/reboot"]
	if x.State != state.ExecSucceeded || x.Attempt < 2 {
		t.Errorf("press-99: got %s after %d attempts, want succeeded after retries", x.State, x.Attempt)
	}
	offline, answered := 0, 0
	for _, inv := range f.hub.Invocations() {
		if inv.DeviceID != "press-99" {
			continue
		}
		switch inv.Outcome {
		case emulator.OutcomeOffline:
			offline++
		case emulator.OutcomeAnswered:
			answered++
		}
	}
	if offline == 0 || answered != 1 {
		t.Errorf("press-99: got %d offline and %d answered calls, want some offline and one answered", offline, answered)
	}
}

const throttleFleet = `
defaults {
  reported = { fwVersion = "2.0.0" }
  firmware {
    downloading = "20ms..50ms"
    applying    = "20ms..50ms"
  }
}
group "sensor" {
  count = 60
  id    = "sensor-%03d"
  tags  = { site = "x" }
}
`

// quotaFleet stays within an S1 hub's twin-update burst when it reports
// its initial state.
const quotaFleet = `
defaults {
  reboot { duration = "50ms..100ms" }
}
group "sensor" {
  count = 24
  id    = "sensor-%03d"
  tags  = { site = "x" }
}
`

// TestRun_ThrottledByQuotas runs against an emulator enforcing S1 quotas
// (ten units, so that registering the fleet takes no time), with every
// metered call refused for a moment at the start: the run finishes, no
// device fails, and the 429s slowed the budget down.
func TestRun_ThrottledByQuotas(t *testing.T) {
	f := startFixture(t, quotaFleet, fixtureOptions{seed: 9, tier: "S1", units: 10})
	budget, err := runner.NewBudget("S1", 10)
	if err != nil {
		t.Fatal(err)
	}
	r := f.newRunner(t, runner.Config{Budget: budget})
	job := loadJob(t, `
job "reboot" {
  target { devices = [for i in range(1, 25) : format("sensor-%03d", i)] }
  rollout { concurrency = 24 }
  step "reboot" {
    method  = "rebootDevice"
    success = try(timecmp(reported.rebootTime, step.started_at) > 0, false)
    timeout = "1m"
    retry { backoff = "200ms" }
  }
}`)
	f.hub.Faults().Throttle(500 * time.Millisecond)
	res := runJob(t, r, runner.Request{Job: job})
	if res.State != state.RunSucceeded || res.Counts.Succeeded != 24 {
		t.Fatalf("got %s %+v (%s), want all 24 succeeded", res.State, res.Counts, res.Reason)
	}
	var throttled int64
	for _, n := range budget.Stats().Throttled {
		throttled += n
	}
	if throttled == 0 {
		t.Errorf("got no throttled answers, want the forced ones counted")
	}
	for key, n := range invocationCounts(f.hub) {
		if n != 1 {
			t.Errorf("%s delivered %d times, want once", key, n)
		}
	}
}

// TestRun_WindowClosesAndReopensEndToEnd runs against the emulator with
// the runner's clock accelerated 600 times: a five-minute window every ten
// minutes opens and closes while devices remain, across midnight, and the
// run carries on at each opening.
func TestRun_WindowClosesAndReopensEndToEnd(t *testing.T) {
	f := startFixture(t, throttleFleet, fixtureOptions{seed: 10})
	clock := runner.NewSpeedClock(time.Date(2026, 5, 4, 23, 51, 0, 0, time.UTC), 600)
	r := f.newRunner(t, runner.Config{Clock: clock})
	job := loadJob(t, `
job "fw" {
  target { query = "tags.site = 'x'" }
  window "often" {
    cron     = "*/10 * * * *"
    duration = "5m"
    timezone = "UTC"
  }
  rollout {
    concurrency = 4
    rate        = "40/s"
  }
  step "update" {
    method   = "firmwareUpdate"
    payload  = { fwPackageUri = "https://firmware.example.com/edge-2.1.0.bin" }
    response_timeout = "10s"
    success  = reported.firmwareStatus == "completed"
    timeout  = "100h"
  }
}`)
	var snaps snapshots
	res := runJob(t, r, runner.Request{Job: job, Progress: snaps.add})
	if res.State != state.RunSucceeded || res.Counts.Succeeded != 60 {
		t.Fatalf("got %s %+v (%s), want all 60 succeeded", res.State, res.Counts, res.Reason)
	}
	xs := executions(t, f.store, res.RunID)
	days := map[int]int{}
	for _, x := range xs {
		inv := x.InvokedAt.UTC()
		if inv.Minute()%10 >= 5 {
			t.Errorf("%s invoked at %s, outside the windows", x.DeviceID, inv.Format(time.RFC3339Nano))
		}
		days[inv.YearDay()]++
	}
	if len(days) < 2 {
		t.Errorf("got invocations on %d days, want the run to cross midnight", len(days))
	}
	want := []state.RunState{state.RunRunning, state.RunWaitingWindow, state.RunRunning, state.RunSucceeded}
	if got := snaps.states(); !containsSeq(got, want) {
		t.Errorf("got states %v, want %v in order", got, want)
	}
}

// offlineCalls counts the calls to id the hub answered as offline.
func offlineCalls(hub *emulator.Hub, id string) int {
	n := 0
	for _, inv := range hub.Invocations() {
		if inv.DeviceID == id && inv.Outcome == emulator.OutcomeOffline {
			n++
		}
	}
	return n
}
