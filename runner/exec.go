package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/hubflow/hubflow/iothub"
	"github.com/hubflow/hubflow/jobs"
	"github.com/hubflow/hubflow/state"
)

// maxBackoff caps the growth of retry delays.
const maxBackoff = 5 * time.Minute

// task is one execution of a device's current step: a copy of what the
// engine knows about the device, carried back in the outcome.
type task struct {
	dev       *device // identity only; its fields belong to the engine
	id        string
	gate      *gate
	step      int
	attempt   int
	tries     int
	offline   int
	started   time.Time
	invokedAt time.Time
	// backSince is when the device was first seen connected again after
	// being seen disconnected while its last attempt's outcome was
	// unknown; zero when it was not seen disconnected.
	backSince time.Time
	awaySeen  bool
	progress  string
	evalErr   string
	mode      execMode
}

type outKind int

const (
	outNotStarted  outKind = iota // stopped before invoking; nothing happened
	outRetry                      // try again at outcome.at
	outSucceeded                  // the step succeeded
	outFailed                     // the step failed
	outTimedOut                   // the step timed out
	outInterrupted                // the run's context ended mid-execution
	outFatal                      // the history could not be written
)

type outcome struct {
	t    task
	kind outKind
	at   time.Time
	err  string
	// reached is true once the device accepted the step (answered the
	// method or the patch was applied).
	reached bool
}

func (t task) out(k outKind, err string) outcome { return outcome{t: t, kind: k, err: err} }

// execute runs one execution of the device's current step.
func (e *engine) execute(ctx, startCtx context.Context, t task) outcome {
	step := e.job.Steps[t.step]
	switch t.mode {
	case modeFollow:
		return e.follow1(ctx, t, step)
	case modeReconcile:
		o, done := e.reconcile(ctx, t, step)
		if done {
			return o
		}
		t = o.t
		t.mode = modeStart
	}
	return e.invoke(ctx, startCtx, t, step)
}

func stepTimeout(s *jobs.Step) time.Duration {
	if s.Timeout > 0 {
		return s.Timeout
	}
	return jobs.DefaultStepTimeout
}

// event fills in what every event of this execution carries.
func (e *engine) event(t *task, kind state.EventKind, st state.ExecState) state.Event {
	return state.Event{
		RunID: e.runID, DeviceID: t.id, Step: e.job.Steps[t.step].Name, StepIndex: t.step,
		Kind: kind, State: st, ObservedAt: e.r.clock.Now(),
	}
}

// record appends an event without waiting for its commit: the writer
// commits in order, so it lands before any later synchronous record.
// While the history is down, it waits for it to come back (or ctx to end).
func (e *engine) record(ctx context.Context, ev state.Event) error {
	for {
		err := e.r.rec.Append(context.WithoutCancel(ctx), ev)
		if err == nil || !state.IsWriteError(err) {
			return err
		}
		select {
		case <-e.historyDown(err):
		case <-ctx.Done():
			return err
		}
	}
}

