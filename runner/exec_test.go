package runner

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hubflow/hubflow/iothub"
	"github.com/hubflow/hubflow/state"
)

const stepJob = `
job "j" {
  target { query = "tags.site = 'x'" }
  rollout { concurrency = 10 }
  step "s" {
    method  = "m"
    success = reported.status == "done"
    timeout = "5m"
    retry {
      attempts = 3
      backoff  = "10s"
    }
  }
}
`

var siteX = map[string]any{"site": "x"}

func notOnline() error {
	return &iothub.Error{Status: 404, Code: iothub.CodeDeviceNotOnline, Message: "Timed out waiting for device to connect."}
}

// runFake runs job on fleet inside the caller's synctest bubble.
func runFake(t *testing.T, fleet *fakeFleet, src string) (*Result, *state.Store) {
	t.Helper()
	st := testStore(t)
	r := testRunner(t, fleet.hub(), st, fleet.clock)
	res, err := r.Run(context.Background(), Request{Job: testJob(t, src)})
	if err != nil {
		t.Fatal(err)
	}
	return res, st
}

func TestExecute_OfflineDeviceRetriedUntilBackOrTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clock := NewShiftedClock(mustTime(t, "2026-06-01T10:00:00Z"))
		start := clock.Now()
		fleet := newFakeFleet(clock,
			&fakeDevice{id: "late", tags: siteX, work: time.Second},
			&fakeDevice{id: "gone", tags: siteX, work: time.Second},
		)
		fleet.answer = func(d *fakeDevice, n int, now time.Time) (*iothub.MethodResponse, error) {
			if d.id == "gone" || now.Before(start.Add(90*time.Second)) {
				return nil, notOnline()
			}
			return &iothub.MethodResponse{Status: 200}, nil
		}
		res, st := runFake(t, fleet, stepJob)
		xs := execsByKey(t, st, res.RunID)
		late := xs["late/s"]
		if late.State != state.ExecSucceeded {
			t.Errorf("late: got %s (%s), want succeeded", late.State, late.Error)
		}
		// Not-online answers do not use up the retry attempts (3).
		if n := len(fleet.callsTo("late")); n < 4 {
			t.Errorf("late: got %d calls, want more than the 3 attempts", n)
		}
		gone := xs["gone/s"]
		if gone.State != state.ExecTimedOut || !strings.Contains(gone.Error, "not online") {
			t.Errorf("gone: got %s %q, want timed_out saying not online", gone.State, gone.Error)
		}
		if calls := fleet.callsTo("gone"); calls[len(calls)-1].at.After(start.Add(5 * time.Minute)) {
			t.Errorf("gone: last call at %s, after the step's timeout", calls[len(calls)-1].at)
		}
		if res.State != state.RunFailed || res.Counts.TimedOut != 1 || res.Counts.Failed != 0 {
			t.Errorf("got run %s %+v, want failed with one timed out and none failed", res.State, res.Counts)
		}
	})
}

func TestExecute_ThrottledNeverFailsADevice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clock := NewShiftedClock(mustTime(t, "2026-06-01T10:00:00Z"))
		var devs []*fakeDevice
		for _, id := range []string{"a", "b", "c", "d", "e"} {
			devs = append(devs, &fakeDevice{id: id, tags: siteX, work: time.Second})
		}
		fleet := newFakeFleet(clock, devs...)
		var throttled atomic.Int32
		fleet.answer = func(d *fakeDevice, n int, now time.Time) (*iothub.MethodResponse, error) {
			if throttled.Add(1) <= 8 {
				return nil, &iothub.Error{Status: 429, Code: iothub.CodeThrottlingException, RetryAfter: 2 * time.Second}
			}
			return &iothub.MethodResponse{Status: 200}, nil
		}
		st := testStore(t)
		r := testRunner(t, fleet.hub(), st, clock)
		res, err := r.Run(context.Background(), Request{Job: testJob(t, stepJob)})
		if err != nil {
			t.Fatal(err)
		}
		if res.State != state.RunSucceeded {
			t.Fatalf("got %s (%s), want succeeded", res.State, res.Reason)
		}
		if got := r.Budget().Stats().Throttled[OpMethod]; got != 8 {
			t.Errorf("got %d throttled calls counted, want 8", got)
		}
	})
}

