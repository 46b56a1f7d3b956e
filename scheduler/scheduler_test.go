package scheduler_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hubflow/hubflow/runner"
	"github.com/hubflow/hubflow/scheduler"
	"github.com/hubflow/hubflow/state"
)

// The tests run in a testing/synctest bubble: the scheduler waits on real
// timers, which the bubble's fake time fires as soon as every goroutine is
// blocked, so hours of schedule pass in microseconds. shiftedClock moves
// the bubble's epoch (2000-01-01) to the date a test needs.
// jump moves the clock without timers noticing, as a wall-clock step does.
type shiftedClock struct{ offset atomic.Int64 }

func newClock(start time.Time) *shiftedClock {
	c := &shiftedClock{}
	c.offset.Store(int64(time.Until(start)))
	return c
}

func (c *shiftedClock) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

func (c *shiftedClock) NewTimer(d time.Duration) runner.Timer {
	return runner.SystemClock{}.NewTimer(d)
}

func (c *shiftedClock) jump(d time.Duration) { c.offset.Add(int64(d)) }

var _ runner.Clock = (*shiftedClock)(nil)

// fakeRunner is a Runner of func fields.
type fakeRunner struct {
	RunFunc    func(ctx context.Context, req runner.Request) (*runner.Result, error)
	ResumeFunc func(ctx context.Context, runID string, req runner.Request) (*runner.Result, error)
}

func (f *fakeRunner) Run(ctx context.Context, req runner.Request) (*runner.Result, error) {
	return f.RunFunc(ctx, req)
}

func (f *fakeRunner) Resume(ctx context.Context, runID string, req runner.Request) (*runner.Result, error) {
	return f.ResumeFunc(ctx, runID, req)
}

// fakeHistory is an in-memory History.
type fakeHistory struct {
	mu   sync.Mutex
	runs map[string]state.Run
}

func (h *fakeHistory) LoadRun(ctx context.Context, id string) (state.Run, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r, ok := h.runs[id]
	if !ok {
		return state.Run{}, fmt.Errorf("load run %s: %w", id, state.ErrRunNotFound)
	}
	return r, nil
}

func (h *fakeHistory) UnfinishedRuns(ctx context.Context) ([]state.Run, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []state.Run
	for _, id := range slices.Sorted(func(yield func(string) bool) {
		for id := range h.runs {
			if !yield(id) {
				return
			}
		}
	}) {
		if r := h.runs[id]; !r.State.Finished() {
			out = append(out, r)
		}
	}
	return out, nil
}

// create records a run as CreateRun would.
func (h *fakeHistory) create(r state.Run) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.runs[r.ID]; ok {
		return fmt.Errorf("create run: %w", state.ErrRunExists)
	}
	h.runs[r.ID] = r
	return nil
}

func (h *fakeHistory) setState(id string, s state.RunState) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.runs[id]
	r.State = s
	h.runs[id] = r
}

// logSink records log records for assertions.
type logSink struct {
	mu   sync.Mutex
	recs []logRec
}

type logRec struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

type sinkHandler struct {
	sink  *logSink
	attrs []slog.Attr
}

func (h sinkHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h sinkHandler) Handle(_ context.Context, r slog.Record) error {
	rec := logRec{level: r.Level, msg: r.Message, attrs: map[string]string{}}
	add := func(a slog.Attr) bool {
		v := a.Value.Resolve()
		if v.Kind() == slog.KindTime {
			rec.attrs[a.Key] = v.Time().UTC().Format(time.RFC3339)
		} else {
			rec.attrs[a.Key] = v.String()
		}
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	h.sink.mu.Lock()
	h.sink.recs = append(h.sink.recs, rec)
	h.sink.mu.Unlock()
	return nil
}

func (h sinkHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return sinkHandler{h.sink, append(slices.Clip(h.attrs), as...)}
}

func (h sinkHandler) WithGroup(string) slog.Handler { return h }

// find returns the records whose message contains msg and whose attributes
// include every key=value pair of kv.
func (s *logSink) find(msg string, kv ...string) []logRec {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []logRec
next:
	for _, r := range s.recs {
		if !strings.Contains(r.msg, msg) {
			continue
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if r.attrs[kv[i]] != kv[i+1] {
				continue next
			}
		}
		out = append(out, r)
	}
	return out
}

func (s *logSink) dump() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	for _, r := range s.recs {
		fmt.Fprintf(&b, "%s %q %v\n", r.level, r.msg, r.attrs)
	}
	return b.String()
}

