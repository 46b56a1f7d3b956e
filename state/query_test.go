package state_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hubflow/hubflow/state"
)

// seedRun records a run of n devices through "update" and "reboot": device
// i's update takes i+1 minutes; every fifth device fails its update and has
// its reboot skipped.
func seedRun(tb testing.TB, s *state.Store, id string, n int, t0 time.Time) {
	tb.Helper()
	createRun(tb, s, id, "update", "reboot")
	var targets []state.Target
	for i := range n {
		targets = append(targets, state.Target{DeviceID: fmt.Sprintf("dev-%02d", i)})
	}
	if err := s.RecordTargets(context.Background(), id, targets); err != nil {
		tb.Fatal(err)
	}
	for i := range n {
		d := fmt.Sprintf("dev-%02d", i)
		start := t0.Add(time.Duration(i) * time.Second)
		evs := []state.Event{
			{RunID: id, DeviceID: d, Step: "update", Kind: state.KindState, State: state.ExecInvoking, Attempt: 1, ObservedAt: start},
			progressEv(id, d, "update", 0, `"downloading"`, start.Add(10*time.Second)),
		}
		end := start.Add(time.Duration(i+1) * time.Minute)
		if i%5 == 4 {
			evs = append(evs,
				state.Event{RunID: id, DeviceID: d, Step: "update", Kind: state.KindState, State: state.ExecFailed,
					Error: "firmwareStatus is \"error\"", ObservedAt: end},
				stateEv(id, d, "reboot", 1, state.ExecSkipped, end))
		} else {
			evs = append(evs,
				stateEv(id, d, "update", 0, state.ExecSucceeded, end),
				stateEv(id, d, "reboot", 1, state.ExecInvoking, end),
				stateEv(id, d, "reboot", 1, state.ExecSucceeded, end.Add(30*time.Second)))
		}
		appendSync(tb, s, evs...)
	}
}

func TestStore_RunSummary(t *testing.T) {
	s, _ := openStore(t, state.Options{})
	t0 := time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC)
	seedRun(t, s, "r", 20, t0)
	sum, err := s.RunSummary(context.Background(), "r")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := sum.Run.Counts, (state.Counts{Succeeded: 16, Failed: 4}); got != want {
		t.Errorf("counts: got %+v, want %+v", got, want)
	}
	if len(sum.Steps) != 2 {
		t.Fatalf("steps: got %d, want 2", len(sum.Steps))
	}
	up := sum.Steps[0]
	if up.Name != "update" || up.States[state.ExecSucceeded] != 16 || up.States[state.ExecFailed] != 4 {
		t.Errorf("update step: got %+v", up)
	}
	// Succeeded update durations are 1..20 minutes minus every fifth:
	// 1,2,3,4,6,7,8,9,11,…,19: 16 values; nearest rank p50 is the 8th (9 min),
	// p95 the 16th (19 min).
	if up.P50 != 9*time.Minute || up.P95 != 19*time.Minute {
		t.Errorf("update p50/p95: got %v/%v, want 9m0s/19m0s", up.P50, up.P95)
	}
	rb := sum.Steps[1]
	if rb.States[state.ExecSkipped] != 4 || rb.P50 != 30*time.Second || rb.P95 != 30*time.Second {
		t.Errorf("reboot step: got %+v", rb)
	}
	if _, err := s.RunSummary(context.Background(), "nope"); !errors.Is(err, state.ErrRunNotFound) {
		t.Errorf("unknown run: got %v, want ErrRunNotFound", err)
	}
}

func TestStore_RunDevices(t *testing.T) {
	ctx := context.Background()
	s, _ := openStore(t, state.Options{})
	t0 := time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC)
	seedRun(t, s, "r", 10, t0)
	failed, err := s.RunDevices(ctx, "r", state.DeviceFilter{State: state.ExecFailed})
	if err != nil {
		t.Fatal(err)
	}
	if len(failed) != 2 || failed[0].DeviceID != "dev-04" || failed[1].DeviceID != "dev-09" {
		t.Fatalf("failed devices: got %+v, want dev-04 and dev-09", failed)
	}
	d := failed[0]
	if d.Step != "update" || d.Attempt != 1 || string(d.Progress) != `"downloading"` || d.Error != `firmwareStatus is "error"` {
		t.Errorf("failed device: got %+v", d)
	}
	if want := 5*time.Minute - 0; d.Duration() != want {
		t.Errorf("duration: got %v, want %v", d.Duration(), want)
	}
	all, err := s.RunDevices(ctx, "r", state.DeviceFilter{Limit: 3})
	if err != nil || len(all) != 3 || all[0].DeviceID != "dev-00" {
		t.Errorf("limited list: got %d devices (%v)", len(all), err)
	}
	ok := deviceOf(t, s, "r", "dev-00")
	if ok.State != state.ExecSucceeded || ok.Step != "reboot" || ok.Duration() != 90*time.Second {
		t.Errorf("succeeded device: got %s at %s after %v, want succeeded at reboot after 1m30s", ok.State, ok.Step, ok.Duration())
	}
}