func TestExecute_TransientFailuresUseAttempts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clock := NewShiftedClock(mustTime(t, "2026-06-01T10:00:00Z"))
		fleet := newFakeFleet(clock, &fakeDevice{id: "a", tags: siteX, work: time.Second})
		fleet.answer = func(d *fakeDevice, n int, now time.Time) (*iothub.MethodResponse, error) {
			return nil, &iothub.Error{Status: 503, Code: iothub.CodeServiceUnavailable, Message: "unavailable"}
		}
		res, st := runFake(t, fleet, stepJob)
		x := execsByKey(t, st, res.RunID)["a/s"]
		if x.State != state.ExecFailed || !strings.Contains(x.Error, "after 3 attempts") {
			t.Errorf("got %s %q, want failed after 3 attempts", x.State, x.Error)
		}
		if n := len(fleet.callsTo("a")); n != 3 {
			t.Errorf("got %d calls, want 3", n)
		}
		if x.Attempt != 3 {
			t.Errorf("got attempt %d recorded, want 3", x.Attempt)
		}
	})
}

func TestExecute_StatusOutsideAcceptStatusFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clock := NewShiftedClock(mustTime(t, "2026-06-01T10:00:00Z"))
		fleet := newFakeFleet(clock, &fakeDevice{id: "a", tags: siteX})
		fleet.answer = func(d *fakeDevice, n int, now time.Time) (*iothub.MethodResponse, error) {
			return &iothub.MethodResponse{Status: 404, Payload: []byte(`"Unknown method"`)}, nil
		}
		res, st := runFake(t, fleet, stepJob)
		x := execsByKey(t, st, res.RunID)["a/s"]
		if x.State != state.ExecFailed || x.MethodStatus == nil || *x.MethodStatus != 404 {
			t.Errorf("got %s status %v, want failed with status 404", x.State, x.MethodStatus)
		}
		if string(x.Response) != `"Unknown method"` {
			t.Errorf("got response %s, want the device's payload", x.Response)
		}
		if n := len(fleet.callsTo("a")); n != 1 {
			t.Errorf("got %d calls, want 1 (a refusal is not retried)", n)
		}
	})
}

func TestExecute_ExpressionErrorRecordedOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clock := NewShiftedClock(mustTime(t, "2026-06-01T10:00:00Z"))
		fleet := newFakeFleet(clock, &fakeDevice{id: "a", tags: siteX, work: time.Second,
			reported: map[string]any{"rebootTime": "not a time"}})
		res, st := runFake(t, fleet, `
job "j" {
  target { query = "tags.site = 'x'" }
  step "s" {
    method  = "m"
    success = timecmp(reported.rebootTime, step.started_at) > 0
    timeout = "2m"
  }
}`)
		x := execsByKey(t, st, res.RunID)["a/s"]
		if x.State != state.ExecTimedOut {
			t.Errorf("got %s, want timed_out", x.State)
		}
		tl, err := st.DeviceTimeline(context.Background(), "a", 0)
		if err != nil {
			t.Fatal(err)
		}
		notes := 0
		for _, e := range tl {
			for _, ev := range e.Events {
				if ev.Kind == state.KindNote && ev.Error != "" {
					notes++
				}
			}
		}
		if notes != 1 {
			t.Errorf("got %d error notes, want the expression error recorded once", notes)
		}
	})
}

func TestExecute_DesiredStep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clock := NewShiftedClock(mustTime(t, "2026-06-01T10:00:00Z"))
		fleet := newFakeFleet(clock, &fakeDevice{id: "a", tags: siteX, work: 3 * time.Second})
		hub := fleet.hub()
		var got map[string]any
		inner := hub.patch
		hub.patch = func(ctx context.Context, id string, desired map[string]any) error {
			got = desired
			return inner(ctx, id, desired)
		}
		st := testStore(t)
		r := testRunner(t, hub, st, clock)
		res, err := r.Run(context.Background(), Request{Job: testJob(t, `
job "j" {
  target { devices = ["a", "missing"] }
  step "policy" {
    desired = { maintenanceWindow = { start = "01:00", duration = "3h" } }
    success = reported.status == "done"
    timeout = "1m"
  }
}`)})
		if err != nil {
			t.Fatal(err)
		}
		if res.Counts.Succeeded != 1 || res.Counts.Skipped != 1 || res.State != state.RunSucceeded {
			t.Errorf("got %s %+v, want succeeded with a succeeded and missing skipped", res.State, res.Counts)
		}
		mw, _ := got["maintenanceWindow"].(map[string]any)
		if mw["start"] != "01:00" || mw["duration"] != "3h" {
			t.Errorf("got desired patch %v, want the step's", got)
		}
		devs, err := st.RunDevices(context.Background(), res.RunID, state.DeviceFilter{State: state.ExecSkipped})
		if err != nil {
			t.Fatal(err)
		}
		if len(devs) != 1 || devs[0].DeviceID != "missing" || !strings.Contains(devs[0].SkipReason, "not found") {
			t.Errorf("got skipped %+v, want missing skipped as not found", devs)
		}
	})
}

