package state

import (
	"encoding/json"
	"fmt"
	"time"
)

// Event is one entry of a run's append-only log: a device's step changed
// state, showed new progress, or something else worth keeping happened to
// it. The executions and run_devices tables are derived from events in the
// transaction that records them.
type Event struct {
	RunID     string
	DeviceID  string
	Step      string
	StepIndex int // position of Step in the job, from 0
	Kind      EventKind
	// State is the execution's new state. Required for KindState, empty
	// otherwise.
	State ExecState
	// Attempt is the invocation counter, from 1; 0 leaves it unchanged.
	Attempt int
	// Progress is the new progress value as JSON. Required for
	// KindProgress; any event may carry it.
	Progress json.RawMessage
	// MethodStatus is the status the device answered a direct method with;
	// nil when there was no answer.
	MethodStatus *int
	// Response is the device's method response payload as JSON (anything
	// else is stored as a JSON string).
	Response json.RawMessage
	// Error is the failure this event reports. A state event sets the
	// execution's error to it (empty clears it); a note sets it when
	// non-empty.
	Error string
	// Detail is free text kept with the event only.
	Detail string
	// ObservedAt is when the change was seen. Zero means now.
	ObservedAt time.Time

	// ID is the event's position in the log; set by queries, ignored by
	// Append.
	ID int64
}

func (e *Event) validate() error {
	switch {
	case e.RunID == "":
		return fmt.Errorf("event without run id")
	case e.DeviceID == "":
		return fmt.Errorf("event of run %s without device id", e.RunID)
	case e.Step == "":
		return fmt.Errorf("event of run %s, device %s without step", e.RunID, e.DeviceID)
	case !e.Kind.Valid():
		return fmt.Errorf("event of run %s, device %s: unknown kind %q", e.RunID, e.DeviceID, e.Kind)
	case e.StepIndex < 0 || e.Attempt < 0:
		return fmt.Errorf("event of run %s, device %s: negative step index or attempt", e.RunID, e.DeviceID)
	}
	if e.Kind == KindState {
		if !e.State.Valid() {
			return fmt.Errorf("state event of run %s, device %s: unknown state %q", e.RunID, e.DeviceID, e.State)
		}
	} else if e.State != "" {
		return fmt.Errorf("%s event of run %s, device %s: only state events carry a state", e.Kind, e.RunID, e.DeviceID)
	}
	if e.Kind == KindProgress && e.Progress == nil {
		return fmt.Errorf("progress event of run %s, device %s without progress", e.RunID, e.DeviceID)
	}
	if e.Progress != nil && !json.Valid(e.Progress) {
		return fmt.Errorf("event of run %s, device %s: progress is not valid JSON", e.RunID, e.DeviceID)
	}
	return nil
}

// row is an event ready for the writer: validated, cleaned of secrets, with
// its run resolved and its time in milliseconds.
type row struct {
	runNo     int64
	steps     []string
	device    string
	step      string
	stepIndex int
	kind      EventKind
	state     ExecState
	attempt   int
	progress  *string
	status    *int
	response  *string
	errText   string
	detail    string
	observed  int64
}

func newRow(e *Event, info runInfo, now time.Time) row {
	r := row{
		runNo: info.no, steps: info.steps,
		device: e.DeviceID, step: e.Step, stepIndex: e.StepIndex,
		kind: e.Kind, state: e.State, attempt: e.Attempt,
		status:  e.MethodStatus,
		errText: redactSecrets(e.Error), detail: redactSecrets(e.Detail),
	}
	if e.ObservedAt.IsZero() {
		r.observed = now.UnixMilli()
	} else {
		r.observed = e.ObservedAt.UnixMilli()
	}
	if e.Progress != nil {
		p := redactSecrets(string(e.Progress))
		r.progress = &p
	}
	if e.Response != nil {
		resp := string(e.Response)
		if !json.Valid(e.Response) {
			b, _ := json.Marshal(resp)
			resp = string(b)
		}
		resp = redactSecrets(resp)
		r.response = &resp
	}
	if e.MethodStatus != nil {
		st := *e.MethodStatus
		r.status = &st
	}
	return r
}