func TestStore_DeviceTimeline(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	s, _ := openStore(t, state.Options{Now: c.Now})
	t0 := c.Now()
	seedRun(t, s, "first", 5, t0)
	c.Advance(24 * time.Hour)
	seedRun(t, s, "second", 5, t0.Add(24*time.Hour))
	tl, err := s.DeviceTimeline(ctx, "dev-04", 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range tl {
		got = append(got, fmt.Sprintf("%s/%s:%s:%d", e.Execution.RunID, e.Execution.Step, e.Execution.State, len(e.Events)))
	}
	want := []string{"first/update:failed:3", "first/reboot:skipped:1", "second/update:failed:3", "second/reboot:skipped:1"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("timeline: got %v, want %v", got, want)
	}
	if ev := tl[0].Events[1]; ev.Kind != state.KindProgress || string(ev.Progress) != `"downloading"` {
		t.Errorf("second event: got %+v, want the progress change", ev)
	}
	last, err := s.DeviceTimeline(ctx, "dev-04", 1)
	if err != nil || len(last) != 2 || last[0].Execution.RunID != "second" {
		t.Errorf("limited timeline: got %d entries (%v), want the second run's 2", len(last), err)
	}
	none, err := s.DeviceTimeline(ctx, "ghost", 0)
	if err != nil || len(none) != 0 {
		t.Errorf("unknown device: got %d entries (%v), want none", len(none), err)
	}
}

func TestStore_Prune(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	s, _ := openStore(t, state.Options{Now: c.Now})
	t0 := c.Now()
	seedRun(t, s, "old", 10, t0)
	if err := s.UpdateRunState(ctx, "old", state.RunSucceeded, ""); err != nil {
		t.Fatal(err)
	}
	createRun(t, s, "old-unfinished")
	c.Advance(100 * 24 * time.Hour)
	seedRun(t, s, "new", 10, c.Now())
	if err := s.UpdateRunState(ctx, "new", state.RunSucceeded, ""); err != nil {
		t.Fatal(err)
	}
	cutoff := c.Now().Add(-90 * 24 * time.Hour)

	dry, err := s.Prune(ctx, cutoff, true)
	if err != nil {
		t.Fatal(err)
	}
	// 10 devices × 2 steps; events: 10 × (2 + 3 or 2)
	want := state.PruneResult{Runs: 1, Devices: 10, Executions: 20, Events: 48}
	if dry != want {
		t.Errorf("dry run: got %+v, want %+v", dry, want)
	}
	if _, err := s.LoadRun(ctx, "old"); err != nil {
		t.Errorf("dry run removed the run: %v", err)
	}
	got, err := s.Prune(ctx, cutoff, false)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("prune: got %+v, want %+v", got, want)
	}
	if _, err := s.LoadRun(ctx, "old"); !errors.Is(err, state.ErrRunNotFound) {
		t.Errorf("pruned run: got %v, want ErrRunNotFound", err)
	}
	for _, id := range []string{"old-unfinished", "new"} {
		if _, err := s.LoadRun(ctx, id); err != nil {
			t.Errorf("run %s should stay: %v", id, err)
		}
	}
	if tl, _ := s.DeviceTimeline(ctx, "dev-00", 0); len(tl) != 2 {
		t.Errorf("timeline after prune: got %d entries, want the new run's 2", len(tl))
	}
	// Events for a pruned run are refused, not silently dropped.
	if err := s.Append(ctx, stateEv("old", "dev-00", "update", 0, state.ExecInvoking, c.Now())); !errors.Is(err, state.ErrRunNotFound) {
		t.Errorf("Append to a pruned run: got %v, want ErrRunNotFound", err)
	}
}