func (e *engine) invoke(ctx, startCtx context.Context, t task, step *jobs.Step) outcome {
	if e.limiter != nil {
		if err := e.limiter.Wait(startCtx); err != nil {
			return t.out(outNotStarted, "")
		}
	}
	op, cost := OpTwinUpdate, 1
	if step.IsMethod() {
		op, cost = OpMethod, MethodCost(len(step.Payload))
	}
	if err := e.r.budget.Wait(startCtx, op, cost); err != nil {
		return t.out(outNotStarted, "")
	}
	now := e.r.clock.Now()
	// Checked again at the last moment: the window may have closed, or the
	// run been stopped, while this execution waited for its tokens.
	if !e.starting.Load() || startCtx.Err() != nil {
		return t.out(outNotStarted, "")
	}
	if open, _ := t.gate.openAt(now); !open {
		return t.out(outNotStarted, "")
	}
	before := t
	if t.started.IsZero() {
		t.started = now
	} else if !now.Before(t.started.Add(stepTimeout(step))) {
		// However the execution got here (a retry due at the deadline, a
		// twin read that waited out a hub outage), no call goes out after
		// the step's timeout: the device would act on it while the run
		// records the step as over.
		return e.noSuccess(ctx, t, step)
	}
	t.attempt++
	t.backSince, t.awaySeen = time.Time{}, false
	t.invokedAt = now
	ev := e.event(&t, state.KindState, state.ExecInvoking)
	ev.Attempt = t.attempt
	// The record of the attempt is committed before the call: after a
	// crash it is what tells a resumed run to look at the twin before
	// sending anything again.
	if err := e.r.rec.AppendSync(ctx, ev); err != nil {
		t = before
		if ctx.Err() != nil {
			return t.out(outInterrupted, "")
		}
		if state.IsWriteError(err) {
			// Nothing was sent: the device waits for the history.
			e.historyDown(err)
			return t.out(outNotStarted, "")
		}
		return t.out(outFatal, err.Error())
	}

	var resp *iothub.MethodResponse
	var err error
	if step.IsMethod() {
		resp, err = e.r.hub.InvokeMethod(ctx, t.id, MethodCall{
			Name: step.Method, Payload: step.Payload,
			ResponseTimeout: step.ResponseTimeout, ConnectTimeout: step.ConnectTimeout,
		})
	} else {
		err = e.r.hub.PatchDesired(ctx, t.id, e.desired[t.step])
	}
	if err != nil {
		return e.invokeFailed(ctx, t, step, op, err)
	}

	var next state.Event
	if resp != nil {
		status := resp.Status
		accept := step.AcceptStatus
		if len(accept) == 0 {
			accept = []int{200}
		}
		if !slices.Contains(accept, status) {
			ev := e.event(&t, state.KindState, state.ExecFailed)
			ev.MethodStatus, ev.Response = &status, resp.Payload
			ev.Error = fmt.Sprintf("device answered %s with status %d (accepted: %v)", step.Method, status, accept)
			return e.final(ctx, t, ev, outFailed)
		}
		next = e.event(&t, state.KindState, state.ExecInProgress)
		next.MethodStatus, next.Response = &status, resp.Payload
	} else {
		next = e.event(&t, state.KindState, state.ExecInProgress)
	}
	if step.Success == nil {
		// Nothing to wait for: acceptance is success.
		next.State = state.ExecSucceeded
		o := e.final(ctx, t, next, outSucceeded)
		o.reached = true
		return o
	}
	if err := e.record(ctx, next); err != nil {
		return t.out(outFatal, err.Error())
	}
	o := e.follow1(ctx, t, step)
	o.reached = true
	return o
}

// invokeFailed decides what a failed invocation means: throttling and an
// offline device wait and try again, transient hub failures are retried as
// the step's retry policy allows, anything else fails the step.
func (e *engine) invokeFailed(ctx context.Context, t task, step *jobs.Step, op Op, err error) outcome {
	if ctx.Err() != nil {
		ev := e.event(&t, state.KindNote, "")
		ev.Detail = "interrupted while invoking; the outcome is read from the twin when the run is resumed"
		_ = e.record(ctx, ev)
		return t.out(outInterrupted, "")
	}
	now := e.r.clock.Now()
	msg := err.Error()
	switch kind := iothub.KindOf(err); kind {
	case iothub.KindThrottled:
		ra := iothub.RetryAfterOf(err)
		e.r.budget.Throttled(op, ra)
		return e.retry(ctx, t, step, now, max(ra, time.Second), "throttled by the hub", false)
	case iothub.KindDeviceNotOnline:
		t.offline++
		o := e.retry(ctx, t, step, now, backoffDelay(retryBackoff(step), t.offline-1, 0.2), "device not online", false)
		if step.IsMethod() && o.kind == outRetry {
			// The hub gives the same answer when the device dropped its
			// connection after the call reached it (a reboot does just
			// that): the twin decides before anything is sent again.
			o.t.mode = modeReconcile
		}
		return o
	case iothub.KindDeviceNotFound:
		ev := e.event(&t, state.KindState, state.ExecFailed)
		ev.Error = "device not found in the hub"
		return e.final(ctx, t, ev, outFailed)
	case iothub.KindTransient, iothub.KindGatewayTimeout, iothub.KindOther:
		// KindOther without a hub answer is the network (connection
		// refused or reset, no answer in time): as transient as a 503.
		if kind == iothub.KindOther && (isHubError(err) || errors.Is(err, ErrRefused)) {
			break
		}
		t.tries++
		if t.tries >= retryAttempts(step) {
			ev := e.event(&t, state.KindState, state.ExecFailed)
			ev.Error = fmt.Sprintf("%s (after %d attempts)", msg, t.tries)
			return e.final(ctx, t, ev, outFailed)
		}
		o := e.retry(ctx, t, step, now, backoffDelay(retryBackoff(step), t.tries-1, 0.2), msg, true)
		if step.IsMethod() && o.kind == outRetry {
			// The device may have acted on a call whose answer was lost:
			// read its twin before sending the method again.
			o.t.mode = modeReconcile
		}
		return o
	}
	ev := e.event(&t, state.KindState, state.ExecFailed)
	ev.Error = msg
	return e.final(ctx, t, ev, outFailed)
}

