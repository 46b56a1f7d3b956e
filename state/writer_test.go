package state_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hubflow/hubflow/state"
)

func TestStore_AppendSync_DerivesExecutionsAndDevices(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC)
	at := func(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }
	status := 200
	type want struct {
		exec   state.ExecState
		dev    state.ExecState
		step   string // device's current step
		counts state.Counts
	}
	tests := []struct {
		name   string
		steps  []string
		events []state.Event
		want   want
	}{
		{
			name:  "invoked and in progress",
			steps: []string{"update"},
			events: []state.Event{
				{RunID: "r", DeviceID: "d", Step: "update", Kind: state.KindState, State: state.ExecInvoking, Attempt: 1, ObservedAt: at(0)},
				{RunID: "r", DeviceID: "d", Step: "update", Kind: state.KindState, State: state.ExecInProgress, MethodStatus: &status, ObservedAt: at(1)},
			},
			want: want{exec: state.ExecInProgress, dev: state.ExecInProgress, step: "update", counts: state.Counts{Running: 1}},
		},
		{
			name:  "last step succeeded",
			steps: []string{"update"},
			events: []state.Event{
				stateEv("r", "d", "update", 0, state.ExecInvoking, at(0)),
				stateEv("r", "d", "update", 0, state.ExecSucceeded, at(60)),
			},
			want: want{exec: state.ExecSucceeded, dev: state.ExecSucceeded, step: "update", counts: state.Counts{Succeeded: 1}},
		},
		{
			name:  "between steps the device waits for the next",
			steps: []string{"update", "reboot"},
			events: []state.Event{
				stateEv("r", "d", "update", 0, state.ExecInvoking, at(0)),
				stateEv("r", "d", "update", 0, state.ExecSucceeded, at(60)),
			},
			want: want{exec: state.ExecSucceeded, dev: state.ExecPending, step: "reboot", counts: state.Counts{Pending: 1}},
		},
		{
			name:  "steps skipped after a failure keep the device failed",
			steps: []string{"update", "reboot"},
			events: []state.Event{
				stateEv("r", "d", "update", 0, state.ExecInvoking, at(0)),
				stateEv("r", "d", "update", 0, state.ExecFailed, at(5)),
				stateEv("r", "d", "reboot", 1, state.ExecSkipped, at(5)),
			},
			want: want{exec: state.ExecFailed, dev: state.ExecFailed, step: "update", counts: state.Counts{Failed: 1}},
		},
		{
			name:  "late progress of an earlier step does not move the device back",
			steps: []string{"update", "reboot"},
			events: []state.Event{
				stateEv("r", "d", "update", 0, state.ExecSucceeded, at(60)),
				stateEv("r", "d", "reboot", 1, state.ExecInvoking, at(61)),
				progressEv("r", "d", "update", 0, `"done"`, at(62)),
			},
			want: want{exec: state.ExecSucceeded, dev: state.ExecInvoking, step: "reboot", counts: state.Counts{Running: 1}},
		},
		{
			name:  "a retry after a timeout reopens the execution",
			steps: []string{"update"},
			events: []state.Event{
				stateEv("r", "d", "update", 0, state.ExecTimedOut, at(60)),
				{RunID: "r", DeviceID: "d", Step: "update", Kind: state.KindState, State: state.ExecInvoking, Attempt: 2, ObservedAt: at(120)},
			},
			want: want{exec: state.ExecInvoking, dev: state.ExecInvoking, step: "update", counts: state.Counts{Running: 1}},
		},
	}
	for _, tt := range tests {
		for _, mode := range []string{"one transaction", "one transaction per event"} {
			t.Run(tt.name+"/"+mode, func(t *testing.T) {
				s, _ := openStore(t, state.Options{})
				createRun(t, s, "r", tt.steps...)
				if mode == "one transaction" {
					appendSync(t, s, tt.events...)
				} else {
					for _, ev := range tt.events {
						appendSync(t, s, ev)
					}
				}
				x := execOf(t, s, "r", "d", tt.events[0].Step)
				if x.State != tt.want.exec {
					t.Errorf("execution state: got %s, want %s", x.State, tt.want.exec)
				}
				d := deviceOf(t, s, "r", "d")
				if d.State != tt.want.dev || d.Step != tt.want.step {
					t.Errorf("device: got %s at %s, want %s at %s", d.State, d.Step, tt.want.dev, tt.want.step)
				}
				if got := loadRun(t, s, "r").Counts; got != tt.want.counts {
					t.Errorf("counts: got %+v, want %+v", got, tt.want.counts)
				}
			})
		}
	}
}