// TestResume_ReconcilesFromTheTwin interrupts a run while calls are on
// their way, then resumes it: a device whose twin shows the call was acted
// on is not called again, one whose twin shows nothing is, and one that
// had succeeded is left alone.
func TestResume_ReconcilesFromTheTwin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clock := NewShiftedClock(mustTime(t, "2026-06-01T10:00:00Z"))
		fleet := newFakeFleet(clock,
			&fakeDevice{id: "acted", tags: siteX, work: time.Second},
			&fakeDevice{id: "done", tags: siteX, work: time.Second},
			&fakeDevice{id: "lost", tags: siteX, work: time.Second},
		)
		hub := fleet.hub()
		inner := hub.invoke
		ctx, crash := context.WithCancel(context.Background())
		var blocked atomic.Int32
		hub.invoke = func(c context.Context, id string, call MethodCall) (*iothub.MethodResponse, error) {
			switch id {
			case "acted":
				// The device gets the call; the answer never comes back.
				_, _ = inner(c, id, call)
			case "lost":
				// The call never reaches the device.
			default:
				return inner(c, id, call)
			}
			if blocked.Add(1) == 2 {
				go func() {
					time.Sleep(10 * time.Second)
					crash()
				}()
			}
			<-c.Done()
			return nil, c.Err()
		}
		st := testStore(t)
		job := testJob(t, stepJob)
		r := testRunner(t, hub, st, clock)
		res, err := r.Run(ctx, Request{Job: job})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Interrupted {
			t.Fatalf("got %+v, want an interrupted run", res)
		}
		xs := execsByKey(t, st, res.RunID)
		if xs["acted/s"].State != state.ExecInvoking || xs["lost/s"].State != state.ExecInvoking || xs["done/s"].State != state.ExecSucceeded {
			t.Fatalf("before resume: got acted %s, lost %s, done %s", xs["acted/s"].State, xs["lost/s"].State, xs["done/s"].State)
		}

		hub.invoke = inner
		r2 := testRunner(t, hub, st, clock)
		res, err = r2.Resume(context.Background(), res.RunID, Request{Job: job})
		if err != nil {
			t.Fatal(err)
		}
		if res.State != state.RunSucceeded {
			t.Fatalf("after resume: got %s (%s), want succeeded", res.State, res.Reason)
		}
		for id, want := range map[string]int{"acted": 1, "done": 1, "lost": 1} {
			if n := len(fleet.callsTo(id)); n != want {
				t.Errorf("%s: got %d calls delivered, want %d", id, n, want)
			}
		}
		xs = execsByKey(t, st, res.RunID)
		if a := xs["lost/s"].Attempt; a != 2 {
			t.Errorf("lost: got attempt %d, want 2 (invoked again)", a)
		}
		if a := xs["acted/s"].Attempt; a != 1 {
			t.Errorf("acted: got attempt %d, want 1 (followed, not invoked again)", a)
		}
	})
}