func retryAttempts(s *jobs.Step) int {
	if s.Retry.Attempts > 0 {
		return s.Retry.Attempts
	}
	return jobs.DefaultAttempts
}

func retryBackoff(s *jobs.Step) time.Duration {
	if s.Retry.Backoff > 0 {
		return s.Retry.Backoff
	}
	return jobs.DefaultBackoff
}

// backoffDelay is base doubled n times (capped), with ±jitter.
func backoffDelay(base time.Duration, n int, jitter float64) time.Duration {
	d := base
	for i := 0; i < n && d < maxBackoff; i++ {
		d *= 2
	}
	d = min(d, max(base, maxBackoff))
	return time.Duration(float64(d) * (1 + jitter*(2*rand.Float64()-1)))
}

// retry schedules the step again after delay, unless that would be past
// its timeout.
func (e *engine) retry(ctx context.Context, t task, step *jobs.Step, now time.Time, delay time.Duration, why string, counted bool) outcome {
	deadline := t.started.Add(stepTimeout(step))
	at := now.Add(delay)
	if !at.Before(deadline) {
		return e.timedOutWaiting(ctx, t, step, why)
	}
	ev := e.event(&t, state.KindState, state.ExecPending)
	ev.Error = why
	ev.Detail = fmt.Sprintf("attempt %d: %s; next attempt at %s", t.attempt, why, at.UTC().Format(time.RFC3339))
	if err := e.record(ctx, ev); err != nil {
		return t.out(outFatal, err.Error())
	}
	e.log.Debug("retry", slog.String(keyDevice, t.id), slog.String(keyStep, step.Name), slog.String(keyReason, why), slog.Bool("counted", counted))
	o := t.out(outRetry, why)
	o.at = at
	return o
}

// await has reconcile look at the twin again after delay, unless that
// would be past the step's timeout. Unlike retry it records a note, not a
// pending state: the last call may still have reached the device, and a
// resumed run must go on treating it so.
func (e *engine) await(ctx context.Context, t task, step *jobs.Step, now time.Time, delay time.Duration, why string) outcome {
	at := now.Add(delay)
	if !at.Before(t.started.Add(stepTimeout(step))) {
		return e.timedOutWaiting(ctx, t, step, why)
	}
	ev := e.event(&t, state.KindNote, "")
	ev.Detail = fmt.Sprintf("attempt %d: %s; the twin is read again at %s", t.attempt, why, at.UTC().Format(time.RFC3339))
	if err := e.record(ctx, ev); err != nil {
		return t.out(outFatal, err.Error())
	}
	e.log.Debug("await", slog.String(keyDevice, t.id), slog.String(keyStep, step.Name), slog.String(keyReason, why))
	o := t.out(outRetry, why)
	o.t.mode = modeReconcile
	o.at = at
	o.reached = true
	return o
}

// noSuccess records that the step's timeout passed without its success.
func (e *engine) noSuccess(ctx context.Context, t task, step *jobs.Step) outcome {
	ev := e.event(&t, state.KindState, state.ExecTimedOut)
	ev.Error = fmt.Sprintf("no success within the step's timeout of %s", stepTimeout(step))
	if t.progress != "" {
		ev.Error += fmt.Sprintf(" (last progress %q)", t.progress)
	}
	return e.final(ctx, t, ev, outTimedOut)
}

// timedOutWaiting records that the step timed out while waiting for why.
func (e *engine) timedOutWaiting(ctx context.Context, t task, step *jobs.Step, why string) outcome {
	ev := e.event(&t, state.KindState, state.ExecTimedOut)
	ev.Error = fmt.Sprintf("%s until the step timed out (%s after its first attempt)", why, stepTimeout(step))
	return e.final(ctx, t, ev, outTimedOut)
}