// harness runs a Scheduler over a temporary directory with a fake runner
// and history. Runs end at once as succeeded unless hold is set, in which
// case they wait for it to be closed (or for their context to end).
type harness struct {
	t     *testing.T
	dir   string
	clock *shiftedClock
	hist  *fakeHistory
	logs  *logSink
	run   *fakeRunner
	vars  []string

	mu       sync.Mutex
	launched []runner.Request
	resumed  []string
	hold     chan struct{}
	sawDrain bool

	sched  *scheduler.Scheduler
	cancel context.CancelFunc
	errc   chan error
}

func newHarness(t *testing.T, start time.Time) *harness {
	t.Helper()
	h := &harness{
		t: t, dir: t.TempDir(), clock: newClock(start),
		hist: &fakeHistory{runs: map[string]state.Run{}}, logs: &logSink{},
	}
	h.run = &fakeRunner{RunFunc: h.defaultRun, ResumeFunc: h.defaultResume}
	return h
}

func (h *harness) defaultRun(ctx context.Context, req runner.Request) (*runner.Result, error) {
	h.mu.Lock()
	h.launched = append(h.launched, req)
	hold := h.hold
	h.mu.Unlock()
	if err := h.hist.create(state.Run{ID: req.RunID, Job: req.Job.Name, Trigger: req.Trigger, State: state.RunRunning}); err != nil {
		return nil, err
	}
	return h.wait(ctx, req, hold)
}

func (h *harness) defaultResume(ctx context.Context, runID string, req runner.Request) (*runner.Result, error) {
	h.mu.Lock()
	h.resumed = append(h.resumed, runID+" "+req.Job.Name)
	hold := h.hold
	h.mu.Unlock()
	req.RunID = runID
	return h.wait(ctx, req, hold)
}

// wait ends a fake run: at once, or when hold is closed. A drained run
// still waits for hold, as a real one waits for its devices in flight.
func (h *harness) wait(ctx context.Context, req runner.Request, hold chan struct{}) (*runner.Result, error) {
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return &runner.Result{RunID: req.RunID, State: state.RunRunning, Interrupted: true}, nil
		}
	}
	select {
	case <-req.Drain:
		h.mu.Lock()
		h.sawDrain = true
		h.mu.Unlock()
	default:
	}
	h.hist.setState(req.RunID, state.RunSucceeded)
	return &runner.Result{RunID: req.RunID, State: state.RunSucceeded, Counts: state.Counts{Succeeded: 1}}, nil
}

func (h *harness) write(name, content string) {
	h.t.Helper()
	if err := os.WriteFile(filepath.Join(h.dir, name), []byte(content), 0o600); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) remove(name string) {
	h.t.Helper()
	if err := os.Remove(filepath.Join(h.dir, name)); err != nil {
		h.t.Fatal(err)
	}
}

// start runs the scheduler until stop.
func (h *harness) start() {
	h.t.Helper()
	s, err := scheduler.New(scheduler.Config{
		Dir: h.dir, Vars: h.vars, Runner: h.run, History: h.hist, Clock: h.clock,
		Logger: slog.New(sinkHandler{sink: h.logs}),
	})
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.sched, h.cancel, h.errc = s, cancel, make(chan error, 1)
	go func() { h.errc <- s.Run(ctx) }()
	synctest.Wait()
}

// stop cancels the scheduler's context and waits for Run to return.
func (h *harness) stop() error {
	h.t.Helper()
	h.cancel()
	return <-h.errc
}

