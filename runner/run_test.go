package runner_test

import (
	"strings"
	"testing"
	"time"

	"github.com/hubflow/hubflow/runner"
	"github.com/hubflow/hubflow/state"
)

const smallFleet = `
defaults {
  reported = { fwVersion = "2.0.0" }
  reboot { duration = "50ms..150ms" }
  firmware {
    downloading = "50ms..100ms"
    applying    = "50ms..100ms"
  }
}

group "press" {
  count = 8
  id    = "press-%02d"
  tags  = { site = "plant-7", timezone = "Europe/Berlin" }
}

group "robot" {
  count = 4
  id    = "robot-%02d"
  tags  = { site = "newark", timezone = "America/New_York" }
}
`

const rebootJob = `
job "reboot" {
  target { query = "tags.site = 'plant-7'" }
  rollout { concurrency = 4 }
  step "reboot" {
    method   = "rebootDevice"
    progress = try(reported.rebootTime, null)
    success  = try(timecmp(reported.rebootTime, step.started_at) > 0, false)
    timeout  = "30s"
  }
}
`

func TestRun_Reboot(t *testing.T) {
	f := startFixture(t, smallFleet, fixtureOptions{seed: 1})
	r := f.newRunner(t, runner.Config{})
	var snaps snapshots
	res := runJob(t, r, runner.Request{Job: loadJob(t, rebootJob), Progress: snaps.add})
	if res.State != state.RunSucceeded {
		t.Fatalf("got run state %s (%s), want succeeded", res.State, res.Reason)
	}
	if res.Counts.Succeeded != 8 {
		t.Errorf("got %d devices succeeded, want 8", res.Counts.Succeeded)
	}
	xs := executions(t, f.store, res.RunID)
	if got := stateCounts(xs, "reboot"); got[state.ExecSucceeded] != 8 || len(got) != 1 {
		t.Errorf("got executions %s, want succeeded=8", fmtCounts(got))
	}
	for key, n := range invocationCounts(f.hub) {
		if n != 1 {
			t.Errorf("%s invoked %d times, want once", key, n)
			logTimeline(t, f, strings.Split(key, "/")[0])
		}
	}
	run, err := f.store.LoadRun(t.Context(), res.RunID)
	if err != nil {
		t.Fatal(err)
	}
	if run.State != state.RunSucceeded || run.Counts.Succeeded != 8 {
		t.Errorf("got recorded run %s with %+v, want succeeded with 8", run.State, run.Counts)
	}
	if got := snaps.states(); got[len(got)-1] != state.RunSucceeded {
		t.Errorf("got snapshot states %v, want them to end succeeded", got)
	}
}

const firmwareJob = `
variable "version" {
  type    = string
  default = "2.1.0"
}

job "firmware" {
  target { query = "properties.reported.fwVersion != '${var.version}'" }
  rollout {
    concurrency = 5
    rate        = "50/s"
    canary      = 3
  }
  step "update" {
    method           = "firmwareUpdate"
    payload          = { fwPackageUri = "https://firmware.example.com/edge-${var.version}.bin" }
    response_timeout = "10s"
    progress = reported.firmwareStatus
    success  = reported.firmwareStatus == "completed" && reported.fwVersion == var.version
    failure  = contains(["failed", "error"], try(reported.firmwareStatus, ""))
    timeout  = "30s"
    retry { backoff = "300ms" }
  }
  step "reboot" {
    method  = "rebootDevice"
    success = try(timecmp(reported.rebootTime, step.started_at) > 0, false)
    timeout = "30s"
    retry { backoff = "300ms" }
  }
}
`

func TestRun_FirmwareStagedWithCanary(t *testing.T) {
	f := startFixture(t, smallFleet, fixtureOptions{seed: 2})
	r := f.newRunner(t, runner.Config{})
	res := runJob(t, r, runner.Request{Job: loadJob(t, firmwareJob)})
	if res.State != state.RunSucceeded {
		t.Fatalf("got run state %s (%s), want succeeded", res.State, res.Reason)
	}
	xs := executions(t, f.store, res.RunID)
	for _, step := range []string{"update", "reboot"} {
		if got := stateCounts(xs, step); got[state.ExecSucceeded] != 12 || len(got) != 1 {
			t.Errorf("step %s: got %s, want succeeded=12", step, fmtCounts(got))
		}
	}
	// Every device got each method exactly once, and the reboot only after
	// its update succeeded.
	counts := invocationCounts(f.hub)
	if len(counts) != 24 {
		t.Errorf("got %d device/method pairs invoked, want 24", len(counts))
	}
	for key, n := range counts {
		if n != 1 {
			t.Errorf("%s invoked %d times, want once", key, n)
			logTimeline(t, f, strings.Split(key, "/")[0])
		}
	}
	// The canaries (the first three devices by id) finished both steps
	// before any other device got its first call.
	var canaryEnd time.Time
	for _, id := range []string{"press-01", "press-02", "press-03"} {
		if end := xs[id+"/reboot"].EndedAt; end.After(canaryEnd) {
			canaryEnd = end
		}
	}
	for _, inv := range f.hub.Invocations() {
		if strings.HasPrefix(inv.DeviceID, "press-0") && inv.DeviceID <= "press-03" {
			continue
		}
		if inv.Sent.Before(canaryEnd.Add(-time.Millisecond)) {
			t.Errorf("%s got %s at %s, before the canaries ended at %s", inv.DeviceID, inv.Method, inv.Sent, canaryEnd)
		}
	}
	// Progress history: every device showed downloading, applying, completed.
	for id := range map[string]bool{"press-05": true, "robot-02": true} {
		x := xs[id+"/update"]
		if string(x.Progress) != `"completed"` {
			t.Errorf("%s: got last progress %s, want \"completed\"", id, x.Progress)
		}
	}
}