// final records a step's final state and returns the outcome.
func (e *engine) final(ctx context.Context, t task, ev state.Event, k outKind) outcome {
	if err := e.record(ctx, ev); err != nil {
		return t.out(outFatal, err.Error())
	}
	e.log.Debug("step ended", slog.String(keyDevice, t.id), slog.String(keyStep, ev.Step), slog.String(keyState, string(ev.State)), slog.String(keyError, ev.Error))
	return t.out(k, ev.Error)
}

// follow1 follows a device's twin until the step's success or failure
// condition holds or its timeout passes.
func (e *engine) follow1(ctx context.Context, t task, step *jobs.Step) outcome {
	w := e.obs.add(t.id, step.Name)
	defer e.obs.remove(w)
	if t.started.IsZero() {
		t.started = e.r.clock.Now()
	}
	deadline := t.started.Add(stepTimeout(step))
	timer := e.r.clock.NewTimer(max(0, deadline.Sub(e.r.clock.Now())))
	defer timer.Stop()
	for {
		select {
		case ob := <-w.c:
			if o, done := e.observe(ctx, &t, step, ob.twin); done {
				return o
			}
		case <-timer.C():
			// One consistent read before giving up: the observer's last
			// look may be a while ago, or from an eventually consistent
			// query.
			if twin, err := e.readTwin(ctx, t.id); err == nil {
				if o, done := e.observe(ctx, &t, step, twin); done {
					return o
				}
			}
			if ctx.Err() != nil {
				return t.out(outInterrupted, "")
			}
			return e.noSuccess(ctx, t, step)
		case <-ctx.Done():
			ev := e.event(&t, state.KindNote, "")
			ev.Detail = "interrupted while following the device; the run carries on from its twin when resumed"
			_ = e.record(ctx, ev)
			return t.out(outInterrupted, "")
		}
	}
}

// observe evaluates the step's expressions on a twin: a changed progress
// value is recorded, an expression error once per device, and success or
// failure ends the step.
func (e *engine) observe(ctx context.Context, t *task, step *jobs.Step, twin *iothub.Twin) (outcome, bool) {
	obs := step.Observe(twinDevice(t.id, twin, t.started))
	if obs.Err != nil {
		if msg := obs.Err.Error(); msg != t.evalErr {
			t.evalErr = msg
			ev := e.event(t, state.KindNote, "")
			ev.Error = msg
			ev.Detail = "a condition could not be evaluated for this device; it counts as not satisfied"
			if err := e.record(ctx, ev); err != nil {
				return t.out(outFatal, err.Error()), true
			}
		}
	} else {
		t.evalErr = ""
	}
	var progress json.RawMessage
	if obs.Progress != t.progress {
		t.progress = obs.Progress
		progress = progressJSON(obs.Progress)
	}
	var ev state.Event
	switch {
	case obs.Failure:
		ev = e.event(t, state.KindState, state.ExecFailed)
		ev.Error = "failure condition met"
		if t.progress != "" {
			ev.Error += fmt.Sprintf(" (progress %q)", t.progress)
		}
	case obs.Success:
		ev = e.event(t, state.KindState, state.ExecSucceeded)
	case progress != nil:
		ev = e.event(t, state.KindProgress, "")
		ev.Progress = progress
		if err := e.record(ctx, ev); err != nil {
			return t.out(outFatal, err.Error()), true
		}
		return outcome{}, false
	default:
		return outcome{}, false
	}
	// A progress change seen together with the end of the step travels
	// with the final state: one event, the same history.
	ev.Progress = progress
	k := outSucceeded
	if ev.State == state.ExecFailed {
		k = outFailed
	}
	return e.final(ctx, *t, ev, k), true
}

// readTwin reads one twin within the budget, waiting out throttling.
func (e *engine) readTwin(ctx context.Context, id string) (*iothub.Twin, error) {
	for try := 0; ; try++ {
		if err := e.r.budget.Wait(ctx, OpTwinRead, 1); err != nil {
			return nil, err
		}
		twin, err := e.r.hub.GetTwin(ctx, id)
		if err == nil {
			return twin, nil
		}
		kind := iothub.KindOf(err)
		if kind == iothub.KindThrottled {
			e.r.budget.Throttled(OpTwinRead, iothub.RetryAfterOf(err))
		}
		if (kind != iothub.KindThrottled && kind != iothub.KindTransient) || try >= 4 {
			return nil, err
		}
		if err := sleepReal(ctx, backoffDelay(200*time.Millisecond, try, 0.2)); err != nil {
			return nil, err
		}
	}
}