// advance lets d of schedule time pass and the scheduler react.
func (h *harness) advance(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

// slots returns the slots launched for job, in launch order.
func (h *harness) slots(job string) []time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []time.Time
	for _, r := range h.launched {
		if r.Job.Name == job {
			out = append(out, r.Slot.UTC())
		}
	}
	return out
}

func (h *harness) fatalf(format string, args ...any) {
	h.t.Helper()
	h.t.Fatalf(format+"\nlog:\n%s", append(args, h.logs.dump())...)
}

func (h *harness) wantSlots(job string, want ...time.Time) {
	h.t.Helper()
	got := h.slots(job)
	if !slices.EqualFunc(got, want, time.Time.Equal) {
		h.fatalf("job %s: got slots %v, want %v", job, got, want)
	}
}

// jobSrc is a job file with one job; schedule is the schedule block's
// inside, or "" for none.
func jobSrc(name, schedule string) string {
	s := ""
	if schedule != "" {
		s = "\n  schedule {\n    " + strings.ReplaceAll(schedule, "\n", "\n    ") + "\n  }\n"
	}
	return fmt.Sprintf(`job %q {
  target {
    devices = ["d1"]
  }
%s
  step "reboot" {
    method  = "rebootDevice"
    success = true
    timeout = "1m"
  }
}
`, name, s)
}

func cronSrc(name, spec string) string { return jobSrc(name, fmt.Sprintf("cron = %q", spec)) }

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestScheduler_CronSlotsFireOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, utc("2026-03-01T10:00:30Z"))
		h.write("a.hcl", cronSrc("a", "* * * * *"))
		h.write("b.hcl", cronSrc("b", "CRON_TZ=UTC */2 * * * *"))
		h.start()
		h.wantSlots("a")
		h.advance(3*time.Minute + 10*time.Second)
		h.wantSlots("a", utc("2026-03-01T10:01:00Z"), utc("2026-03-01T10:02:00Z"), utc("2026-03-01T10:03:00Z"))
		h.wantSlots("b", utc("2026-03-01T10:02:00Z"))
		if err := h.stop(); err != nil {
			t.Fatalf("Run: got %v, want nil", err)
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, r := range h.launched {
			if want := state.NewRunID(r.Job.Name, r.Slot, ""); r.RunID != want {
				t.Errorf("run id: got %q, want %q", r.RunID, want)
			}
			if r.Trigger != state.TriggerSchedule {
				t.Errorf("trigger: got %q, want %q", r.Trigger, state.TriggerSchedule)
			}
			if string(r.Vars) != "{}" {
				t.Errorf("vars: got %s, want {}", r.Vars)
			}
		}
		if got := h.logs.find("run launched", "job", "a", "run", "a-20260301T100100Z", "slot", "2026-03-01T10:01:00Z"); len(got) != 1 {
			t.Errorf("got %d 'run launched' records with job, run and slot, want 1\n%s", len(got), h.logs.dump())
		}
		if got := h.logs.find("run returned", "job", "b", "state", "succeeded"); len(got) != 1 {
			t.Errorf("got %d 'run ended' records for b, want 1\n%s", len(got), h.logs.dump())
		}
	})
}