func TestStore_AppendSync_RecordsExecutionDetail(t *testing.T) {
	s, _ := openStore(t, state.Options{})
	createRun(t, s, "r")
	t0 := time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC)
	status := 200
	appendSync(t, s,
		state.Event{RunID: "r", DeviceID: "d", Step: "update", Kind: state.KindState, State: state.ExecInvoking, Attempt: 1, ObservedAt: t0},
		state.Event{RunID: "r", DeviceID: "d", Step: "update", Kind: state.KindState, State: state.ExecInvoking, Attempt: 2,
			Error: "device not online", ObservedAt: t0.Add(30 * time.Second)},
		state.Event{RunID: "r", DeviceID: "d", Step: "update", Kind: state.KindState, State: state.ExecInProgress,
			MethodStatus: &status, Response: json.RawMessage(`{"accepted":true}`), ObservedAt: t0.Add(31 * time.Second)},
		progressEv("r", "d", "update", 0, `"downloading"`, t0.Add(40*time.Second)),
		state.Event{RunID: "r", DeviceID: "d", Step: "update", Kind: state.KindNote, Error: "condition: null value", ObservedAt: t0.Add(41 * time.Second)},
		stateEv("r", "d", "update", 0, state.ExecSucceeded, t0.Add(90*time.Second)),
	)
	x := execOf(t, s, "r", "d", "update")
	checks := []struct {
		name      string
		got, want any
	}{
		{"attempt", x.Attempt, 2},
		{"method status", *x.MethodStatus, 200},
		{"response", string(x.Response), `{"accepted":true}`},
		{"progress", string(x.Progress), `"downloading"`},
		{"progress at", x.ProgressAt, t0.Add(40 * time.Second)},
		{"error cleared by success", x.Error, ""},
		{"started at first invocation", x.StartedAt, t0},
		{"invoked at last invocation", x.InvokedAt, t0.Add(30 * time.Second)},
		{"ended", x.EndedAt, t0.Add(90 * time.Second)},
		{"duration", x.Duration(), 90 * time.Second},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestStore_Append_RefusesBadEvents(t *testing.T) {
	s, _ := openStore(t, state.Options{})
	createRun(t, s, "r")
	ctx := context.Background()
	tests := []struct {
		name string
		ev   state.Event
		want string
	}{
		{"no run", state.Event{DeviceID: "d", Step: "s", Kind: state.KindState, State: state.ExecPending}, "without run id"},
		{"unknown run", state.Event{RunID: "nope", DeviceID: "d", Step: "s", Kind: state.KindState, State: state.ExecPending}, "run not found"},
		{"no device", state.Event{RunID: "r", Step: "s", Kind: state.KindState, State: state.ExecPending}, "without device id"},
		{"unknown kind", state.Event{RunID: "r", DeviceID: "d", Step: "s", Kind: "bogus"}, "unknown kind"},
		{"unknown state", state.Event{RunID: "r", DeviceID: "d", Step: "s", Kind: state.KindState, State: "done"}, "unknown state"},
		{"state on progress", state.Event{RunID: "r", DeviceID: "d", Step: "s", Kind: state.KindProgress, State: state.ExecFailed,
			Progress: json.RawMessage(`1`)}, "only state events"},
		{"progress without value", state.Event{RunID: "r", DeviceID: "d", Step: "s", Kind: state.KindProgress}, "without progress"},
		{"progress not JSON", state.Event{RunID: "r", DeviceID: "d", Step: "s", Kind: state.KindProgress,
			Progress: json.RawMessage(`{`)}, "not valid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for name, err := range map[string]error{
				"Append":     s.Append(ctx, tt.ev),
				"AppendSync": s.AppendSync(ctx, tt.ev),
			} {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("%s: got %v, want an error containing %q", name, err, tt.want)
				}
			}
		})
	}
	if err := s.Append(ctx, state.Event{RunID: "nope", DeviceID: "d", Step: "s", Kind: state.KindState, State: state.ExecPending}); !errors.Is(err, state.ErrRunNotFound) {
		t.Errorf("unknown run: got %v, want ErrRunNotFound", err)
	}
	if err := s.Err(); err != nil {
		t.Errorf("Err after refused events: got %v, want nil", err)
	}
}

