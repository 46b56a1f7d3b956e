package runner

import (
	"container/heap"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/hubflow/hubflow/iothub"
	"github.com/hubflow/hubflow/jobs"
	"github.com/hubflow/hubflow/state"
)

// execMode says how a device's next execution of its current step begins.
type execMode int

const (
	modeStart     execMode = iota // invoke (or patch)
	modeReconcile                 // resumed mid-invocation: read the twin first
	modeFollow                    // resumed in progress: follow the twin
)

// device is one target device as the engine tracks it. Its fields belong to
// the engine's loop goroutine; an execution works on a copy (task).
type device struct {
	id  string
	seq int
	// twin is the device's twin as the run found it, until the run has
	// picked its canaries; it is dropped then, so that a large run does
	// not keep every twin.
	twin   *iothub.Twin
	gate   *gate
	canary bool

	step      int
	attempt   int // invocations recorded for the current step
	tries     int // transient failures of the current step
	offline   int // "not online" answers for the current step
	started   time.Time
	invokedAt time.Time
	backSince time.Time
	awaySeen  bool
	progress  string
	evalErr   string
	mode      execMode

	done        bool
	outcome     state.ExecState
	pendingSkip string

	notBefore time.Time
	forWindow bool
	hidx      int
}

// rateSpan is the period over which a snapshot's rate is measured.
const rateSpan = 10 * time.Second

// stopKind is why a run stopped starting devices.
type stopKind int

const (
	stopNone   stopKind = iota
	stopDrain           // Request.Drain: finish in-flight, leave the run resumable
	stopHard            // ctx ended: leave everything as recorded
	stopCancel          // hubflow cancel
	stopAbort           // the abort rule with action "abort"
	stopCanary          // a canary device failed
	stopFatal           // the history could not be written
)

// engine carries out one run.
type engine struct {
	r       *Runner
	req     Request
	job     *jobs.Job
	runID   string
	log     *slog.Logger
	gates   *gates
	resumed bool
	desired []map[string]any

	devices []*device

	// Scheduling, owned by the loop goroutine.
	cont        []*device // ready: next step, retry due, window opened
	canaryQ     []*device
	freshQ      []*device
	timed       deviceHeap
	canaryPhase bool
	canaries    []*device
	active      int

	runState  state.RunState
	reason    string
	windowTxt string
	stop      stopKind
	paused    bool
	fatal     error

	nSucceeded, nFailed, nTimedOut, nSkipped, nDone int
	// nLeft counts executions left mid-step by a hard stop; they count
	// as running, as the history records them.
	nLeft                     int
	baseFinished, baseCounted int

	starting    atomic.Bool
	startMu     sync.Mutex
	startCtx    context.Context
	startCancel context.CancelFunc
	results     chan outcome
	limiter     *rate.Limiter
	obs         *observer

	followAt  time.Time
	resolving bool
	resolved  chan followResult

	began    time.Time
	doneLog  []time.Time // finish times, for the rate
	lastSnap time.Time

	hist        histGate
	histPending []state.Event // the loop's events refused while the history was down
	histProbe   time.Time     // when the loop next tries the history again
	histWait    time.Duration
}

// histGate holds the run back while its history cannot be written: no
// device starts, executions wait before writing again, and the loop tries
// the database every few seconds until a write goes through. Nothing is
// sent that could not be recorded first, and the run carries on by itself
// once the fault clears.
type histGate struct {
	mu   sync.Mutex
	err  error
	back chan struct{}
}

// fault records err as the reason the history is down and returns a
// channel closed once it is up again; first is true when it just went down.
func (h *histGate) fault(err error) (back <-chan struct{}, first bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	first = h.err == nil
	h.err = err
	if h.back == nil {
		h.back = make(chan struct{})
	}
	return h.back, first
}

func (h *histGate) down() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}

func (h *histGate) clear() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.err = nil
	if h.back != nil {
		close(h.back)
		h.back = nil
	}
}

type followResult struct {
	targets []TargetDevice
	err     error
}

func newEngine(r *Runner, req Request, runID string, log *slog.Logger) *engine {
	job := req.Job
	e := &engine{
		r: r, req: req, job: job, runID: runID, log: log,
		gates:    newGates(job, req.IgnoreWindows),
		runState: state.RunPending,
		results:  make(chan outcome, 256),
		resolved: make(chan followResult, 1),
		obs:      newObserver(r.hub, r.budget, log),
	}
	e.desired = make([]map[string]any, len(job.Steps))
	for i, s := range job.Steps {
		if !s.IsMethod() {
			var m map[string]any
			_ = json.Unmarshal(s.Desired, &m)
			e.desired[i] = m
		}
	}
	if job.Rollout.Rate > 0 {
		burst := max(1, int(job.Rollout.Rate/10))
		e.limiter = rate.NewLimiter(rate.Limit(job.Rollout.Rate), burst)
	}
	return e
}