func TestResume_RefusesChangedJob(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clock := NewShiftedClock(mustTime(t, "2026-06-01T10:00:00Z"))
		fleet := newFakeFleet(clock, &fakeDevice{id: "a", tags: siteX, work: time.Second})
		st := testStore(t)
		r := testRunner(t, fleet.hub(), st, clock)
		drain := make(chan struct{})
		close(drain)
		res, err := r.Run(context.Background(), Request{Job: testJob(t, stepJob), Drain: drain})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Interrupted {
			t.Fatalf("got %+v, want the drained run left unfinished", res)
		}
		_, err = r.Resume(context.Background(), res.RunID, Request{Job: testJob(t, strings.Replace(stepJob, `"5m"`, `"6m"`, 1))})
		if !errors.Is(err, ErrJobChanged) {
			t.Errorf("got %v, want ErrJobChanged", err)
		}
		res, err = r.Resume(context.Background(), res.RunID, Request{Job: testJob(t, stepJob)})
		if err != nil || res.State != state.RunSucceeded {
			t.Errorf("resume with the same job: got %v, %v, want succeeded", res, err)
		}
	})
}

func TestExecute_NotOnlineAfterTheCallReachedTheDevice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clock := NewShiftedClock(mustTime(t, "2026-06-01T10:00:00Z"))
		start := clock.Now()
		// The device takes the call and drops its connection at once, as a
		// rebooting device does, so the hub answers "not online"; it comes
		// back 20 s later and reports that it is done.
		back := start.Add(20 * time.Second)
		dev := &fakeDevice{id: "boot", tags: siteX, work: 20 * time.Second,
			away: func(now time.Time) bool { return !now.Before(start) && now.Before(back) }}
		fleet := newFakeFleet(clock, dev)
		fleet.answer = func(d *fakeDevice, n int, now time.Time) (*iothub.MethodResponse, error) {
			if n == 0 {
				d.invokedAt, d.updatedAt = now, now
				d.reported["status"] = "working"
			}
			if d.away(now) {
				return nil, notOnline()
			}
			return &iothub.MethodResponse{Status: 200}, nil
		}
		res, st := runFake(t, fleet, stepJob)
		x := execsByKey(t, st, res.RunID)["boot/s"]
		if x.State != state.ExecSucceeded {
			t.Errorf("got %s (%s), want succeeded", x.State, x.Error)
		}
		if calls := fleet.callsTo("boot"); len(calls) != 1 {
			t.Errorf("got %d calls, want 1: the device had the first one", len(calls))
		}
	})
}

func TestExecute_HubUnreachableWhileTheDeviceActed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clock := NewShiftedClock(mustTime(t, "2026-06-01T10:00:00Z"))
		start := clock.Now()
		// The hub goes down as the call reaches the device (the caller gets
		// 503), and stays down while the device reboots on it. The device
		// is back at 12 s, before the runner can read a twin again at
		// 12.2 s, and reports that it is done at 14 s: seen connected and
		// silent at first, it must not be called again.
		back, up := start.Add(12*time.Second), start.Add(12200*time.Millisecond)
		dev := &fakeDevice{id: "boot", tags: siteX, work: 14 * time.Second,
			away: func(now time.Time) bool { return !now.Before(start) && now.Before(back) }}
		fleet := newFakeFleet(clock, dev)
		fleet.down = func(now time.Time) bool { return now.After(start) && now.Before(up) }
		fleet.answer = func(d *fakeDevice, n int, now time.Time) (*iothub.MethodResponse, error) {
			if n == 0 {
				d.invokedAt, d.updatedAt = now, now
				d.reported["status"] = "working"
				return nil, &iothub.Error{Status: 503, Code: iothub.CodeServiceUnavailable, Message: "The hub is shutting down."}
			}
			return &iothub.MethodResponse{Status: 200}, nil
		}
		res, st := runFake(t, fleet, stepJob)
		x := execsByKey(t, st, res.RunID)["boot/s"]
		if x.State != state.ExecSucceeded {
			t.Errorf("got %s (%s), want succeeded", x.State, x.Error)
		}
		if calls := fleet.callsTo("boot"); len(calls) != 1 {
			t.Errorf("got %d calls (the last at %s), want 1: the device had the first one", len(calls), calls[len(calls)-1].at.Sub(start))
		}
	})
}