// TestScheduler_DST crosses Europe/Berlin's daylight-saving changes of
// 2026: clocks go from 02:00 CET to 03:00 CEST on March 29 and from 03:00
// CEST back to 02:00 CET on October 25. Every intended instant fires once.
func TestScheduler_DST(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spec  string
		start string
		run   time.Duration
		want  []string
	}{
		{
			name: "spring forward: 02:30 does not exist, fires at 03:00 CEST",
			spec: "CRON_TZ=Europe/Berlin 30 2 * * *", start: "2026-03-28T12:00:00Z", run: 48 * time.Hour,
			want: []string{"2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"},
		},
		{
			name: "spring forward: hourly, 02:00 and 03:00 are one instant",
			spec: "CRON_TZ=Europe/Berlin 0 * * * *", start: "2026-03-28T23:30:00Z", run: 3 * time.Hour,
			want: []string{"2026-03-29T00:00:00Z", "2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z"},
		},
		{
			name: "fall back: 02:30 happens twice, fires at the first",
			spec: "CRON_TZ=Europe/Berlin 30 2 * * *", start: "2026-10-24T12:00:00Z", run: 48 * time.Hour,
			want: []string{"2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"},
		},
		{
			name: "fall back: hourly, the repeated 02:00 fires once",
			spec: "CRON_TZ=Europe/Berlin 0 * * * *", start: "2026-10-24T22:30:00Z", run: 5 * time.Hour,
			want: []string{"2026-10-24T23:00:00Z", "2026-10-25T00:00:00Z", "2026-10-25T02:00:00Z", "2026-10-25T03:00:00Z"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, utc(tc.start))
				h.write("dst.hcl", cronSrc("dst", tc.spec))
				h.start()
				h.advance(tc.run)
				if err := h.stop(); err != nil {
					t.Fatal(err)
				}
				want := make([]time.Time, len(tc.want))
				for i, s := range tc.want {
					want[i] = utc(s)
				}
				h.wantSlots("dst", want...)
			})
		})
	}
}

// TestScheduler_ClockJump steps the wall clock an hour ahead while the
// scheduler sleeps: it notices within a minute and launches the latest
// slot only, logging how many it passed.
func TestScheduler_ClockJump(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, utc("2026-03-01T10:00:30Z"))
		h.write("a.hcl", cronSrc("a", "*/10 * * * *"))
		h.start()
		h.clock.jump(time.Hour) // 11:00:30, slots 10:10 to 11:00 passed
		h.advance(time.Minute)
		if err := h.stop(); err != nil {
			t.Fatal(err)
		}
		h.wantSlots("a", utc("2026-03-01T11:00:00Z"))
		if got := h.logs.find("slots passed without a run", "job", "a", "missed", "5"); len(got) != 1 || got[0].level != slog.LevelWarn {
			h.fatalf("got %v, want one warning counting 5 missed slots", got)
		}
	})
}

func TestScheduler_ProhibitOverlap(t *testing.T) {
	for _, tc := range []struct {
		name     string
		prohibit bool
		want     []string // slots launched while the first run is held
		skipped  int
	}{
		{"prohibited by default", true, []string{"2026-03-01T10:01:00Z"}, 2},
		{"allowed", false, []string{"2026-03-01T10:01:00Z", "2026-03-01T10:02:00Z", "2026-03-01T10:03:00Z"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, utc("2026-03-01T10:00:30Z"))
				sched := `cron = "* * * * *"`
				if !tc.prohibit {
					sched += "\nprohibit_overlap = false"
				}
				h.write("a.hcl", jobSrc("a", sched))
				h.hold = make(chan struct{})
				h.start()
				h.advance(3 * time.Minute)
				want := make([]time.Time, len(tc.want))
				for i, s := range tc.want {
					want[i] = utc(s)
				}
				h.wantSlots("a", want...)
				skipped := h.logs.find("slot skipped: the previous run is unfinished", "job", "a", "previous", "a-20260301T100100Z")
				if len(skipped) != tc.skipped {
					h.fatalf("got %d skipped slots logged, want %d", len(skipped), tc.skipped)
				}
				if tc.skipped > 0 && skipped[0].attrs["slot"] != "2026-03-01T10:02:00Z" {
					t.Errorf("first skipped slot: got %s, want 2026-03-01T10:02:00Z", skipped[0].attrs["slot"])
				}
				// Once the run ended, the next slot runs again; skipped
				// slots are not queued.
				close(h.hold)
				synctest.Wait()
				h.mu.Lock()
				h.hold = nil
				h.mu.Unlock()
				h.advance(time.Minute)
				if got := h.slots("a"); len(got) != len(tc.want)+1 || !got[len(got)-1].Equal(utc("2026-03-01T10:04:00Z")) {
					h.fatalf("after the run ended: got slots %v, want %v and 10:04", got, tc.want)
				}
				if err := h.stop(); err != nil {
					t.Fatal(err)
				}
			})
		})
	}
}