// settleQuiet is how long a device must be seen connected, showing no sign
// of a call whose outcome is unknown, before the call is sent again. A
// device acts on a call at once: it reports progress, or drops its
// connection to reboot; one that stays connected and silent this long did
// not get the call.
const settleQuiet = 3 * time.Second

// reconcile settles an execution whose last attempt's outcome is unknown:
// caught between recording "invoking" and learning the answer (a crash, a
// lost answer), or answered "device not online" or with a transient error,
// which the hub also gives when the device received the call and then went
// away. The twin decides: success or failure ends the step, a sign that the
// device acted on the call (reported properties updated since, with a
// progress value where the step has one) means following it. Otherwise the
// call is sent again only once the device is connected and has shown
// nothing for settleQuiet, counted from the attempt or from its return
// after being seen disconnected or going unseen while its twin could not
// be read (a device rebooting on the lost call is disconnected, then
// reports on its return). done is false when the step
// is to be invoked again.
func (e *engine) reconcile(ctx context.Context, t task, step *jobs.Step) (outcome, bool) {
	if t.started.IsZero() {
		// Resumed after a retry was recorded: the step has its full time.
		t.started = e.r.clock.Now()
	}
	twin, err := e.readTwin(ctx, t.id)
	if err != nil {
		if ctx.Err() != nil {
			return t.out(outInterrupted, ""), true
		}
		if iothub.KindOf(err) == iothub.KindDeviceNotFound {
			ev := e.event(&t, state.KindState, state.ExecFailed)
			ev.Error = "device not found in the hub"
			return e.final(ctx, t, ev, outFailed), true
		}
		// Whatever the device did meanwhile went unseen: once the twin can
		// be read again, a device found connected may have just come back
		// from acting on the call, so its quiet time starts then, as after
		// being seen away.
		t.awaySeen, t.backSince = true, time.Time{}
		return e.await(ctx, t, step, e.r.clock.Now(), backoffDelay(time.Second, 0, 0.2), "twin unreadable: "+err.Error()), true
	}
	if o, done := e.observe(ctx, &t, step, twin); done {
		return o, true
	}
	sign := reportedSince(twin, t.invokedAt) && (step.Progress == nil || t.progress != "")
	if sign && step.IsMethod() {
		ev := e.event(&t, state.KindState, state.ExecInProgress)
		ev.Detail = "the twin shows the last invocation reached the device; following it"
		if err := e.record(ctx, ev); err != nil {
			return t.out(outFatal, err.Error()), true
		}
		o := e.follow1(ctx, t, step)
		o.reached = true
		return o, true
	}
	if step.IsMethod() && t.attempt > 0 {
		now := e.r.clock.Now()
		if !isConnected(twin) {
			// Sending now could reach a device that is about to come back
			// from acting on the last call; wait for it to return.
			t.awaySeen, t.backSince = true, time.Time{}
			t.offline++
			return e.await(ctx, t, step, now, backoffDelay(retryBackoff(step), t.offline-1, 0.2), "device not online"), true
		}
		if t.awaySeen && t.backSince.IsZero() {
			t.backSince = now
		}
		from := t.invokedAt
		if !t.backSince.IsZero() {
			from = t.backSince
		}
		if wait := from.Add(settleQuiet).Sub(now); wait > 0 {
			return e.await(ctx, t, step, now, wait, "waiting to learn whether the last call reached the device"), true
		}
	}
	ev := e.event(&t, state.KindNote, "")
	ev.Detail = "the twin shows no sign of the last invocation; invoking again"
	if err := e.record(ctx, ev); err != nil {
		return t.out(outFatal, err.Error()), true
	}
	return outcome{t: t}, false
}

// reportedSince reports whether the device's reported properties changed
// after t, by the hub's $metadata.
func reportedSince(twin *iothub.Twin, t time.Time) bool {
	if t.IsZero() {
		return true
	}
	md, _ := twin.Properties.Reported["$metadata"].(map[string]any)
	s, _ := md["$lastUpdated"].(string)
	if s == "" {
		return false
	}
	at, err := iothub.ParseTime(s)
	return err == nil && at.After(t)
}