func TestStore_Append_ConcurrentWriters(t *testing.T) {
	s, _ := openStore(t, state.Options{QueueSize: 16, MaxBatch: 50})
	createRun(t, s, "r")
	ctx := context.Background()
	const workers, devices = 8, 25
	t0 := time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range devices {
				dev := fmt.Sprintf("w%d-d%02d", w, d)
				if err := s.AppendSync(ctx, stateEv("r", dev, "update", 0, state.ExecInvoking, t0)); err != nil {
					errs <- err
					return
				}
				for _, ev := range []state.Event{
					progressEv("r", dev, "update", 0, `"downloading"`, t0.Add(time.Second)),
					stateEv("r", dev, "update", 0, state.ExecSucceeded, t0.Add(2*time.Second)),
				} {
					if err := s.Append(ctx, ev); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if got, want := loadRun(t, s, "r").Counts, (state.Counts{Succeeded: workers * devices}); got != want {
		t.Errorf("counts: got %+v, want %+v", got, want)
	}
}

func TestStore_Append_BackPressure(t *testing.T) {
	ctx := context.Background()
	s, path := openStore(t, state.Options{QueueSize: 1, MaxBatch: 1, BusyTimeout: 2 * time.Second})
	createRun(t, s, "r")
	unlock := holdWriteLock(t, path)
	defer unlock()
	t0 := time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC)
	var err error
	for i := range 10 {
		cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		err = s.Append(cctx, stateEv("r", fmt.Sprintf("d%d", i), "update", 0, state.ExecInvoking, t0))
		cancel()
		if err != nil {
			break
		}
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Append into a full queue: got %v, want context.DeadlineExceeded", err)
	}
	unlock()
	if err := s.Flush(ctx); err != nil {
		t.Fatalf("Flush after the lock was released: %v", err)
	}
}

// holdWriteLock takes the database's write lock from another connection, as
// another process would, until the returned func is called.
func holdWriteLock(tb testing.TB, path string) (unlock func()) {
	tb.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		tb.Fatal(err)
	}
	conn, err := db.Conn(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		tb.Fatalf("take write lock: %v", err)
	}
	var once sync.Once
	unlock = func() {
		once.Do(func() {
			conn.ExecContext(context.Background(), "ROLLBACK")
			conn.Close()
			db.Close()
		})
	}
	tb.Cleanup(unlock)
	return unlock
}