func TestScheduler_At(t *testing.T) {
	for _, tc := range []struct {
		name   string
		at     string
		exists bool
		want   []string
		log    string
	}{
		{"future: fires once at its time", "2026-03-01T12:00:00Z", false, []string{"2026-03-01T12:00:00Z"}, ""},
		{"past without a run: fires once at start", "2026-03-01T09:00:00Z", false, []string{"2026-03-01T09:00:00Z"}, "its at time has passed"},
		{"past with its run: does not fire", "2026-03-01T09:00:00Z", true, nil, "slot skipped: its run already exists"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, utc("2026-03-01T10:00:00Z"))
				h.write("once.hcl", jobSrc("once", fmt.Sprintf("at = %q", tc.at)))
				if tc.exists {
					id := state.NewRunID("once", utc(tc.at), "")
					if err := h.hist.create(state.Run{ID: id, Job: "once", Trigger: state.TriggerSchedule, State: state.RunSucceeded}); err != nil {
						t.Fatal(err)
					}
				}
				h.start()
				h.advance(48 * time.Hour)
				h.write("other.hcl", cronSrc("other", "0 0 1 1 *"))
				h.sched.Reload() // an unchanged at job is not launched again
				synctest.Wait()
				if err := h.stop(); err != nil {
					t.Fatal(err)
				}
				var want []time.Time
				for _, s := range tc.want {
					want = append(want, utc(s))
				}
				h.wantSlots("once", want...)
				if tc.log != "" && len(h.logs.find(tc.log, "job", "once")) != 1 {
					h.fatalf("got no log %q", tc.log)
				}
			})
		})
	}
}

// TestScheduler_RestartSkipsExistingSlot starts a scheduler whose history
// already holds the run of a coming slot (a previous process with a clock
// ahead launched it): the slot is not launched again, the next one is.
// Run failing with ErrRunExists (another process created it meanwhile) is
// a skip too.
func TestScheduler_RestartSkipsExistingSlot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, utc("2026-03-01T10:00:30Z"))
		h.write("a.hcl", cronSrc("a", "* * * * *"))
		if err := h.hist.create(state.Run{ID: "a-20260301T100100Z", Job: "a", Trigger: state.TriggerSchedule, State: state.RunSucceeded}); err != nil {
			t.Fatal(err)
		}
		var raced bool
		h.run.RunFunc = func(ctx context.Context, req runner.Request) (*runner.Result, error) {
			if req.Slot.Equal(utc("2026-03-01T10:03:00Z")) && !raced {
				raced = true
				_ = h.hist.create(state.Run{ID: req.RunID, Job: "a", Trigger: state.TriggerSchedule, State: state.RunSucceeded})
			}
			return h.defaultRun(ctx, req)
		}
		h.start()
		h.advance(3 * time.Minute)
		if err := h.stop(); err != nil {
			t.Fatal(err)
		}
		h.wantSlots("a", utc("2026-03-01T10:02:00Z"), utc("2026-03-01T10:03:00Z"))
		if got := h.logs.find("slot skipped: its run already exists", "job", "a", "run", "a-20260301T100100Z"); len(got) != 1 {
			h.fatalf("got %d logs of the existing slot, want 1", len(got))
		}
		if got := h.logs.find("slot skipped: its run already exists", "job", "a", "run", "a-20260301T100300Z"); len(got) != 1 {
			h.fatalf("got %d logs of the slot created meanwhile, want 1", len(got))
		}
	})
}