func TestExecute_QuietConnectedDeviceIsCalledAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clock := NewShiftedClock(mustTime(t, "2026-06-01T10:00:00Z"))
		start := clock.Now()
		// Offline when first called, then connected and silent: the call
		// never reached it, and it gets the step once it is back.
		dev := &fakeDevice{id: "late", tags: siteX, work: time.Second,
			away: func(now time.Time) bool { return now.Before(start.Add(30 * time.Second)) }}
		fleet := newFakeFleet(clock, dev)
		fleet.answer = func(d *fakeDevice, n int, now time.Time) (*iothub.MethodResponse, error) {
			if d.away(now) {
				return nil, notOnline()
			}
			return &iothub.MethodResponse{Status: 200}, nil
		}
		res, st := runFake(t, fleet, stepJob)
		x := execsByKey(t, st, res.RunID)["late/s"]
		if x.State != state.ExecSucceeded {
			t.Errorf("got %s (%s), want succeeded", x.State, x.Error)
		}
		calls := fleet.callsTo("late")
		last := calls[len(calls)-1].at
		if last.Before(start.Add(30*time.Second + settleQuiet)) {
			t.Errorf("last call at %s, want after the device had been back and quiet for %s", last.Sub(start), settleQuiet)
		}
		for _, c := range calls[:len(calls)-1] {
			if !dev.away(c.at) {
				t.Errorf("a call at %s reached the device before the last one", c.at.Sub(start))
			}
		}
	})
}

func TestExecute_NoCallAfterTheStepTimedOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clock := NewShiftedClock(mustTime(t, "2026-06-01T10:00:00Z"))
		start := clock.Now()
		fleet := newFakeFleet(clock, &fakeDevice{id: "a", tags: siteX, work: time.Second})
		// The first call fails with a 5xx, then the hub cannot read twins
		// until well after the step's timeout of 5 minutes.
		fleet.answer = func(d *fakeDevice, n int, now time.Time) (*iothub.MethodResponse, error) {
			if n == 0 {
				return nil, &iothub.Error{Status: 503, Code: iothub.CodeServiceUnavailable, Message: "unavailable"}
			}
			return &iothub.MethodResponse{Status: 200}, nil
		}
		hub := fleet.hub()
		twin := hub.twin
		outage := start.Add(6 * time.Minute)
		hub.twin = func(ctx context.Context, id string) (*iothub.Twin, error) {
			if clock.Now().Before(outage) {
				return nil, &iothub.Error{Status: 503, Code: iothub.CodeServiceUnavailable, Message: "unavailable"}
			}
			return twin(ctx, id)
		}
		st := testStore(t)
		res, err := testRunner(t, hub, st, clock).Run(context.Background(), Request{Job: testJob(t, stepJob)})
		if err != nil {
			t.Fatal(err)
		}
		x := execsByKey(t, st, res.RunID)["a/s"]
		if x.State != state.ExecTimedOut {
			t.Errorf("got %s (%s), want timed_out", x.State, x.Error)
		}
		for _, c := range fleet.callsTo("a") {
			if c.at.After(start.Add(5 * time.Minute)) {
				t.Errorf("call at %s, after the step's timeout", c.at.Sub(start))
			}
		}
	})
}

// faultyHistory refuses every write while down, as a locked or full
// database does.
type faultyHistory struct {
	*state.Store
	down atomic.Bool
}

func (h *faultyHistory) fault() error {
	if h.down.Load() {
		return &state.WriteError{Err: errors.New("history database h.db: disk full")}
	}
	return nil
}

func (h *faultyHistory) Append(ctx context.Context, ev state.Event) error {
	if err := h.fault(); err != nil {
		return err
	}
	return h.Store.Append(ctx, ev)
}

func (h *faultyHistory) AppendSync(ctx context.Context, evs ...state.Event) error {
	if err := h.fault(); err != nil {
		return err
	}
	return h.Store.AppendSync(ctx, evs...)
}

func (h *faultyHistory) Flush(ctx context.Context) error {
	if err := h.fault(); err != nil {
		return err
	}
	return h.Store.Flush(ctx)
}

func (h *faultyHistory) UpdateRunState(ctx context.Context, runID string, s state.RunState, reason string) error {
	if err := h.fault(); err != nil {
		return err
	}
	return h.Store.UpdateRunState(ctx, runID, s, reason)
}

