package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hubflow/hubflow/jobs"
	"github.com/hubflow/hubflow/runner"
	"github.com/hubflow/hubflow/state"
)

// maxWait bounds how long the scheduler sleeps before it reads the clock
// again, so that a wall-clock step (NTP, a resumed laptop) delays a slot by
// at most this much.
const maxWait = time.Minute

// maxMissed bounds the slots counted when the clock jumped far ahead.
const maxMissed = 100_000

// Runner starts and resumes runs of jobs; *runner.Runner implements it.
type Runner interface {
	Run(ctx context.Context, req runner.Request) (*runner.Result, error)
	Resume(ctx context.Context, runID string, req runner.Request) (*runner.Result, error)
}

// History is what the scheduler reads of the run history; *state.Store
// implements it.
type History interface {
	LoadRun(ctx context.Context, id string) (state.Run, error)
	UnfinishedRuns(ctx context.Context) ([]state.Run, error)
}

var (
	_ Runner  = (*runner.Runner)(nil)
	_ History = (*state.Store)(nil)
)

// Config configures a Scheduler. Dir, Runner and History are required.
type Config struct {
	// Dir is the directory whose *.hcl files are the job files. Files
	// without a job block (fleet files, var files) are skipped.
	Dir string
	// Vars, VarFiles and Env are the -var options, -var-file paths and
	// the environment (for HUBFLOW_VAR_name) every job file is loaded
	// with; see jobs.LoadConfig. A -var that no file declares is ignored
	// with a warning, since one set of options serves every file.
	Vars     []string
	VarFiles []string
	Env      []string
	// Runner carries out the runs; one runner serves them all, so that
	// they share its hub and quota budget.
	Runner Runner
	// History is where the scheduler looks for runs that already exist
	// and for unfinished runs to resume.
	History History
	// Clock is the time schedules follow. Nil means runner.SystemClock.
	Clock runner.Clock
	// Logger receives what an operator cares about at Info (runs
	// launched, skipped and ended, jobs added and removed), problems with
	// job files at Error, and skipped files at Debug. Nil discards.
	Logger *slog.Logger
}

// Scheduler creates runs of the jobs in a directory on their schedules.
// Its methods are safe for concurrent use; Run is called once.
type Scheduler struct {
	cfg       Config
	clock     runner.Clock
	log       *slog.Logger
	reload    chan struct{}
	interrupt chan struct{}
	intOnce   sync.Once
	started   atomic.Bool
}

// New returns a Scheduler for cfg.
func New(cfg Config) (*Scheduler, error) {
	switch {
	case cfg.Dir == "":
		return nil, errors.New("new scheduler: a job directory is required")
	case cfg.Runner == nil:
		return nil, errors.New("new scheduler: a Runner is required")
	case cfg.History == nil:
		return nil, errors.New("new scheduler: a History is required")
	}
	s := &Scheduler{
		cfg:       cfg,
		clock:     cfg.Clock,
		log:       cfg.Logger,
		reload:    make(chan struct{}, 1),
		interrupt: make(chan struct{}),
	}
	if s.clock == nil {
		s.clock = runner.SystemClock{}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With(slog.String(keyComponent, "scheduler"))
	return s, nil
}

// Reload asks the running scheduler to read its directory again: jobs of
// new files are scheduled, jobs of removed files are no longer scheduled
// (their runs in flight finish), and a file that no longer loads keeps its
// previous version. Requests made while one is pending are merged. It does
// not wait for the reload.
func (s *Scheduler) Reload() {
	select {
	case s.reload <- struct{}{}:
	default:
	}
}

// Interrupt stops the runs in flight where they are, without waiting for
// their devices: they stay unfinished in the history, to be resumed by the
// next start. Run returns once they have returned. Use it for a second
// stop request after the one that cancelled Run's context.
func (s *Scheduler) Interrupt() {
	s.intOnce.Do(func() { close(s.interrupt) })
}

// Run loads the job directory, resumes the unfinished scheduled runs of its
// jobs and creates runs on the jobs' schedules until ctx ends. Then it
// starts no new run, drains the runs in flight (no new device starts; those
// in flight finish) and returns once every run it started has returned. It
// returns an error only when it cannot start: the directory or the history
// cannot be read. Problems with single files or runs are logged.
func (s *Scheduler) Run(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("scheduler: Run called twice")
	}
	// Runs outlive ctx: its end drains them, and only Interrupt stops them.
	runCtx, stopRuns := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRuns()
	d := &daemon{
		s:        s,
		log:      s.log,
		files:    map[string]*jobFile{},
		jobs:     map[string]*entry{},
		inflight: map[string][]string{},
		done:     make(chan runEnd),
		drain:    make(chan struct{}),
		runCtx:   runCtx,
		stopRuns: stopRuns,
	}
	files, err := d.scan()
	if err != nil {
		return err
	}
	d.apply(files, s.clock.Now())
	unfinished, err := s.cfg.History.UnfinishedRuns(ctx)
	if err != nil {
		return fmt.Errorf("list unfinished runs: %w", err)
	}
	d.resume(unfinished)
	scheduled := 0
	for _, e := range d.jobs {
		if e.job.Schedule != nil {
			scheduled++
		}
	}
	s.log.Info("scheduler started", slog.String("dir", s.cfg.Dir), slog.Int("jobs", len(d.jobs)),
		slog.Int("scheduled", scheduled), slog.Int("resumed", d.nflight))
	return d.loop(ctx)
}