func TestScheduler_ResumesUnfinishedRuns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, utc("2026-03-01T10:00:30Z"))
		h.write("a.hcl", cronSrc("a", "* * * * *"))
		h.write("b.hcl", cronSrc("b", "0 0 * * *"))
		for _, r := range []state.Run{
			{ID: "a-20260301T095900Z", Job: "a", Trigger: state.TriggerSchedule, State: state.RunRunning},
			{ID: "b-20260301T000000Z", Job: "b", Trigger: state.TriggerSchedule, State: state.RunPaused},
			{ID: "gone-20260301T000000Z", Job: "gone", Trigger: state.TriggerSchedule, State: state.RunRunning},
			{ID: "a-20260301T095000Z", Job: "a", Trigger: state.TriggerManual, State: state.RunRunning},
			{ID: "a-20260301T090000Z", Job: "a", Trigger: state.TriggerSchedule, State: state.RunSucceeded},
		} {
			if err := h.hist.create(r); err != nil {
				t.Fatal(err)
			}
		}
		release := make(chan struct{})
		h.run.ResumeFunc = func(ctx context.Context, runID string, req runner.Request) (*runner.Result, error) {
			if req.Job.Name == "b" {
				h.mu.Lock()
				h.resumed = append(h.resumed, runID+" b")
				h.mu.Unlock()
				return nil, fmt.Errorf("resume run %s: %w", runID, runner.ErrJobChanged)
			}
			<-release
			return h.defaultResume(ctx, runID, req)
		}
		h.start()
		// The resumed run of a is in flight: its slot at 10:01 is skipped.
		h.advance(time.Minute)
		h.wantSlots("a")
		close(release)
		h.advance(time.Minute)
		h.wantSlots("a", utc("2026-03-01T10:02:00Z"))
		if err := h.stop(); err != nil {
			t.Fatal(err)
		}
		slices.Sort(h.resumed)
		if want := []string{"a-20260301T095900Z a", "b-20260301T000000Z b"}; !slices.Equal(h.resumed, want) {
			h.fatalf("resumed: got %v, want %v", h.resumed, want)
		}
		for _, c := range []struct{ msg, run string }{
			{"slot skipped: the previous run is unfinished", "a-20260301T100100Z"},
			{"its job changed since the run started", "b-20260301T000000Z"},
			{"no job file in the directory defines its job", "gone-20260301T000000Z"},
			{"left to hubflow run -resume", "a-20260301T095000Z"},
			{"run returned", "a-20260301T095900Z"},
		} {
			if len(h.logs.find(c.msg, "run", c.run)) != 1 {
				h.fatalf("no log %q for run %s", c.msg, c.run)
			}
		}
	})
}