func (e *engine) add(d *device) {
	d.seq = len(e.devices)
	d.hidx = -1
	e.devices = append(e.devices, d)
	if d.done {
		e.count(d.outcome)
	}
}

func (e *engine) count(st state.ExecState) {
	e.nDone++
	switch st {
	case state.ExecSucceeded:
		e.nSucceeded++
	case state.ExecFailed:
		e.nFailed++
	case state.ExecTimedOut:
		e.nTimedOut++
	case state.ExecSkipped:
		e.nSkipped++
	}
}

// concurrency is the rollout's bound on executions in flight.
func (e *engine) concurrency() int { return max(1, e.job.Rollout.Concurrency) }

// prepare queues the devices and picks the canaries.
func (e *engine) prepare(ctx context.Context) error {
	e.pickCanaries()
	e.canaryPhase = len(e.canaries) > 0 && !e.canariesSucceeded()
	for _, d := range e.devices {
		d.twin = nil
	}
	for _, d := range e.devices {
		if d.pendingSkip != "" && !d.done {
			if err := e.skipRest(ctx, d, d.pendingSkip); err != nil {
				return err
			}
			continue
		}
		if d.done {
			if d.canary && d.outcome != state.ExecSucceeded {
				e.stopWith(stopCanary, canaryReason(d, e.job, ""))
			}
			continue
		}
		switch {
		case d.mode != modeStart || d.attempt > 0 || d.step > 0:
			e.cont = append(e.cont, d)
		case d.canary:
			e.canaryQ = append(e.canaryQ, d)
		default:
			e.freshQ = append(e.freshQ, d)
		}
	}
	return nil
}

// pickCanaries chooses the canary devices: the first by id among those
// connected when the run started, then among the rest, since a canary that
// is offline proves nothing and holds the whole run up. A resumed run keeps
// the devices that had started as canaries (in the canary phase only
// canaries start), unless more devices than canaries had started, which
// means the phase was over.
func (e *engine) pickCanaries() {
	want := e.job.Rollout.Canary
	if want <= 0 {
		return
	}
	mark := func(d *device) {
		d.canary = true
		e.canaries = append(e.canaries, d)
	}
	if e.resumed {
		var started []*device
		for _, d := range e.devices {
			if d.step > 0 || d.attempt > 0 || d.mode != modeStart || (d.done && d.outcome != state.ExecSkipped) {
				started = append(started, d)
			}
		}
		if len(started) > want {
			return
		}
		for _, d := range started {
			mark(d)
		}
	}
	for _, connected := range []bool{true, false} {
		for _, d := range e.devices {
			if len(e.canaries) >= want {
				return
			}
			if d.canary || d.done || isConnected(d.twin) != connected {
				continue
			}
			mark(d)
		}
	}
}

func isConnected(t *iothub.Twin) bool {
	return t != nil && strings.EqualFold(t.ConnectionState, "Connected")
}

func (e *engine) canariesSucceeded() bool {
	for _, d := range e.canaries {
		if !d.done || d.outcome != state.ExecSucceeded {
			return false
		}
	}
	return true
}

func canaryReason(d *device, job *jobs.Job, detail string) string {
	step := ""
	if d.step < len(job.Steps) {
		step = job.Steps[d.step].Name
	}
	s := fmt.Sprintf("canary device %s %s step %q", d.id, strings.ReplaceAll(string(d.outcome), "_", " "), step)
	if detail != "" {
		s += ": " + detail
	}
	return s
}

