package reliability_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hubflow/hubflow/internal/hubadapter"
	"github.com/hubflow/hubflow/iothub"
	"github.com/hubflow/hubflow/runner"
	"github.com/hubflow/hubflow/simulator"
	"github.com/hubflow/hubflow/state"
)

// lostAnswerHub delivers the first call of one method, then stops the run
// as a crash would: the device acts on the call, the runner never learns
// the answer.
type lostAnswerHub struct {
	runner.Hub
	method string
	stop   context.CancelFunc

	once sync.Once
}

func (h *lostAnswerHub) InvokeMethod(ctx context.Context, id string, call runner.MethodCall) (*iothub.MethodResponse, error) {
	lost := false
	h.once.Do(func() { lost = call.Name == h.method })
	if !lost {
		return h.Hub.InvokeMethod(ctx, id, call)
	}
	_, err := h.Hub.InvokeMethod(context.WithoutCancel(ctx), id, call)
	h.stop()
	<-ctx.Done()
	if err != nil {
		return nil, err
	}
	return nil, ctx.Err()
}

// TestResume_RebootWhoseAnswerWasLost resumes a run whose reboot call
// reached the device but whose answer the crashed runner never recorded.
// The device is still rebooting when the run resumes, so its twin shows
// nothing yet; it then comes back and reports rebootTime. The contract:
// a device that did a step is not sent it again, so the witness must show
// one reboot.
func TestResume_RebootWhoseAnswerWasLost(t *testing.T) {
	h := startHub(t, `
group "slowboot" {
  count = 1
  id    = "slowboot-%d"
  tags  = { site = "slowboot" }
  reboot { duration = "1500ms" }
}`, hubOptions{seed: 1})
	store := openStore(t, filepath.Join(t.TempDir(), "history.db"), state.Options{})
	job := loadJob(t, `
job "reboot" {
  target { query = "tags.site = 'slowboot'" }
  step "reboot" {
    method  = "rebootDevice"
    success = try(timecmp(reported.rebootTime, step.started_at) > 0, false)
    timeout = "30s"
    retry { backoff = "200ms" }
  }
}`)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	runCtx, crash := context.WithCancel(ctx)
	lossy := &lostAnswerHub{Hub: hubadapter.New(h.svc), method: simulator.MethodReboot, stop: crash}
	r1, err := runner.New(runner.Config{Hub: lossy, Recorder: store, ControlInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	res, err := r1.Run(runCtx, runner.Request{Job: job})
	if err != nil && res == nil {
		t.Fatalf("run: %v", err)
	}
	if !res.Interrupted {
		t.Fatalf("got %s (%s), want the run interrupted by the crash", res.State, res.Reason)
	}
	res, err = h.runner(t, store).Resume(ctx, res.RunID, runner.Request{Job: job})
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	if res.State != state.RunSucceeded {
		t.Fatalf("got %s (%s), want succeeded", res.State, res.Reason)
	}
	id := h.sim.Devices()[0]
	truth := witness(h.hub, []string{id})[id]
	if n := len(truth.reboots); n != 1 {
		if err := store.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		logTimeline(t, h.hub, store.Path(), id)
		t.Fatalf("got %d reboots delivered, want 1: the runner sent the step again although the call before it had reached the device", n)
	}
}