func TestScheduler_Reload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, utc("2026-03-01T10:00:30Z"))
		h.write("a.hcl", cronSrc("a", "* * * * *"))
		h.write("b.hcl", cronSrc("b", "* * * * *"))
		h.start()
		h.advance(time.Minute) // 10:01:30
		h.wantSlots("a", utc("2026-03-01T10:01:00Z"))
		h.wantSlots("b", utc("2026-03-01T10:01:00Z"))

		// b's next run is in flight when its file goes away: it finishes,
		// and b gets no more runs.
		h.mu.Lock()
		h.hold = make(chan struct{})
		h.mu.Unlock()
		h.advance(time.Minute) // 10:02:30: a and b at 10:02 held
		// a.hcl's cron spec loses a field.
		h.write("a.hcl", cronSrc("a", "* * * *"))
		h.remove("b.hcl")
		h.write("c.hcl", cronSrc("c", "* * * * *"))
		h.write("fleet.hcl", "group \"press\" {\n  count = 2\n}\n")
		h.sched.Reload()
		synctest.Wait()
		close(h.hold)
		synctest.Wait()
		h.mu.Lock()
		h.hold = nil
		h.mu.Unlock()
		h.advance(time.Minute) // 10:03:30

		h.wantSlots("a", utc("2026-03-01T10:01:00Z"), utc("2026-03-01T10:02:00Z"), utc("2026-03-01T10:03:00Z"))
		h.wantSlots("b", utc("2026-03-01T10:01:00Z"), utc("2026-03-01T10:02:00Z"))
		h.wantSlots("c", utc("2026-03-01T10:03:00Z"))
		if len(h.logs.find("run returned", "run", "b-20260301T100200Z")) != 1 {
			h.fatalf("b's run in flight did not end")
		}
		aFile := filepath.Join(h.dir, "a.hcl")
		diags := h.logs.find("", "file", aFile)
		var pos []string
		for _, d := range diags {
			if p := d.attrs["pos"]; p != "" && d.level == slog.LevelError {
				pos = append(pos, p)
			}
		}
		if len(pos) == 0 || !strings.HasPrefix(pos[0], aFile+":7:") {
			h.fatalf("diagnostics of a.hcl: got positions %v, want %s:7:COL (the cron line) first", pos, aFile)
		}
		if len(h.logs.find("keeping its previous version", "file", aFile)) != 1 {
			h.fatalf("no log that a.hcl keeps its previous version")
		}
		if len(h.logs.find("job removed", "job", "b", "in_flight", "1")) != 1 {
			h.fatalf("no log that b was removed with a run in flight")
		}
		if len(h.logs.find("not a job file", "file", filepath.Join(h.dir, "fleet.hcl"))) != 1 {
			h.fatalf("fleet.hcl not skipped as a non-job file")
		}

		// A fixed a.hcl with a new schedule replaces the kept version.
		h.write("a.hcl", cronSrc("a", "*/5 * * * *"))
		h.sched.Reload()
		synctest.Wait()
		h.advance(2 * time.Minute) // 10:05:30
		if err := h.stop(); err != nil {
			t.Fatal(err)
		}
		h.wantSlots("a", utc("2026-03-01T10:01:00Z"), utc("2026-03-01T10:02:00Z"), utc("2026-03-01T10:03:00Z"), utc("2026-03-01T10:05:00Z"))
		if len(h.logs.find("job updated", "job", "a")) != 1 {
			h.fatalf("no log that a was updated")
		}
	})
}

func TestScheduler_FilesWithoutSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, utc("2026-03-01T10:00:30Z"))
		h.write("manual.hcl", jobSrc("manual", ""))
		h.write("fleet.hcl", "group \"press\" {\n  count = 2\n}\n")
		h.write("vars.hcl", "image = \"x\"\n")
		h.write("notes.txt", "not hcl")
		h.write("dup.hcl", cronSrc("manual", "* * * * *"))
		h.vars = []string{"undeclared=1"}
		h.start()
		h.advance(time.Hour)
		if err := h.stop(); err != nil {
			t.Fatal(err)
		}
		// dup.hcl sorts first, so its job is the one kept; manual.hcl's
		// is the duplicate.
		h.wantSlots("manual", slotsEveryMinute(utc("2026-03-01T10:01:00Z"), 60)...)
		for _, c := range []struct{ msg, key, val string }{
			{"not a job file", "file", filepath.Join(h.dir, "fleet.hcl")},
			{"not a job file", "file", filepath.Join(h.dir, "vars.hcl")},
			{"duplicate job name", "file", filepath.Join(h.dir, "manual.hcl")},
			{"no job file declares", "variable", "undeclared"},
		} {
			if len(h.logs.find(c.msg, c.key, c.val)) != 1 {
				h.fatalf("no log %q with %s=%s", c.msg, c.key, c.val)
			}
		}
		if got := h.logs.find("not a job file"); got[0].level != slog.LevelDebug {
			t.Errorf("skipped file logged at %s, want DEBUG", got[0].level)
		}

		// Without the duplicate, the job has no schedule and never runs.
		h2 := newHarness(t, utc("2026-03-01T10:00:30Z"))
		h2.write("manual.hcl", jobSrc("manual", ""))
		h2.start()
		h2.advance(time.Hour)
		if err := h2.stop(); err != nil {
			t.Fatal(err)
		}
		h2.wantSlots("manual")
		if got := h2.logs.find("no schedule", "job", "manual"); len(got) != 1 || got[0].level != slog.LevelInfo {
			h2.fatalf("got %v, want one Info record saying the job has no schedule", got)
		}
	})
}