// execRow is one executions row as the writer merges events into it.
type execRow struct {
	runNo      int64
	device     string
	step       string
	stepIndex  int
	state      ExecState
	attempt    int
	status     *int
	response   *string
	progress   *string
	progressAt *int64
	errText    string
	started    *int64
	invoked    *int64
	ended      *int64
	updated    int64

	// What executions_finished indexes, as stored; set when the row is
	// loaded. An update that leaves these alone skips that index.
	stored                 bool
	origState              ExecState
	origStarted, origEnded *int64
}

// remember records the row's indexed values as stored.
func (x *execRow) remember() {
	x.stored, x.origState, x.origStarted, x.origEnded = true, x.state, x.started, x.ended
}

// indexChanged reports whether the row must be written with its indexed
// columns.
func (x *execRow) indexChanged() bool {
	return !x.stored || x.state != x.origState || !sameTime(x.started, x.origStarted) || !sameTime(x.ended, x.origEnded)
}

// applyToExecution folds one event into its execution.
func applyToExecution(x *execRow, r *row) {
	x.stepIndex = r.stepIndex
	if r.observed > x.updated {
		x.updated = r.observed
	}
	if r.attempt > 0 {
		x.attempt = r.attempt
	}
	switch r.kind {
	case KindState:
		x.state = r.state
		x.errText = r.errText
		t := r.observed
		switch {
		case r.state == ExecInvoking:
			x.invoked = &t
			if x.started == nil {
				x.started = &t
			}
		case r.state == ExecInProgress || r.state == ExecSucceeded || r.state == ExecFailed || r.state == ExecTimedOut:
			// A twin patch step has no invoking phase; its execution
			// starts with the first state past pending.
			if x.started == nil {
				x.started = &t
			}
		}
		if r.state.Finished() {
			x.ended = &t
		} else {
			x.ended = nil
		}
	case KindNote:
		if r.errText != "" {
			x.errText = r.errText
		}
	}
	if r.progress != nil {
		p, t := *r.progress, r.observed
		x.progress, x.progressAt = &p, &t
	}
	if r.status != nil {
		st := *r.status
		x.status = &st
	}
	if r.response != nil {
		resp := *r.response
		x.response = &resp
	}
}

// devRow is one run_devices row: the device's current step in the run.
type devRow struct {
	exists     bool
	runNo      int64
	device     string
	state      ExecState
	skipReason string
	step       string
	stepIndex  int
	attempt    int
	errText    string
	started    *int64
	ended      *int64
}

// applyToDevice brings a device's run row in line with the execution an
// event just changed. steps are the run's step names; nil when unknown.
func applyToDevice(d *devRow, x *execRow, steps []string, observed int64) {
	if d.step != "" && x.stepIndex < d.stepIndex {
		// Late news about an earlier step does not move the device back.
		return
	}
	if x.state == ExecSkipped && x.stepIndex > d.stepIndex && (d.state == ExecFailed || d.state == ExecTimedOut) {
		// Steps skipped after a failure keep the device counted as failed.
		return
	}
	d.step, d.stepIndex = x.step, x.stepIndex
	d.state = x.state
	d.attempt = x.attempt
	d.errText = x.errText
	if d.started == nil && x.started != nil {
		t := *x.started
		d.started = &t
	}
	if x.state == ExecSucceeded && x.stepIndex+1 < len(steps) {
		// Between steps: waiting for the next one, not done.
		d.state = ExecPending
		d.step, d.stepIndex = steps[x.stepIndex+1], x.stepIndex+1
		d.attempt, d.errText = 0, ""
	}
	if d.state.Finished() {
		t := observed
		if x.ended != nil {
			t = *x.ended
		}
		d.ended = &t
	} else {
		d.ended = nil
	}
}

// sameDevice reports whether two device rows would be stored alike.
func sameDevice(a, b *devRow) bool {
	return a.exists == b.exists && a.state == b.state && a.skipReason == b.skipReason && a.step == b.step &&
		a.stepIndex == b.stepIndex && a.attempt == b.attempt && a.errText == b.errText &&
		sameTime(a.started, b.started) && sameTime(a.ended, b.ended)
}

func sameTime(a, b *int64) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}