func TestRun_WaitsOutAHistoryFault(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clock := NewShiftedClock(mustTime(t, "2026-06-01T10:00:00Z"))
		var devs []*fakeDevice
		for _, id := range []string{"a", "b", "c", "d", "e", "f"} {
			devs = append(devs, &fakeDevice{id: id, tags: siteX, work: 10 * time.Second})
		}
		fleet := newFakeFleet(clock, devs...)
		hist := &faultyHistory{Store: testStore(t)}
		var downFrom, downUntil time.Time
		fleet.answer = func(d *fakeDevice, n int, now time.Time) (*iothub.MethodResponse, error) {
			if d.id == "c" {
				// The history breaks while c's call is out, for a minute.
				hist.down.Store(true)
				downFrom, downUntil = now, now.Add(time.Minute)
				time.AfterFunc(time.Minute, func() { hist.down.Store(false) })
			}
			return &iothub.MethodResponse{Status: 200}, nil
		}
		job := testJob(t, strings.Replace(stepJob, "concurrency = 10", "concurrency = 3", 1))
		res, err := testRunner(t, fleet.hub(), hist, clock).Run(context.Background(), Request{Job: job})
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		if res.State != state.RunSucceeded || res.Counts.Succeeded != len(devs) {
			t.Fatalf("got %s %+v (%s), want all %d succeeded", res.State, res.Counts, res.Reason, len(devs))
		}
		if downFrom.IsZero() {
			t.Fatal("the fault was never injected")
		}
		xs := execsByKey(t, hist.Store, res.RunID)
		for _, d := range devs {
			calls := fleet.callsTo(d.id)
			if len(calls) != 1 {
				t.Errorf("%s: got %d calls, want 1", d.id, len(calls))
			}
			for _, c := range calls {
				if c.at.After(downFrom) && c.at.Before(downUntil) {
					t.Errorf("%s: called at %s, while the history could not record it", d.id, c.at.Sub(downFrom))
				}
			}
			if x := xs[d.id+"/s"]; x.State != state.ExecSucceeded {
				t.Errorf("%s: recorded %s, want succeeded", d.id, x.State)
			}
		}
	})
}

// dropSkips loses the skipped records, as a process killed right after
// recording a step's failure would.
type dropSkips struct{ *state.Store }

func (h dropSkips) Append(ctx context.Context, ev state.Event) error {
	if ev.State == state.ExecSkipped {
		return nil
	}
	return h.Store.Append(ctx, ev)
}

func TestResume_RecordsSkipsAFailureLeftOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clock := NewShiftedClock(mustTime(t, "2026-06-01T10:00:00Z"))
		fleet := newFakeFleet(clock,
			&fakeDevice{id: "bad", tags: siteX, work: time.Second},
			&fakeDevice{id: "slow", tags: siteX, work: time.Second},
		)
		hub := fleet.hub()
		inner := hub.invoke
		ctx, crash := context.WithCancel(context.Background())
		hub.invoke = func(c context.Context, id string, call MethodCall) (*iothub.MethodResponse, error) {
			switch id {
			case "bad":
				return &iothub.MethodResponse{Status: 500}, nil
			case "slow":
				go func() {
					time.Sleep(10 * time.Second)
					crash()
				}()
				<-c.Done()
				return nil, c.Err()
			}
			return inner(c, id, call)
		}
		job := testJob(t, `
job "j" {
  target { query = "tags.site = 'x'" }
  step "update" {
    method  = "m"
    success = reported.status == "done"
  }
  step "reboot" {
    method  = "m"
    success = reported.status == "done"
  }
}`)
		st := testStore(t)
		res, err := testRunner(t, hub, dropSkips{st}, clock).Run(ctx, Request{Job: job})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Interrupted {
			t.Fatalf("got %+v, want an interrupted run", res)
		}
		if x, ok := execsByKey(t, st, res.RunID)["bad/reboot"]; ok {
			t.Fatalf("before resume: bad/reboot recorded %s, want it left out", x.State)
		}
		hub.invoke = inner
		res, err = testRunner(t, hub, st, clock).Resume(context.Background(), res.RunID, Request{Job: job})
		if err != nil {
			t.Fatal(err)
		}
		xs := execsByKey(t, st, res.RunID)
		if x := xs["bad/reboot"]; x.State != state.ExecSkipped || !strings.Contains(x.Error, `"update" failed`) {
			t.Errorf("bad/reboot: got %s %q, want skipped because update failed", x.State, x.Error)
		}
		if res.Counts.Failed != 1 || res.Counts.Succeeded != 1 {
			t.Errorf("got %+v, want one failed and one succeeded", res.Counts)
		}
	})
}