func slotsEveryMinute(first time.Time, n int) []time.Time {
	out := make([]time.Time, n)
	for i := range out {
		out[i] = first.Add(time.Duration(i) * time.Minute)
	}
	return out
}

func TestScheduler_ShutdownDrains(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, utc("2026-03-01T10:00:30Z"))
		h.write("a.hcl", cronSrc("a", "* * * * *"))
		h.hold = make(chan struct{})
		h.start()
		h.advance(time.Minute)
		h.cancel()
		synctest.Wait()
		select {
		case err := <-h.errc:
			h.fatalf("Run returned %v with a run in flight, want it to wait", err)
		default:
		}
		h.advance(10 * time.Minute) // no new runs while draining
		close(h.hold)
		if err := <-h.errc; err != nil {
			t.Fatalf("Run: got %v, want nil", err)
		}
		h.wantSlots("a", utc("2026-03-01T10:01:00Z"))
		if !h.sawDrain {
			t.Error("the run in flight was not drained")
		}
		if len(h.logs.find("run returned", "run", "a-20260301T100100Z")) != 1 {
			h.fatalf("no log of the drained run's end")
		}
	})
}

func TestScheduler_InterruptLeavesRunsUnfinished(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, utc("2026-03-01T10:00:30Z"))
		h.write("a.hcl", cronSrc("a", "* * * * *"))
		h.hold = make(chan struct{})
		h.start()
		h.advance(time.Minute)
		h.cancel()
		synctest.Wait()
		h.sched.Interrupt()
		if err := <-h.errc; err != nil {
			t.Fatalf("Run: got %v, want nil", err)
		}
		if len(h.logs.find("run interrupted", "run", "a-20260301T100100Z")) != 1 {
			h.fatalf("no log of the interrupted run")
		}
		if r, _ := h.hist.LoadRun(context.Background(), "a-20260301T100100Z"); r.State != state.RunRunning {
			t.Errorf("run state: got %s, want it left running", r.State)
		}
	})
}

func TestScheduler_RunErrors(t *testing.T) {
	t.Run("missing directory", func(t *testing.T) {
		h := newHarness(t, utc("2026-03-01T10:00:30Z"))
		s, err := scheduler.New(scheduler.Config{Dir: filepath.Join(h.dir, "nope"), Runner: h.run, History: h.hist})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "read job directory") {
			t.Errorf("got %v, want a read job directory error", err)
		}
		if err := s.Run(context.Background()); err == nil {
			t.Error("second Run: got nil, want an error")
		}
	})
	t.Run("failed start is logged, the next slot runs", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := newHarness(t, utc("2026-03-01T10:00:30Z"))
			h.write("a.hcl", cronSrc("a", "* * * * *"))
			h.run.RunFunc = func(ctx context.Context, req runner.Request) (*runner.Result, error) {
				if req.Slot.Minute() == 1 {
					return nil, errors.New("query devices: hub unreachable")
				}
				return h.defaultRun(ctx, req)
			}
			h.start()
			h.advance(2 * time.Minute)
			if err := h.stop(); err != nil {
				t.Fatal(err)
			}
			h.wantSlots("a", utc("2026-03-01T10:02:00Z"))
			if got := h.logs.find("run could not be started", "run", "a-20260301T100100Z", "error", "query devices: hub unreachable"); len(got) != 1 || got[0].level != slog.LevelError {
				h.fatalf("got %v, want one Error record", got)
			}
		})
	})
}

func TestNew_RequiresFields(t *testing.T) {
	r, hist := &fakeRunner{}, &fakeHistory{}
	for _, tc := range []struct {
		name string
		cfg  scheduler.Config
		want string
	}{
		{"dir", scheduler.Config{Runner: r, History: hist}, "directory"},
		{"runner", scheduler.Config{Dir: ".", History: hist}, "Runner"},
		{"history", scheduler.Config{Dir: ".", Runner: r}, "History"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := scheduler.New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error naming %s", err, tc.want)
			}
		})
	}
}