func TestStore_WriteFaults(t *testing.T) {
	tests := []struct {
		name  string
		fault func(tb testing.TB, s *state.Store, path string) (clear func())
		want  string
		// everything fails, not only writes that need a new page
		total bool
	}{
		{"disk full", func(tb testing.TB, s *state.Store, path string) func() {
			ctx := context.Background()
			pages, err := state.QueryOnWriter(ctx, s, "PRAGMA page_count")
			if err != nil {
				tb.Fatal(err)
			}
			if err := state.ExecOnWriter(ctx, s, fmt.Sprintf("PRAGMA max_page_count = %d", pages)); err != nil {
				tb.Fatal(err)
			}
			return func() {
				if err := state.ExecOnWriter(ctx, s, "PRAGMA max_page_count = 1073741823"); err != nil {
					tb.Fatal(err)
				}
			}
		}, "disk full", false},
		{"locked by another process", func(tb testing.TB, s *state.Store, path string) func() {
			return holdWriteLock(tb, path)
		}, "locked by another process", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			s, path := openStore(t, state.Options{BusyTimeout: 100 * time.Millisecond})
			createRun(t, s, "r")
			t0 := time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC)
			appendSync(t, s, stateEv("r", "committed", "update", 0, state.ExecInvoking, t0))

			clear := tt.fault(t, s, path)
			// An asynchronous event queued before the failure must not be
			// lost: it is kept and committed once the fault clears.
			if err := s.Append(ctx, progressEv("r", "committed", "update", 0, `"kept"`, t0.Add(time.Second))); err != nil {
				t.Fatalf("Append before the fault showed: %v", err)
			}
			big := strings.Repeat("x", 64<<10) // spills past the page limit
			err := s.AppendSync(ctx, state.Event{RunID: "r", DeviceID: "sync", Step: "update", Kind: state.KindNote,
				Detail: big, ObservedAt: t0.Add(2 * time.Second)})
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("AppendSync during the fault: got %v, want an error naming %s and %q", err, path, tt.want)
			}
			if s.Err() == nil {
				t.Error("Err during the fault: got nil, want the commit error")
			}
			if err := s.Append(ctx, progressEv("r", "committed", "update", 0, `"refused"`, t0.Add(3*time.Second))); err == nil {
				t.Error("Append during the fault: got nil, want an error")
			}
			if tt.total {
				if err := s.UpdateRunState(ctx, "r", state.RunPaused, "history cannot be written"); err == nil {
					t.Error("UpdateRunState during the fault: got nil, want an error")
				}
			}

			clear()
			if err := s.Flush(ctx); err != nil {
				t.Fatalf("Flush after the fault cleared: %v", err)
			}
			if err := s.Err(); err != nil {
				t.Errorf("Err after the fault cleared: got %v, want nil", err)
			}
			x := execOf(t, s, "r", "committed", "update")
			if x.State != state.ExecInvoking || string(x.Progress) != `"kept"` {
				t.Errorf("execution after recovery: got %s with progress %s, want invoking with \"kept\"", x.State, x.Progress)
			}
			// The failed AppendSync recorded nothing and may be repeated.
			if _, err := s.RunDevices(ctx, "r", state.DeviceFilter{}); err != nil {
				t.Fatal(err)
			}
			if n := len(devicesNamed(t, s, "r", "sync")); n != 0 {
				t.Errorf("devices of the failed AppendSync: got %d, want 0", n)
			}
			appendSync(t, s, state.Event{RunID: "r", DeviceID: "sync", Step: "update", Kind: state.KindNote, Detail: "retried"})
		})
	}
}

func devicesNamed(tb testing.TB, s *state.Store, run, device string) []state.Device {
	tb.Helper()
	ds, err := s.RunDevices(context.Background(), run, state.DeviceFilter{})
	if err != nil {
		tb.Fatal(err)
	}
	var out []state.Device
	for _, d := range ds {
		if d.DeviceID == device {
			out = append(out, d)
		}
	}
	return out
}

func TestStore_TwoWritersOnOneFile(t *testing.T) {
	// A second process writing the same run (say `hubflow resume` taking
	// over) must not be overwritten by the first one's cached rows.
	ctx := context.Background()
	a, path := openStore(t, state.Options{})
	createRun(t, a, "r")
	b, err := state.Open(ctx, path, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	t0 := time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC)
	appendSync(t, a, stateEv("r", "d", "update", 0, state.ExecInvoking, t0))
	appendSync(t, b, stateEv("r", "d", "update", 0, state.ExecInProgress, t0.Add(time.Second)))
	appendSync(t, a, progressEv("r", "d", "update", 0, `"downloading"`, t0.Add(2*time.Second)))
	x := execOf(t, a, "r", "d", "update")
	if x.State != state.ExecInProgress || string(x.Progress) != `"downloading"` {
		t.Errorf("execution: got %s with %s, want in_progress with \"downloading\"", x.State, x.Progress)
	}
	if got, want := loadRun(t, a, "r").Counts, (state.Counts{Running: 1}); got != want {
		t.Errorf("counts: got %+v, want %+v", got, want)
	}
}

func TestStore_Close_CommitsQueuedEvents(t *testing.T) {
	ctx := context.Background()
	s, path := openStore(t, state.Options{})
	createRun(t, s, "r")
	t0 := time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC)
	for i := range 100 {
		if err := s.Append(ctx, stateEv("r", fmt.Sprintf("d%03d", i), "update", 0, state.ExecInvoking, t0)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Append(ctx, stateEv("r", "late", "update", 0, state.ExecInvoking, t0)); !errors.Is(err, state.ErrClosed) {
		t.Errorf("Append after Close: got %v, want ErrClosed", err)
	}
	r, err := state.OpenReadOnly(ctx, path, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got := loadRun(t, r, "r").Counts.Running; got != 100 {
		t.Errorf("devices recorded: got %d, want 100", got)
	}
}