// run is the engine's loop. It owns every device and the run's state; the
// executions it starts report back on e.results.
func (e *engine) run(ctx context.Context) (*Result, error) {
	e.began = e.r.clock.Now()
	if err := e.prepare(ctx); err != nil {
		return nil, err
	}
	if e.resumed {
		ctl, err := e.r.rec.ReadControl(ctx, e.runID)
		if err != nil {
			return nil, err
		}
		e.runState = ctl.State
		if ctl.State == state.RunPaused {
			e.paused = true
			if run, err := e.r.rec.LoadRun(ctx, e.runID); err == nil {
				e.reason = run.Reason
			}
		}
		if ctl.CancelRequested {
			e.stopWith(stopCancel, "cancelled")
		}
	}
	obsCtx, stopObs := context.WithCancel(context.WithoutCancel(ctx))
	var obsDone sync.WaitGroup
	obsDone.Add(1)
	go func() {
		defer obsDone.Done()
		e.obs.run(obsCtx)
	}()
	defer func() {
		stopObs()
		obsDone.Wait()
	}()
	if e.job.Target.Follow && e.job.Target.Query != "" {
		e.followAt = e.nextFollow(e.began)
	}
	e.setStarting(ctx, !e.paused && e.stop == stopNone)

	control := time.NewTicker(e.r.control)
	defer control.Stop()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	drain := e.req.Drain
	hardDone := ctx.Done()

	for {
		now := e.r.clock.Now()
		e.release(now)
		e.probeHistory(ctx, now)
		histDown := e.hist.down() != nil
		if e.stop == stopNone && !e.paused && !histDown {
			e.dispatch(ctx, now)
		}
		e.follow(ctx, now)
		if res, end := e.checkEnd(ctx); end {
			if e.req.Progress != nil {
				snap := e.snapshot()
				snap.Final = true
				e.req.Progress(snap)
			}
			return res, e.fatal
		}
		if !histDown {
			if err := e.trackRunState(ctx, now); err != nil {
				e.writeFailed(err)
				continue
			}
		}
		e.report(false)

		// Snapshots between events only matter while devices are in
		// flight (rate, ETA); an idle run waiting for a window sleeps.
		var tickC <-chan time.Time
		if e.active > 0 && e.req.Progress != nil {
			tickC = tick.C
		}
		var timerC <-chan time.Time
		var timer Timer
		if wake, ok := e.nextWake(); ok || histDown {
			if histDown && (!ok || e.histProbe.Before(wake)) {
				wake = e.histProbe
			}
			timer = e.r.clock.NewTimer(max(0, wake.Sub(now)))
			timerC = timer.C()
		}
		select {
		case o := <-e.results:
			e.handle(ctx, o)
			// Take what else has arrived before going round again.
			for n := 0; n < 256; n++ {
				select {
				case o := <-e.results:
					e.handle(ctx, o)
					continue
				default:
				}
				break
			}
		case fr := <-e.resolved:
			e.resolving = false
			e.addFollowed(ctx, fr)
		case <-timerC:
		case <-control.C:
			e.pollControl(ctx)
		case <-tickC:
		case <-drain:
			drain = nil
			e.stopWith(stopDrain, "interrupted")
		case <-hardDone:
			hardDone = nil
			e.stopWith(stopHard, "interrupted")
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

func (e *engine) fatalf(err error) {
	if e.fatal == nil {
		e.fatal = err
		e.log.Error("history not writable; stopping the run", slog.String(keyError, err.Error()))
	}
	e.stopWith(stopFatal, "history not writable")
}

// historyDown notes a write the history refused for a fault of its own;
// the run holds back until the loop finds the database writable again.
func (e *engine) historyDown(err error) <-chan struct{} {
	back, first := e.hist.fault(err)
	if first {
		e.log.Warn("history database cannot be written; no device starts and no call is sent until it can",
			slog.String(keyError, err.Error()))
	}
	return back
}

// probeHistory tries the history again while it is down: a flush commits
// what the store kept back, then the loop's own refused events follow.
func (e *engine) probeHistory(ctx context.Context, now time.Time) {
	if e.hist.down() == nil || now.Before(e.histProbe) {
		return
	}
	e.histWait = min(max(2*e.histWait, time.Second), 5*time.Second)
	e.histProbe = now.Add(e.histWait)
	wctx := context.WithoutCancel(ctx)
	if err := e.r.rec.Flush(wctx); err != nil {
		e.hist.fault(err)
		return
	}
	for len(e.histPending) > 0 {
		if err := e.r.rec.Append(wctx, e.histPending[0]); err != nil {
			if state.IsWriteError(err) {
				e.hist.fault(err)
				return
			}
			e.fatalf(err)
			return
		}
		e.histPending = e.histPending[1:]
	}
	e.histPending, e.histWait = nil, 0
	e.hist.clear()
	e.log.Info("history database writable again; the run carries on")
	e.report(true)
}

// writeFailed sorts a failed write of the loop's: a fault of the database
// holds the run back, anything else stops it.
func (e *engine) writeFailed(err error) {
	if state.IsWriteError(err) {
		e.historyDown(err)
		return
	}
	e.fatalf(err)
}

// stopWith stops the run from starting devices. The first reason wins,
// except that a hard stop overrides a softer one.
func (e *engine) stopWith(k stopKind, reason string) {
	if e.stop == stopNone || (k == stopHard && e.stop != stopFatal) {
		e.stop = k
		if e.stop != stopHard || e.reason == "" {
			e.reason = reason
		}
	}
	e.stopStarting()
}

// setStarting opens or closes the gate that lets executions invoke. Closing
// it cancels executions still waiting for a rate or budget token.
func (e *engine) setStarting(ctx context.Context, on bool) {
	e.startMu.Lock()
	defer e.startMu.Unlock()
	if on && e.startCtx != nil {
		return
	}
	if e.startCancel != nil {
		e.startCancel()
		e.startCtx, e.startCancel = nil, nil
	}
	if on {
		e.startCtx, e.startCancel = context.WithCancel(ctx)
	}
	e.starting.Store(on)
}

// stopStarting closes the gate; see setStarting.
func (e *engine) stopStarting() {
	e.startMu.Lock()
	defer e.startMu.Unlock()
	if e.startCancel != nil {
		e.startCancel()
		e.startCtx, e.startCancel = nil, nil
	}
	e.starting.Store(false)
}

func (e *engine) currentStartCtx() context.Context {
	e.startMu.Lock()
	defer e.startMu.Unlock()
	if e.startCtx == nil {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		return ctx
	}
	return e.startCtx
}

// release moves devices whose wait is over to the ready queue.
func (e *engine) release(now time.Time) {
	for len(e.timed) > 0 && !e.timed[0].notBefore.After(now) {
		d := heap.Pop(&e.timed).(*device)
		d.forWindow = false
		e.cont = append(e.cont, d)
	}
}

func (e *engine) nextWake() (time.Time, bool) {
	var t time.Time
	if len(e.timed) > 0 {
		t = e.timed[0].notBefore
	}
	if !e.followAt.IsZero() && !e.resolving && (t.IsZero() || e.followAt.Before(t)) {
		t = e.followAt
	}
	return t, !t.IsZero()
}

// popReady returns the next device to start: devices already under way
// first, then canaries, then the rest once the canaries succeeded.
func (e *engine) popReady() *device {
	if len(e.cont) > 0 {
		d := e.cont[0]
		e.cont[0] = nil
		e.cont = e.cont[1:]
		return d
	}
	if len(e.canaryQ) > 0 {
		d := e.canaryQ[0]
		e.canaryQ = e.canaryQ[1:]
		return d
	}
	if e.canaryPhase || len(e.freshQ) == 0 {
		return nil
	}
	d := e.freshQ[0]
	e.freshQ[0] = nil
	e.freshQ = e.freshQ[1:]
	return d
}

func (e *engine) pushBack(d *device) {
	e.cont = append([]*device{d}, e.cont...)
}

// dispatch starts executions while slots are free.
func (e *engine) dispatch(ctx context.Context, now time.Time) {
	for e.active < e.concurrency() {
		d := e.popReady()
		if d == nil {
			return
		}
		// A device following a step in progress is not a new start.
		if d.mode != modeFollow {
			if open, next := d.gate.openAt(now); !open {
				if next.IsZero() {
					_ = e.skipRest(ctx, d, "no maintenance window opens again")
					continue
				}
				d.notBefore, d.forWindow = next, true
				heap.Push(&e.timed, d)
				continue
			}
		}
		e.start(ctx, d)
	}
}

func (e *engine) start(ctx context.Context, d *device) {
	e.active++
	t := task{
		id: d.id, gate: d.gate, step: d.step, attempt: d.attempt, tries: d.tries,
		offline: d.offline, started: d.started, invokedAt: d.invokedAt, backSince: d.backSince, awaySeen: d.awaySeen, progress: d.progress,
		evalErr: d.evalErr, mode: d.mode, dev: d,
	}
	startCtx := e.currentStartCtx()
	go func() {
		e.results <- e.execute(ctx, startCtx, t)
	}()
}

// handle applies an execution's outcome.
func (e *engine) handle(ctx context.Context, o outcome) {
	e.active--
	d := o.t.dev
	t := o.t
	d.attempt, d.tries, d.offline = t.attempt, t.tries, t.offline
	d.started, d.invokedAt, d.progress, d.evalErr = t.started, t.invokedAt, t.progress, t.evalErr
	d.backSince, d.awaySeen = t.backSince, t.awaySeen
	d.mode = modeStart
	switch o.kind {
	case outNotStarted:
		d.mode = t.mode
		e.pushBack(d)
	case outRetry:
		if d.gate != nil && !o.reached {
			// The step never reached the device: if it has to wait for the
			// next window, its timeout starts over there.
			if open, _ := d.gate.openAt(o.at); !open {
				d.started = time.Time{}
			}
		}
		d.mode = t.mode
		d.notBefore = o.at
		heap.Push(&e.timed, d)
	case outSucceeded:
		d.step++
		d.attempt, d.tries, d.offline = 0, 0, 0
		d.started, d.invokedAt, d.progress, d.evalErr = time.Time{}, time.Time{}, "", ""
		d.backSince, d.awaySeen = time.Time{}, false
		if d.step >= len(e.job.Steps) {
			d.step = len(e.job.Steps) - 1
			e.finish(ctx, d, state.ExecSucceeded, "")
		} else {
			e.cont = append(e.cont, d)
		}
	case outFailed, outTimedOut:
		st := state.ExecFailed
		if o.kind == outTimedOut {
			st = state.ExecTimedOut
		}
		e.finish(ctx, d, st, o.err)
	case outInterrupted:
		d.mode = t.mode
		if t.attempt > 0 || t.mode != modeStart {
			e.nLeft++
		}
	case outFatal:
		d.mode = t.mode
		e.fatalf(fmt.Errorf("run %s: %s", e.runID, o.err))
	}
}

// finish records a device's final outcome for the run and applies the
// canary and abort rules.
func (e *engine) finish(ctx context.Context, d *device, st state.ExecState, detail string) {
	d.done, d.outcome = true, st
	e.count(st)
	now := e.r.clock.Now()
	e.doneLog = append(e.doneLog, now)
	if len(e.doneLog) > 4096 && now.Sub(e.doneLog[0]) > rateSpan {
		// Only the last rateSpan matters; a long run must not keep every
		// finish time.
		i := 0
		for i < len(e.doneLog) && now.Sub(e.doneLog[i]) > rateSpan {
			i++
		}
		e.doneLog = append(e.doneLog[:0], e.doneLog[i:]...)
	}
	if st == state.ExecFailed || st == state.ExecTimedOut {
		e.skipLater(ctx, d, e.endedWhy(d.step, st), nil)
	}
	if d.canary {
		if st != state.ExecSucceeded {
			e.stopWith(stopCanary, canaryReason(d, e.job, detail))
			e.log.Warn("canary failed; no further devices start", slog.String(keyDevice, d.id), slog.String(keyReason, e.reason))
		} else if e.canaryPhase && e.canariesSucceeded() {
			e.canaryPhase = false
			e.log.Info("canaries succeeded; rolling out to the rest", slog.Int("canaries", len(e.canaries)))
		}
	}
	e.checkAbort(ctx)
}

// endedWhy is the reason later steps are skipped after step ended in st.
func (e *engine) endedWhy(step int, st state.ExecState) string {
	return fmt.Sprintf("step %q %s", e.job.Steps[step].Name, strings.ReplaceAll(string(st), "_", " "))
}

// skipLater records the steps after a device's failed one as skipped,
// except those recorded already.
func (e *engine) skipLater(ctx context.Context, d *device, why string, recorded map[int]bool) {
	for i := d.step + 1; i < len(e.job.Steps); i++ {
		if recorded[i] {
			continue
		}
		e.appendAsync(ctx, state.Event{
			RunID: e.runID, DeviceID: d.id, Step: e.job.Steps[i].Name, StepIndex: i,
			Kind: state.KindState, State: state.ExecSkipped, Error: why,
		})
	}
}

// skipUnrecorded records as skipped the steps after a device's failed,
// timed-out or skipped one that the history does not have yet: a process
// stopped between recording that step and its consequence for the later
// ones leaves them out.
func (e *engine) skipUnrecorded(ctx context.Context, d *device, execs []state.Execution) {
	if !d.done || d.outcome == state.ExecSucceeded {
		return
	}
	recorded := make(map[int]bool, len(execs))
	why := e.endedWhy(d.step, d.outcome)
	for _, x := range execs {
		recorded[x.StepIndex] = true
		if x.StepIndex == d.step && d.outcome == state.ExecSkipped && x.Error != "" {
			why = x.Error // the same reason as the step before
		}
	}
	e.skipLater(ctx, d, why, recorded)
}

// skipRest records a device's current and later steps as skipped and counts
// it as done.
func (e *engine) skipRest(ctx context.Context, d *device, why string) error {
	for i := d.step; i < len(e.job.Steps); i++ {
		if err := e.appendAsync(ctx, state.Event{
			RunID: e.runID, DeviceID: d.id, Step: e.job.Steps[i].Name, StepIndex: i,
			Kind: state.KindState, State: state.ExecSkipped, Error: why,
		}); err != nil {
			return err
		}
	}
	d.done, d.outcome = true, state.ExecSkipped
	e.count(state.ExecSkipped)
	return nil
}

func (e *engine) appendAsync(ctx context.Context, ev state.Event) error {
	if ev.ObservedAt.IsZero() {
		ev.ObservedAt = e.r.clock.Now()
	}
	err := e.r.rec.Append(context.WithoutCancel(ctx), ev)
	if err != nil && state.IsWriteError(err) {
		// Kept for when the history is writable again.
		e.histPending = append(e.histPending, ev)
		e.historyDown(err)
		return nil
	}
	if err != nil {
		e.fatalf(err)
	}
	return err
}

// checkAbort trips the abort rule.
func (e *engine) checkAbort(ctx context.Context) {
	a := e.job.Rollout.Abort
	if a == nil || e.stop != stopNone || e.paused {
		return
	}
	finished := e.nSucceeded + e.nFailed + e.nTimedOut - e.baseFinished
	counted := e.counted() - e.baseCounted
	if finished < max(1, a.MinFinished) || float64(counted)/float64(finished) < a.FailureRatio {
		return
	}
	reason := fmt.Sprintf("abort rule tripped: %d of %d finished devices %s (%.0f%% >= %.0f%%)",
		counted, finished, strings.Join(a.Count, " or "), 100*float64(counted)/float64(finished), 100*a.FailureRatio)
	if a.Action == jobs.ActionAbort {
		e.stopWith(stopAbort, reason)
		e.log.Warn("run aborting", slog.String(keyReason, reason))
		return
	}
	e.paused = true
	e.reason = reason
	e.stopStarting()
	e.log.Warn("run paused; resume with hubflow resume", slog.String(keyReason, reason))
	if err := e.setRunState(ctx, state.RunPaused, reason); err != nil {
		e.fatalf(err)
	}
}

func (e *engine) counted() int {
	n := 0
	for _, c := range e.job.Rollout.Abort.Count {
		switch c {
		case jobs.OutcomeFailed:
			n += e.nFailed
		case jobs.OutcomeTimedOut:
			n += e.nTimedOut
		}
	}
	return n
}

// pollControl reads what other processes asked of the run.
func (e *engine) pollControl(ctx context.Context) {
	ctl, err := e.r.rec.ReadControl(ctx, e.runID)
	if err != nil {
		if ctx.Err() == nil {
			e.log.Warn("read run control", slog.String(keyError, err.Error()))
		}
		return
	}
	if ctl.CancelRequested && e.stop == stopNone {
		e.log.Info("cancel requested; finishing executions in flight")
		e.stopWith(stopCancel, "cancelled")
		return
	}
	if ctl.ResumeRequested && e.paused && e.stop == stopNone {
		e.paused = false
		e.reason = ""
		// The rule counts again from here: what tripped it has been seen
		// by the operator who resumed.
		e.baseFinished = e.nSucceeded + e.nFailed + e.nTimedOut
		if e.job.Rollout.Abort != nil {
			e.baseCounted = e.counted()
		}
		if err := e.setRunState(ctx, state.RunRunning, ""); err != nil {
			e.writeFailed(err)
			return
		}
		e.log.Info("run resumed")
		e.setStarting(ctx, true)
	}
}

func (e *engine) setRunState(ctx context.Context, st state.RunState, reason string) error {
	if st == e.runState && reason == e.reason && e.runState != state.RunPending {
		return nil
	}
	if err := e.r.rec.UpdateRunState(context.WithoutCancel(ctx), e.runID, st, reason); err != nil {
		return err
	}
	if st != e.runState {
		e.log.Info("run state", slog.String(keyState, string(st)), slog.String(keyReason, reason))
	}
	e.runState, e.reason = st, reason
	e.report(true)
	return nil
}

// trackRunState records running, waiting_window or paused as the devices'
// situation changes.
func (e *engine) trackRunState(ctx context.Context, now time.Time) error {
	if e.stop != stopNone {
		return nil
	}
	if e.paused {
		return e.setRunState(ctx, state.RunPaused, e.reason)
	}
	waiting := e.active == 0 && len(e.cont) == 0 && (len(e.canaryQ) == 0 && (e.canaryPhase || len(e.freshQ) == 0))
	if waiting {
		for _, d := range e.timed {
			if !d.forWindow {
				waiting = false
				break
			}
		}
	}
	if waiting && (len(e.timed) > 0 || !e.followAt.IsZero()) {
		next := e.followAt
		if len(e.timed) > 0 {
			next = e.timed[0].notBefore
		}
		txt := fmt.Sprintf("%s: next opening %s", windowNames(e.job), next.Format(time.RFC3339))
		if e.gates.none() {
			txt = fmt.Sprintf("target re-resolved at %s", next.Format(time.RFC3339))
		}
		if txt != e.windowTxt {
			if err := e.r.rec.SetRunWindow(context.WithoutCancel(ctx), e.runID, txt); err != nil {
				return err
			}
			e.windowTxt = txt
		}
		return e.setRunState(ctx, state.RunWaitingWindow, "")
	}
	if e.runState == state.RunPending || e.runState == state.RunWaitingWindow {
		if e.windowTxt != "" {
			e.windowTxt = ""
			if err := e.r.rec.SetRunWindow(context.WithoutCancel(ctx), e.runID, windowNames(e.job)); err != nil {
				return err
			}
		}
		return e.setRunState(ctx, state.RunRunning, "")
	}
	return nil
}

// checkEnd decides whether the run is over (or left for later) and, if
// so, records its end.
func (e *engine) checkEnd(ctx context.Context) (*Result, bool) {
	if e.active > 0 {
		return nil, false
	}
	wctx := context.WithoutCancel(ctx)
	if e.hist.down() != nil && e.stop != stopDrain && e.stop != stopHard && e.stop != stopFatal {
		// The end is recorded once the history can take it.
		return nil, false
	}
	switch e.stop {
	case stopDrain, stopHard, stopFatal:
		if e.stop != stopFatal {
			if err := e.r.rec.Flush(wctx); err != nil && e.fatal == nil {
				e.fatal = err
			}
			// A paused run keeps the abort rule's reason.
			if e.runState == state.RunRunning || e.runState == state.RunWaitingWindow {
				_ = e.r.rec.UpdateRunState(wctx, e.runID, e.runState, "interrupted")
			}
		}
		return e.result(true), true
	case stopCancel:
		return e.end(wctx, state.RunCancelled, e.reason)
	case stopAbort:
		return e.end(wctx, state.RunAborted, e.reason)
	case stopCanary:
		return e.end(wctx, state.RunFailed, e.reason)
	}
	if e.paused || e.nDone < len(e.devices) {
		return nil, false
	}
	// A following run ends like any other once its devices are done; it
	// only waits for a re-resolution already under way, which may add
	// devices.
	if e.resolving {
		return nil, false
	}
	if n := e.nFailed + e.nTimedOut; n > 0 {
		reason := fmt.Sprintf("%d of %d devices did not succeed", n, len(e.devices))
		parts := []string{}
		if e.nFailed > 0 {
			parts = append(parts, fmt.Sprintf("%d failed", e.nFailed))
		}
		if e.nTimedOut > 0 {
			parts = append(parts, fmt.Sprintf("%d timed out", e.nTimedOut))
		}
		return e.end(wctx, state.RunFailed, reason+" ("+strings.Join(parts, ", ")+")")
	}
	return e.end(wctx, state.RunSucceeded, "")
}

// end records a final state: devices that never finished are skipped with
// the reason, everything is flushed, then the run's state is set. ok is
// false when the history went down meanwhile: the loop tries again once it
// is back.
func (e *engine) end(ctx context.Context, st state.RunState, reason string) (res *Result, ok bool) {
	why := reason
	if why == "" {
		why = string(st)
	}
	for _, d := range e.devices {
		if !d.done {
			if e.skipRest(ctx, d, "run "+string(st)+": "+why) != nil {
				break
			}
		}
	}
	if e.hist.down() != nil {
		return nil, false
	}
	if err := e.r.rec.Flush(ctx); err != nil {
		if state.IsWriteError(err) {
			e.historyDown(err)
			return nil, false
		}
		e.fatalf(err)
		return e.result(true), true
	}
	if err := e.r.rec.UpdateRunState(ctx, e.runID, st, reason); err != nil {
		if state.IsWriteError(err) {
			e.historyDown(err)
			return nil, false
		}
		e.fatalf(err)
		return e.result(true), true
	}
	e.runState, e.reason = st, reason
	e.log.Info("run ended", slog.String(keyState, string(st)), slog.String(keyReason, reason),
		slog.Int("succeeded", e.nSucceeded), slog.Int("failed", e.nFailed), slog.Int("timed_out", e.nTimedOut), slog.Int("skipped", e.nSkipped))
	return e.result(false), true
}

func (e *engine) result(interrupted bool) *Result {
	reads, queries := e.obs.stats()
	return &Result{RunID: e.runID, State: e.runState, Reason: e.reason, Counts: e.counts(), Interrupted: interrupted,
		TwinReads: reads, Queries: queries}
}

func (e *engine) counts() state.Counts {
	return state.Counts{
		Pending:   len(e.devices) - e.nDone - e.active - e.nLeft,
		Running:   e.active + e.nLeft,
		Succeeded: e.nSucceeded,
		Failed:    e.nFailed,
		TimedOut:  e.nTimedOut,
		Skipped:   e.nSkipped,
	}
}

// report sends a snapshot to the progress callback: always when forced,
// otherwise at most every 200 ms.
func (e *engine) report(force bool) {
	if e.req.Progress == nil {
		return
	}
	now := time.Now()
	if !force && now.Sub(e.lastSnap) < 200*time.Millisecond {
		return
	}
	e.lastSnap = now
	e.req.Progress(e.snapshot())
}

func (e *engine) snapshot() Snapshot {
	now := e.r.clock.Now()
	s := Snapshot{
		RunID: e.runID, Job: e.job.Name, State: e.runState, Reason: e.reason,
		Canary: e.canaryPhase, Counts: e.counts(), Total: len(e.devices),
		Elapsed: now.Sub(e.began), At: now,
	}
	st := e.r.budget.Stats()
	s.Throttled = sum(st.Throttled[:])
	// Rate over the last rateSpan of finishes (or since the start).
	cut := now.Add(-rateSpan)
	i := 0
	for i < len(e.doneLog) && e.doneLog[i].Before(cut) {
		i++
	}
	if i > 0 && i > len(e.doneLog)/2 {
		e.doneLog = append(e.doneLog[:0], e.doneLog[i:]...)
		i = 0
	}
	span := min(rateSpan, now.Sub(e.began))
	if n := len(e.doneLog) - i; n > 0 && span > 0 {
		s.Rate = float64(n) / span.Seconds()
		left := len(e.devices) - e.nDone
		if s.Rate > 0 {
			s.ETA = time.Duration(math.Round(float64(left)/s.Rate)) * time.Second
		}
	}
	if !e.gates.none() {
		s.Window.Windows = windowNames(e.job)
		zones := []string{}
		for _, g := range e.gates.all() {
			zones = append(zones, g.zone)
			open, change := g.openAt(now)
			if open {
				s.Window.Open = true
				if s.Window.Closes.IsZero() || change.Before(s.Window.Closes) {
					s.Window.Closes = change
				}
			} else if !change.IsZero() && (s.Window.Next.IsZero() || change.Before(s.Window.Next)) {
				s.Window.Next = change
			}
		}
		if len(zones) > 3 {
			s.Window.Zones = fmt.Sprintf("%d zones", len(zones))
		} else {
			s.Window.Zones = strings.Join(zones, "; ")
		}
	}
	return s
}

func sum(xs []int64) int64 {
	var n int64
	for _, x := range xs {
		n += x
	}
	return n
}

// nextFollow is when a following job re-resolves its target next: at the
// next window opening, or after the follow interval when it has no windows.
func (e *engine) nextFollow(after time.Time) time.Time {
	if e.gates.none() {
		return after.Add(e.r.follow)
	}
	var next time.Time
	gs := e.gates.all()
	if len(gs) == 0 {
		// Device-local windows with no device yet: use the windows in UTC.
		set, _ := e.job.WindowSet(jobs.Device{})
		gs = []*gate{{set: set}}
	}
	for _, g := range gs {
		if n := g.set.NextOpening(after); !n.IsZero() && (next.IsZero() || n.Before(next)) {
			next = n
		}
	}
	return next
}

// follow starts re-resolving the target when it is due.
func (e *engine) follow(ctx context.Context, now time.Time) {
	if e.followAt.IsZero() || e.resolving || now.Before(e.followAt) || e.stop != stopNone {
		return
	}
	e.resolving = true
	e.followAt = e.nextFollow(now)
	go func() {
		targets, err := e.r.resolve(ctx, e.job)
		e.resolved <- followResult{targets, err}
	}()
}

func (e *engine) addFollowed(ctx context.Context, fr followResult) {
	if fr.err != nil {
		if ctx.Err() == nil {
			e.log.Warn("re-resolve target", slog.String(keyError, fr.err.Error()))
		}
		return
	}
	known := make(map[string]bool, len(e.devices))
	for _, d := range e.devices {
		known[d.id] = true
	}
	var recs []state.Target
	for _, t := range fr.targets {
		if known[t.ID] || t.SkipReason != "" {
			continue
		}
		d := &device{id: t.ID}
		var reason string
		d.gate, reason = e.gates.forDevice(t.ID, t.Twin)
		recs = append(recs, state.Target{DeviceID: t.ID, SkipReason: reason})
		if reason != "" {
			d.done, d.outcome = true, state.ExecSkipped
		}
		e.add(d)
		if !d.done {
			e.freshQ = append(e.freshQ, d)
		}
	}
	if len(recs) == 0 {
		return
	}
	if err := e.r.rec.RecordTargets(context.WithoutCancel(ctx), e.runID, recs); err != nil {
		e.fatalf(err)
		return
	}
	e.log.Info("target re-resolved", slog.Int("new_devices", len(recs)))
}

// deviceHeap orders waiting devices by when they may go on.
type deviceHeap []*device

func (h deviceHeap) Len() int { return len(h) }
func (h deviceHeap) Less(i, j int) bool {
	if h[i].notBefore.Equal(h[j].notBefore) {
		return h[i].seq < h[j].seq
	}
	return h[i].notBefore.Before(h[j].notBefore)
}
func (h deviceHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].hidx, h[j].hidx = i, j
}
func (h *deviceHeap) Push(x any) {
	d := x.(*device)
	d.hidx = len(*h)
	*h = append(*h, d)
}
func (h *deviceHeap) Pop() any {
	old := *h
	n := len(old)
	d := old[n-1]
	old[n-1] = nil
	d.hidx = -1
	*h = old[:n-1]
	return d
}