// daemon is the state of one Run; only Run's goroutine touches it.
type daemon struct {
	s   *Scheduler
	log *slog.Logger

	files map[string]*jobFile // by path: the last version that loaded
	jobs  map[string]*entry   // by job name

	// inflight lists the runs in flight per job name, oldest first. It
	// outlives the job's entry, so that a job removed and added again
	// while its run goes on still does not overlap with it.
	inflight map[string][]string
	nflight  int
	done     chan runEnd

	drain    chan struct{}
	runCtx   context.Context
	stopRuns context.CancelFunc
}

// entry is one job the daemon knows, with its next slot.
type entry struct {
	job  *jobs.Job
	file *jobFile
	// next is the job's next slot; zero when the job has no schedule or
	// none is left.
	next time.Time
}

// runEnd is what a run's goroutine reports when Run or Resume returned.
type runEnd struct {
	job, run string
	resumed  bool
	res      *runner.Result
	err      error
}

func (d *daemon) loop(ctx context.Context) error {
	for {
		now := d.s.clock.Now()
		d.launchDue(ctx, now)
		t := d.s.clock.NewTimer(d.wait(now))
		select {
		case <-ctx.Done():
			t.Stop()
			return d.shutdown(false)
		case <-d.s.interrupt:
			t.Stop()
			return d.shutdown(true)
		case <-d.s.reload:
			t.Stop()
			d.reload()
		case end := <-d.done:
			t.Stop()
			d.ended(end)
		case <-t.C():
		}
	}
}

// wait is how long to sleep from now until the earliest next slot.
func (d *daemon) wait(now time.Time) time.Duration {
	w := maxWait
	for _, e := range d.jobs {
		if !e.next.IsZero() {
			w = min(w, e.next.Sub(now))
		}
	}
	return max(w, 0)
}

// launchDue launches the jobs whose next slot is not after now. When the
// clock passed several slots of a job at once (the machine slept, the clock
// was set forward), only the latest is launched: a run is about the fleet
// now, and a burst of catch-up runs would only be skipped as overlapping.
func (d *daemon) launchDue(ctx context.Context, now time.Time) {
	if ctx.Err() != nil {
		return
	}
	for _, name := range sortedKeys(d.jobs) {
		e := d.jobs[name]
		if e.next.IsZero() || e.next.After(now) {
			continue
		}
		slot, missed := e.next, 0
		for {
			n := e.job.Schedule.Next(slot)
			if n.IsZero() || n.After(now) || missed >= maxMissed {
				e.next = n
				break
			}
			slot, missed = n, missed+1
		}
		if missed > 0 {
			d.log.Warn("slots passed without a run; launching the latest only",
				slog.String(keyJob, name), slog.Time(keySlot, slot), slog.Int("missed", missed))
		}
		d.launch(ctx, e, slot)
	}
}

// launch starts the run of e's job for slot, unless the previous run is
// still going and the job prohibits overlap, or the slot's run exists.
func (d *daemon) launch(ctx context.Context, e *entry, slot time.Time) {
	name := e.job.Name
	runID := state.NewRunID(name, slot, "")
	log := d.log.With(slog.String(keyJob, name), slog.String(keyRun, runID), slog.Time(keySlot, slot))
	if prev := d.inflight[name]; e.job.Schedule.ProhibitOverlap && len(prev) > 0 {
		log.Info("slot skipped: the previous run is unfinished (prohibit_overlap)", slog.String("previous", prev[0]))
		return
	}
	// Checked before Run so that an existing slot costs no target query;
	// CreateRun refuses a duplicate anyway.
	switch _, err := d.s.cfg.History.LoadRun(ctx, runID); {
	case err == nil:
		log.Info("slot skipped: its run already exists")
		return
	case !errors.Is(err, state.ErrRunNotFound):
		log.Warn("could not look the slot's run up; launching it", slog.String(keyError, err.Error()))
	}
	req := runner.Request{
		Job: e.job, RunID: runID, Trigger: state.TriggerSchedule, Slot: slot,
		Vars: e.file.vars, Drain: d.drain,
	}
	d.start(name, runID, false, func(ctx context.Context) (*runner.Result, error) {
		return d.s.cfg.Runner.Run(ctx, req)
	})
	log.Info("run launched")
}

