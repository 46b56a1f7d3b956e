package runner_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hubflow/hubflow/runner"
	"github.com/hubflow/hubflow/state"
)

// failingFleet has two devices that fail every firmware update ("a-…",
// first by id) and eight that succeed.
const failingFleet = `
defaults {
  reported = { fwVersion = "2.0.0" }
  reboot { duration = "50ms..100ms" }
  firmware {
    downloading = "50ms..100ms"
    applying    = "50ms..100ms"
  }
}

group "bad" {
  count = 2
  id    = "a-%02d"
  tags  = { site = "x" }
  firmware { fail_downloading = 1 }
}

group "good" {
  count = 8
  id    = "b-%02d"
  tags  = { site = "x" }
}
`

const rolloutJob = `
variable "canary" {
  type    = number
  default = 0
}
variable "action" {
  type    = string
  default = "abort"
}
variable "concurrency" {
  type    = number
  default = 2
}

job "fw" {
  target { query = "tags.site = 'x'" }
  rollout {
    concurrency = var.concurrency
    canary      = var.canary
    abort {
      failure_ratio = 0.5
      min_finished  = 2
      action        = var.action
    }
  }
  step "update" {
    method   = "firmwareUpdate"
    payload  = { fwPackageUri = "https://firmware.example.com/edge-2.1.0.bin" }
    response_timeout = "10s"
    progress = reported.firmwareStatus
    success  = reported.firmwareStatus == "completed"
    failure  = reported.firmwareStatus == "failed"
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

func TestRun_CanaryFailure(t *testing.T) {
	f := startFixture(t, failingFleet, fixtureOptions{seed: 3})
	r := f.newRunner(t, runner.Config{})
	res := runJob(t, r, runner.Request{Job: loadJob(t, rolloutJob, "canary=2", "action=pause")})
	if res.State != state.RunFailed {
		t.Fatalf("got run state %s, want failed", res.State)
	}
	if !strings.Contains(res.Reason, "canary device a-0") {
		t.Errorf("got reason %q, want it to name a failed canary (a-01 or a-02)", res.Reason)
	}
	for key := range invocationCounts(f.hub) {
		if strings.HasPrefix(key, "b-") {
			t.Errorf("%s invoked, want no device beyond the canaries invoked", key)
		}
	}
	xs := executions(t, f.store, res.RunID)
	for _, id := range []string{"b-01", "b-08"} {
		for _, step := range []string{"update", "reboot"} {
			if x := xs[id+"/"+step]; x.State != state.ExecSkipped {
				t.Errorf("%s/%s: got %s, want skipped", id, step, x.State)
			}
		}
	}
	if x := xs["a-01/reboot"]; x.State != state.ExecSkipped {
		t.Errorf("a-01/reboot: got %s, want skipped after its update failed", x.State)
	}
	if res.Counts.Failed != 2 || res.Counts.Skipped != 8 {
		t.Errorf("got counts %+v, want 2 failed and 8 skipped", res.Counts)
	}
}

func TestRun_AbortRuleAbort(t *testing.T) {
	f := startFixture(t, failingFleet, fixtureOptions{seed: 4})
	r := f.newRunner(t, runner.Config{})
	res := runJob(t, r, runner.Request{Job: loadJob(t, rolloutJob, "action=abort")})
	if res.State != state.RunAborted {
		t.Fatalf("got run state %s (%s), want aborted", res.State, res.Reason)
	}
	if !strings.Contains(res.Reason, "abort rule") {
		t.Errorf("got reason %q, want the abort rule named", res.Reason)
	}
	run, err := f.store.LoadRun(t.Context(), res.RunID)
	if err != nil {
		t.Fatal(err)
	}
	if run.State != state.RunAborted || run.Reason != res.Reason {
		t.Errorf("got recorded %s %q, want aborted %q", run.State, run.Reason, res.Reason)
	}
	// The two failing devices go first; once they finished no new device
	// started, so most of the fleet was never invoked.
	invoked := 0
	for key := range invocationCounts(f.hub) {
		if strings.HasPrefix(key, "b-") && strings.HasSuffix(key, "/firmwareUpdate") {
			invoked++
		}
	}
	if invoked > 2 {
		t.Errorf("got %d good devices invoked, want at most the 2 in flight when the rule tripped", invoked)
	}
	if run.Counts.Skipped < 6 {
		t.Errorf("got %d devices skipped, want at least 6", run.Counts.Skipped)
	}
}

// waitState waits for the run's recorded state.
func waitState(t testing.TB, st *state.Store, runID string, want state.RunState) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		ctl, err := st.ReadControl(context.Background(), runID)
		if err == nil && ctl.State == want {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("run %s never reached %s", runID, want)
}

// runAsync starts a run and returns its id once it is recorded, and a
// channel with its result.
func runAsync(t testing.TB, r *runner.Runner, st *state.Store, req runner.Request) (string, <-chan *runner.Result) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	ids := make(chan string, 1)
	prev := req.Progress
	req.Progress = func(s runner.Snapshot) {
		select {
		case ids <- s.RunID:
		default:
		}
		if prev != nil {
			prev(s)
		}
	}
	out := make(chan *runner.Result, 1)
	go func() {
		res, err := r.Run(ctx, req)
		if err != nil {
			t.Errorf("run: %v", err)
		}
		out <- res
	}()
	select {
	case id := <-ids:
		return id, out
	case <-ctx.Done():
		t.Fatal("run never reported")
		return "", nil
	}
}

func TestRun_AbortRulePauseResumeCancel(t *testing.T) {
	f := startFixture(t, failingFleet, fixtureOptions{seed: 5})
	r := f.newRunner(t, runner.Config{})
	var snaps snapshots
	runID, done := runAsync(t, r, f.store, runner.Request{Job: loadJob(t, rolloutJob, "action=pause"), Progress: snaps.add})

	// Another process (another handle on the same file) resumes and then
	// cancels the run.
	other := openStore(t, f.db)
	waitState(t, other, runID, state.RunPaused)
	if err := other.RequestResume(t.Context(), runID); err != nil {
		t.Fatal(err)
	}
	waitState(t, other, runID, state.RunRunning)
	if err := other.RequestCancel(t.Context(), runID); err != nil {
		t.Fatal(err)
	}
	res := <-done
	if res.State != state.RunCancelled {
		t.Fatalf("got run state %s (%s), want cancelled", res.State, res.Reason)
	}
	got := snaps.states()
	want := []state.RunState{state.RunRunning, state.RunPaused, state.RunRunning, state.RunCancelled}
	if !containsSeq(got, want) {
		t.Errorf("got states %v, want %v in order", got, want)
	}
	run, err := other.LoadRun(t.Context(), runID)
	if err != nil {
		t.Fatal(err)
	}
	if run.State != state.RunCancelled || run.Counts.Pending != 0 || run.Counts.Running != 0 {
		t.Errorf("got recorded %s with %+v, want cancelled with nothing pending or running", run.State, run.Counts)
	}
}

func containsSeq(got, want []state.RunState) bool {
	i := 0
	for _, s := range got {
		if i < len(want) && s == want[i] {
			i++
		}
	}
	return i == len(want)
}

func TestRun_CancelFromAnotherProcess(t *testing.T) {
	f := startFixture(t, smallFleet, fixtureOptions{seed: 6})
	r := f.newRunner(t, runner.Config{})
	job := loadJob(t, strings.Replace(firmwareJob, "concurrency = 5", "concurrency = 1", 1))
	runID, done := runAsync(t, r, f.store, runner.Request{Job: job})
	other := openStore(t, f.db)
	waitState(t, other, runID, state.RunRunning)
	if err := other.RequestCancel(t.Context(), runID); err != nil {
		t.Fatal(err)
	}
	res := <-done
	if res.State != state.RunCancelled {
		t.Fatalf("got %s, want cancelled", res.State)
	}
	if res.Counts.Skipped < 8 {
		t.Errorf("got %d skipped, want most devices skipped", res.Counts.Skipped)
	}
	if err := other.RequestCancel(t.Context(), runID); !errors.Is(err, state.ErrRunFinished) {
		t.Errorf("cancel of a cancelled run: got %v, want ErrRunFinished", err)
	}
}

func TestRun_PlanHashMismatchRefused(t *testing.T) {
	f := startFixture(t, smallFleet, fixtureOptions{seed: 7})
	r := f.newRunner(t, runner.Config{})
	job := loadJob(t, rebootJob)
	plan, err := r.Plan(t.Context(), job, runner.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Run(t.Context(), runner.Request{Job: job, PlanHash: "0000000000000000"})
	var pm *runner.PlanMismatchError
	if !errors.As(err, &pm) {
		t.Fatalf("got %v, want a PlanMismatchError", err)
	}
	if pm.Got != plan.Hash {
		t.Errorf("got hash %s in the error, want the plan's %s", pm.Got, plan.Hash)
	}
	runs, err := f.store.ListRuns(t.Context(), state.RunFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 0 || len(f.hub.Invocations()) != 0 {
		t.Errorf("got %d runs recorded and %d invocations, want none", len(runs), len(f.hub.Invocations()))
	}
	res := runJob(t, r, runner.Request{Job: job, PlanHash: plan.Hash})
	if res.State != state.RunSucceeded {
		t.Errorf("run with the planned hash: got %s, want succeeded", res.State)
	}
}
