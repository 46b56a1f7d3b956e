package state_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hubflow/hubflow/state"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// openStore opens a fresh store in a temporary directory and closes it at
// the end of the test.
func openStore(tb testing.TB, opts state.Options) (*state.Store, string) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "hubflow.db")
	s, err := state.Open(context.Background(), path, opts)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s, path
}

func createRun(tb testing.TB, s *state.Store, id string, steps ...string) {
	tb.Helper()
	if len(steps) == 0 {
		steps = []string{"update"}
	}
	err := s.CreateRun(context.Background(), state.NewRun{ID: id, Job: "firmware", Trigger: state.TriggerManual, Steps: steps,
		Vars: json.RawMessage(`{"image_uri":"https://example.com/fw.bin"}`)})
	if err != nil {
		tb.Fatalf("CreateRun(%s): %v", id, err)
	}
}

func appendSync(tb testing.TB, s *state.Store, evs ...state.Event) {
	tb.Helper()
	if err := s.AppendSync(context.Background(), evs...); err != nil {
		tb.Fatalf("AppendSync: %v", err)
	}
}

func stateEv(run, device, step string, idx int, st state.ExecState, at time.Time) state.Event {
	return state.Event{RunID: run, DeviceID: device, Step: step, StepIndex: idx, Kind: state.KindState, State: st, ObservedAt: at}
}

func progressEv(run, device, step string, idx int, p string, at time.Time) state.Event {
	return state.Event{RunID: run, DeviceID: device, Step: step, StepIndex: idx, Kind: state.KindProgress,
		Progress: json.RawMessage(p), ObservedAt: at}
}

func execOf(tb testing.TB, s *state.Store, run, device, step string) state.Execution {
	tb.Helper()
	xs, err := s.Executions(context.Background(), run)
	if err != nil {
		tb.Fatalf("Executions: %v", err)
	}
	for _, x := range xs {
		if x.DeviceID == device && x.Step == step {
			return x
		}
	}
	tb.Fatalf("no execution of %s/%s in run %s", device, step, run)
	return state.Execution{}
}

func deviceOf(tb testing.TB, s *state.Store, run, device string) state.Device {
	tb.Helper()
	ds, err := s.RunDevices(context.Background(), run, state.DeviceFilter{})
	if err != nil {
		tb.Fatalf("RunDevices: %v", err)
	}
	for _, d := range ds {
		if d.DeviceID == device {
			return d
		}
	}
	tb.Fatalf("no device %s in run %s", device, run)
	return state.Device{}
}

func loadRun(tb testing.TB, s *state.Store, id string) state.Run {
	tb.Helper()
	r, err := s.LoadRun(context.Background(), id)
	if err != nil {
		tb.Fatalf("LoadRun: %v", err)
	}
	return r
}