// resume starts the unfinished runs that a schedule created, with their
// job from the current files. Runs started by hubflow run are left to
// hubflow run -resume: their process may still be running them.
func (d *daemon) resume(runs []state.Run) {
	for _, r := range runs {
		log := d.log.With(slog.String(keyJob, r.Job), slog.String(keyRun, r.ID))
		if r.Trigger != state.TriggerSchedule {
			log.Info("unfinished run not started by a schedule; left to hubflow run -resume", slog.String("trigger", string(r.Trigger)))
			continue
		}
		e := d.jobs[r.Job]
		if e == nil {
			log.Error("unfinished run not resumed: no job file in the directory defines its job; it is left as it is")
			continue
		}
		req := runner.Request{Job: e.job, Drain: d.drain}
		id := r.ID
		d.start(r.Job, id, true, func(ctx context.Context) (*runner.Result, error) {
			return d.s.cfg.Runner.Resume(ctx, id, req)
		})
		log.Info("resuming run", slog.String(keyState, string(r.State)))
	}
}

// start runs fn in its own goroutine, as a run of job in flight.
func (d *daemon) start(job, runID string, resumed bool, fn func(context.Context) (*runner.Result, error)) {
	d.inflight[job] = append(d.inflight[job], runID)
	d.nflight++
	ctx := d.runCtx
	done := d.done
	go func() {
		res, err := fn(ctx)
		done <- runEnd{job: job, run: runID, resumed: resumed, res: res, err: err}
	}()
}

// ended records that a run returned and says how it ended.
func (d *daemon) ended(end runEnd) {
	if ids := slices.DeleteFunc(d.inflight[end.job], func(id string) bool { return id == end.run }); len(ids) > 0 {
		d.inflight[end.job] = ids
	} else {
		delete(d.inflight, end.job)
	}
	d.nflight--
	log := d.log.With(slog.String(keyJob, end.job), slog.String(keyRun, end.run))
	switch {
	case end.err != nil && errors.Is(end.err, state.ErrRunExists):
		log.Info("slot skipped: its run already exists")
	case end.err != nil && errors.Is(end.err, runner.ErrJobChanged):
		log.Error("unfinished run not resumed: its job changed since the run started; it is left as it is (restore the job as it was, or cancel the run with hubflow cancel)",
			slog.String(keyError, end.err.Error()))
	case end.err != nil && errors.Is(end.err, context.Canceled) && d.runCtx.Err() != nil:
		log.Info("run interrupted before it started its devices; if it was recorded, it resumes at the next start",
			slog.String(keyError, end.err.Error()))
	case end.err != nil && end.resumed:
		log.Error("run could not be resumed", slog.String(keyError, end.err.Error()))
	case end.err != nil:
		log.Error("run could not be started", slog.String(keyError, end.err.Error()))
	case end.res == nil:
		log.Error("run returned no result")
	case end.res.Interrupted:
		log.Info("run interrupted; it resumes at the next start", slog.String(keyState, string(end.res.State)))
	default:
		c := end.res.Counts
		attrs := []any{slog.String(keyState, string(end.res.State)),
			slog.Int("succeeded", c.Succeeded), slog.Int("failed", c.Failed),
			slog.Int("timed_out", c.TimedOut), slog.Int("skipped", c.Skipped)}
		if end.res.Reason != "" {
			attrs = append(attrs, slog.String(keyReason, end.res.Reason))
		}
		// The runner logs the end at Info already.
		log.Debug("run returned", attrs...)
	}
}

// shutdown drains the runs in flight and waits for them; with interrupted,
// or on Interrupt meanwhile, it stops them where they are.
func (d *daemon) shutdown(interrupted bool) error {
	close(d.drain)
	if d.nflight > 0 {
		d.log.Info("stopping: no new runs; waiting for the runs in flight to drain", slog.Int("runs", d.nflight))
	} else {
		d.log.Info("stopping")
	}
	interrupt := d.s.interrupt
	for {
		if interrupted {
			if d.nflight > 0 {
				d.log.Info("interrupting the runs in flight; they stay unfinished and resume at the next start", slog.Int("runs", d.nflight))
			}
			d.stopRuns()
			interrupt, interrupted = nil, false
		}
		if d.nflight == 0 {
			break
		}
		select {
		case end := <-d.done:
			d.ended(end)
		case <-interrupt:
			interrupted = true
		}
	}
	d.log.Info("scheduler stopped")
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
