package state_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hubflow/hubflow/state"
)

func TestNewRunID(t *testing.T) {
	slot := time.Date(2026, 11, 22, 2, 0, 0, 0, time.FixedZone("CET", 3600))
	tests := []struct {
		job, suffix, want string
	}{
		{"firmware-2-1-0", "", "firmware-2-1-0-20261122T010000Z"},
		{"Firmware 2.1.0", "", "firmware-2-1-0-20261122T010000Z"},
		{"reboot", "a3f9", "reboot-20261122T010000Z-a3f9"},
		{"--weird__name--", "", "weird-name-20261122T010000Z"},
		{"ü", "", "run-20261122T010000Z"},
	}
	for _, tt := range tests {
		t.Run(tt.job, func(t *testing.T) {
			if got := state.NewRunID(tt.job, slot, tt.suffix); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestStore_CreateRun(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	s, _ := openStore(t, state.Options{Now: c.Now})
	createRun(t, s, "r1", "update", "reboot")
	err := s.CreateRun(ctx, state.NewRun{ID: "r1", Job: "firmware", Trigger: state.TriggerSchedule})
	if !errors.Is(err, state.ErrRunExists) {
		t.Errorf("second CreateRun: got %v, want ErrRunExists", err)
	}
	r := loadRun(t, s, "r1")
	if r.State != state.RunPending || !r.CreatedAt.Equal(c.Now()) || len(r.Steps) != 2 || r.Trigger != state.TriggerManual {
		t.Errorf("run: got %+v", r)
	}
	for _, bad := range []state.NewRun{
		{ID: "", Job: "j", Trigger: state.TriggerManual},
		{ID: "x", Job: "j", Trigger: "cron"},
		{ID: "x", Job: "j", Trigger: state.TriggerManual, State: "done"},
		{ID: "x", Job: "j", Trigger: state.TriggerManual, Vars: []byte("{")},
	} {
		if err := s.CreateRun(ctx, bad); err == nil {
			t.Errorf("CreateRun(%+v): got no error", bad)
		}
	}
	if _, err := s.LoadRun(ctx, "nope"); !errors.Is(err, state.ErrRunNotFound) {
		t.Errorf("LoadRun of an unknown run: got %v, want ErrRunNotFound", err)
	}
}

func TestStore_UpdateRunState(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	s, _ := openStore(t, state.Options{Now: c.Now})
	createRun(t, s, "r")
	t0 := c.Now()
	steps := []struct {
		state  state.RunState
		reason string
	}{
		{state.RunWaitingWindow, ""},
		{state.RunRunning, ""},
		{state.RunPaused, "abort rule: 3 of 20 failed"},
		{state.RunRunning, ""},
		{state.RunAborted, "failure ratio 0.15 >= 0.10"},
	}
	for _, st := range steps {
		c.Advance(time.Minute)
		if st.state == state.RunRunning && loadRun(t, s, "r").State == state.RunPaused {
			if err := s.RequestResume(ctx, "r"); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.UpdateRunState(ctx, "r", st.state, st.reason); err != nil {
			t.Fatalf("UpdateRunState(%s): %v", st.state, err)
		}
	}
	r := loadRun(t, s, "r")
	if r.State != state.RunAborted || r.Reason != "failure ratio 0.15 >= 0.10" {
		t.Errorf("state: got %s (%q), want aborted with the reason", r.State, r.Reason)
	}
	if want := t0.Add(2 * time.Minute); !r.StartedAt.Equal(want) {
		t.Errorf("started: got %v, want %v (the first time it ran)", r.StartedAt, want)
	}
	if want := t0.Add(5 * time.Minute); !r.EndedAt.Equal(want) {
		t.Errorf("ended: got %v, want %v", r.EndedAt, want)
	}
	if r.ResumeRequested {
		t.Error("resume request not consumed by leaving paused")
	}
	if err := s.UpdateRunState(ctx, "r", state.RunRunning, ""); !errors.Is(err, state.ErrRunFinished) {
		t.Errorf("changing a finished run: got %v, want ErrRunFinished", err)
	}
	if err := s.UpdateRunState(ctx, "r", state.RunAborted, "again"); err != nil {
		t.Errorf("repeating the final state: got %v, want nil", err)
	}
	if err := s.UpdateRunState(ctx, "nope", state.RunRunning, ""); !errors.Is(err, state.ErrRunNotFound) {
		t.Errorf("unknown run: got %v, want ErrRunNotFound", err)
	}
}

func TestStore_ControlRequests(t *testing.T) {
	ctx := context.Background()
	s, path := openStore(t, state.Options{})
	createRun(t, s, "r")
	if err := s.UpdateRunState(ctx, "r", state.RunPaused, "abort rule"); err != nil {
		t.Fatal(err)
	}
	// The requests come from another process: `hubflow cancel` and
	// `hubflow resume` open their own store.
	other, err := state.Open(ctx, path, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := other.RequestResume(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	c, err := s.ReadControl(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	if want := (state.Control{State: state.RunPaused, ResumeRequested: true}); c != want {
		t.Errorf("control after resume request: got %+v, want %+v", c, want)
	}
	if err := other.RequestCancel(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	if c, _ = s.ReadControl(ctx, "r"); !c.CancelRequested {
		t.Errorf("control after cancel request: got %+v, want CancelRequested", c)
	}
	if err := s.UpdateRunState(ctx, "r", state.RunCancelled, "cancelled by operator"); err != nil {
		t.Fatal(err)
	}
	if err := other.RequestCancel(ctx, "r"); !errors.Is(err, state.ErrRunFinished) {
		t.Errorf("cancel of a finished run: got %v, want ErrRunFinished", err)
	}
	if err := other.RequestResume(ctx, "nope"); !errors.Is(err, state.ErrRunNotFound) {
		t.Errorf("resume of an unknown run: got %v, want ErrRunNotFound", err)
	}
	if _, err := s.ReadControl(ctx, "nope"); !errors.Is(err, state.ErrRunNotFound) {
		t.Errorf("ReadControl of an unknown run: got %v, want ErrRunNotFound", err)
	}
}

func TestStore_RecordTargets(t *testing.T) {
	ctx := context.Background()
	s, _ := openStore(t, state.Options{})
	createRun(t, s, "r")
	targets := []state.Target{{DeviceID: "a"}, {DeviceID: "b"}, {DeviceID: "c", SkipReason: "timezone \"Mars/Olympus\" is unknown"}}
	if err := s.RecordTargets(ctx, "r", targets); err != nil {
		t.Fatal(err)
	}
	appendSync(t, s, stateEv("r", "a", "update", 0, state.ExecInvoking, time.Now()))
	// A continuous job passes its whole target set again, plus newcomers.
	if err := s.RecordTargets(ctx, "r", append(targets, state.Target{DeviceID: "d"})); err != nil {
		t.Fatal(err)
	}
	if got, want := loadRun(t, s, "r").Counts, (state.Counts{Pending: 2, Running: 1, Skipped: 1}); got != want {
		t.Errorf("counts: got %+v, want %+v", got, want)
	}
	c := deviceOf(t, s, "r", "c")
	if c.State != state.ExecSkipped || c.SkipReason != targets[2].SkipReason {
		t.Errorf("skipped device: got %s (%q)", c.State, c.SkipReason)
	}
	tl, err := s.DeviceTimeline(ctx, "c", 0)
	if err != nil || len(tl) != 1 || len(tl[0].Events) != 1 {
		t.Fatalf("timeline of the skipped device: got %+v (%v), want one entry with one event", tl, err)
	}
	if x, ev := tl[0].Execution, tl[0].Events[0]; x.RunID != "r" || x.Step != "" || x.State != state.ExecSkipped || x.Error != targets[2].SkipReason ||
		ev.State != state.ExecSkipped || ev.Error != targets[2].SkipReason || ev.ObservedAt.IsZero() {
		t.Errorf("timeline of the skipped device: got %+v, event %+v; want skipped with the reason", x, ev)
	}
	if tl, err := s.DeviceTimeline(ctx, "b", 0); err != nil || len(tl) != 0 {
		t.Errorf("timeline of a device that has not started: got %+v (%v), want none", tl, err)
	}
	if err := s.RecordTargets(ctx, "nope", targets); !errors.Is(err, state.ErrRunNotFound) {
		t.Errorf("unknown run: got %v, want ErrRunNotFound", err)
	}
}

func TestStore_ListRuns(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	s, _ := openStore(t, state.Options{Now: c.Now})
	t0 := c.Now()
	for i, r := range []struct {
		id, job string
		st      state.RunState
		devices []string
	}{
		{"fw-1", "firmware", state.RunSucceeded, []string{"a", "b"}},
		{"rb-1", "reboot", state.RunFailed, []string{"b"}},
		{"fw-2", "firmware", state.RunRunning, []string{"c"}},
	} {
		if i > 0 {
			c.Advance(time.Hour)
		}
		if err := s.CreateRun(ctx, state.NewRun{ID: r.id, Job: r.job, Trigger: state.TriggerSchedule, State: r.st}); err != nil {
			t.Fatal(err)
		}
		var ts []state.Target
		for _, d := range r.devices {
			ts = append(ts, state.Target{DeviceID: d})
		}
		if err := s.RecordTargets(ctx, r.id, ts); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		f    state.RunFilter
		want []string
	}{
		{"all, newest first", state.RunFilter{}, []string{"fw-2", "rb-1", "fw-1"}},
		{"job", state.RunFilter{Job: "firmware"}, []string{"fw-2", "fw-1"}},
		{"state", state.RunFilter{State: state.RunFailed}, []string{"rb-1"}},
		{"since", state.RunFilter{Since: t0.Add(time.Hour)}, []string{"fw-2", "rb-1"}},
		{"until", state.RunFilter{Until: t0.Add(time.Hour)}, []string{"fw-1"}},
		{"device", state.RunFilter{Device: "b"}, []string{"rb-1", "fw-1"}},
		{"limit", state.RunFilter{Limit: 1}, []string{"fw-2"}},
		{"nothing", state.RunFilter{Job: "none"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runs, err := s.ListRuns(ctx, tt.f)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range runs {
				got = append(got, r.ID)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("got %v, want %v", got, tt.want)
				}
			}
		})
	}
	un, err := s.UnfinishedRuns(ctx)
	if err != nil || len(un) != 1 || un[0].ID != "fw-2" {
		t.Errorf("UnfinishedRuns: got %v (%v), want [fw-2]", un, err)
	}
}
