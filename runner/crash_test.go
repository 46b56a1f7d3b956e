package runner_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hubflow/hubflow/internal/hubadapter"
	"github.com/hubflow/hubflow/iothub"
	"github.com/hubflow/hubflow/iothub/service"
	"github.com/hubflow/hubflow/runner"
	"github.com/hubflow/hubflow/state"
)

// The crash test runs the runner in a child process (this test binary,
// re-executed) that the parent kills with SIGKILL.
const (
	envChild = "HUBFLOW_RUNNER_CRASH_CHILD"
	envHub   = "HUBFLOW_RUNNER_CRASH_HUB"
	envCA    = "HUBFLOW_RUNNER_CRASH_CA"
	envDB    = "HUBFLOW_RUNNER_CRASH_DB"
	envJob   = "HUBFLOW_RUNNER_CRASH_JOB"
	crashRun = "crash-run"
)

func TestMain(m *testing.M) {
	var child func() error
	switch os.Getenv(envChild) {
	case "":
		os.Exit(m.Run())
	case "1":
		child = crashChild
	case "emulator":
		child = emulatorChild
	case "fleet":
		child = fleetChild
	default:
		fmt.Fprintln(os.Stderr, "unknown child", os.Getenv(envChild))
		os.Exit(2)
	}
	if err := child(); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(3)
	}
	os.Exit(0)
}

// crashChild runs (or resumes) the crash run to its end.
func crashChild() error {
	ctx := context.Background()
	cs, err := iothub.ParseConnectionString(os.Getenv(envHub))
	if err != nil {
		return err
	}
	roots, err := loadCA(os.Getenv(envCA))
	if err != nil {
		return err
	}
	svc, err := service.New(service.Config{ConnectionString: cs, RootCAs: roots, MaxConns: 64})
	if err != nil {
		return err
	}
	var st *state.Store
	for try := 0; ; try++ {
		if st, err = state.Open(ctx, os.Getenv(envDB), state.Options{}); err == nil || try > 100 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	defer st.Close()
	cfg, err := jobsLoad(os.Getenv(envJob))
	if err != nil {
		return err
	}
	r, err := runner.New(runner.Config{Hub: hubadapter.New(svc), Recorder: st})
	if err != nil {
		return err
	}
	req := runner.Request{Job: cfg, RunID: crashRun}
	if _, err := st.LoadRun(ctx, crashRun); errors.Is(err, state.ErrRunNotFound) {
		_, err = r.Run(ctx, req)
		return err
	}
	_, err = r.Resume(ctx, crashRun, req)
	return err
}

const crashFleet = `
defaults {
  reported = { fwVersion = "2.0.0" }
  reboot { duration = "50ms..150ms" }
  firmware {
    downloading = "50ms..150ms"
    applying    = "50ms..150ms"
  }
}
group "unit" {
  count = 24
  id    = "unit-%02d"
  tags  = { site = "x" }
}
`

const crashJob = `
job "crash" {
  target { query = "tags.site = 'x'" }
  rollout { concurrency = 6 }
  step "update" {
    method   = "firmwareUpdate"
    payload  = { fwPackageUri = "https://firmware.example.com/edge-2.1.0.bin" }
    response_timeout = "10s"
    progress = reported.firmwareStatus
    success  = reported.firmwareStatus == "completed" && reported.fwVersion == "2.1.0"
    failure  = reported.firmwareStatus == "failed"
    timeout  = "1m"
    retry { backoff = "200ms" }
  }
  step "reboot" {
    method  = "rebootDevice"
    success = try(timecmp(reported.rebootTime, step.started_at) > 0, false)
    timeout = "1m"
    retry { backoff = "200ms" }
  }
}
`

// TestRun_CrashAndResume kills the runner's process with SIGKILL at
// several points of a two-step rollout and starts it again each time.
// The emulator's record of delivered calls is the witness: no device gets
// a step again after it succeeded, every delivered call was recorded as
// an attempt before it was made, and the run ends with every device done.
func TestRun_CrashAndResume(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	f := startFixture(t, crashFleet, fixtureOptions{seed: 11})
	env := append(os.Environ(),
		envChild+"=1",
		envHub+"="+f.hub.ServiceConnectionString(),
		envCA+"="+f.hub.CAFile(),
		envDB+"="+f.db,
		envJob+"="+crashJob,
	)
	delivered := func() int {
		n := 0
		for _, inv := range f.hub.Invocations() {
			if !inv.Sent.IsZero() {
				n++
			}
		}
		return n
	}
	// Kill points: before any call, then after so many delivered calls.
	kills := []int{0, 3, 9, 16, 25, 33, 40}
	finished := false
	for round := 0; round < len(kills)+2 && !finished; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = env
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		if round < len(kills) {
			target := kills[round]
			deadline := time.Now().Add(30 * time.Second)
			for delivered() < target && time.Now().Before(deadline) {
				select {
				case err := <-done:
					t.Fatalf("round %d: child ended before its kill point: %v\n%s", round, err, stderr.String())
				case <-time.After(2 * time.Millisecond):
				}
			}
			if round == 0 {
				time.Sleep(50 * time.Millisecond)
			}
			_ = cmd.Process.Kill()
			<-done
			continue
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("round %d: child failed: %v\n%s", round, err, stderr.String())
			}
			finished = true
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
			t.Fatal("child did not finish")
		}
	}

	run, err := f.store.LoadRun(context.Background(), crashRun)
	if err != nil {
		t.Fatal(err)
	}
	if run.State != state.RunSucceeded || run.Counts.Succeeded != 24 {
		t.Fatalf("got run %s %+v (%s), want all 24 succeeded", run.State, run.Counts, run.Reason)
	}
	xs := executions(t, f.store, crashRun)
	steps := map[string]string{"firmwareUpdate": "update", "rebootDevice": "reboot"}
	perStep := map[string]int{}
	for _, inv := range f.hub.Invocations() {
		if inv.Sent.IsZero() {
			continue
		}
		key := inv.DeviceID + "/" + steps[inv.Method]
		perStep[key]++
		x, ok := xs[key]
		if !ok {
			t.Errorf("%s: delivered with no execution recorded", key)
			continue
		}
		// A call is only sent once the step's success is not recorded; it
		// reaches the device before the success it causes is seen.
		if !x.EndedAt.IsZero() && inv.Sent.After(x.EndedAt) {
			t.Errorf("%s: delivered at %s, after the step succeeded at %s", key, inv.Sent.Format(time.RFC3339Nano), x.EndedAt.Format(time.RFC3339Nano))
			logTimeline(t, f, inv.DeviceID)
		}
	}
	for key, n := range perStep {
		if x := xs[key]; n > x.Attempt {
			t.Errorf("%s: %d calls delivered but %d attempts recorded", key, n, x.Attempt)
		}
	}
	for key, x := range xs {
		if x.State != state.ExecSucceeded {
			t.Errorf("%s: got %s, want succeeded", key, x.State)
		}
	}
	if len(xs) != 48 {
		t.Errorf("got %d executions, want 48", len(xs))
	}
}
