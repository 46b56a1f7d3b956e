package state

import "fmt"

// RunState is where a run is in its life:
// pending → waiting_window ⇄ running ⇄ paused → succeeded | failed | aborted | cancelled.
type RunState string

// Run states.
const (
	RunPending       RunState = "pending"
	RunWaitingWindow RunState = "waiting_window"
	RunRunning       RunState = "running"
	RunPaused        RunState = "paused"
	RunSucceeded     RunState = "succeeded"
	RunFailed        RunState = "failed"
	RunAborted       RunState = "aborted"
	RunCancelled     RunState = "cancelled"
)

// RunStates lists every run state in lifecycle order.
func RunStates() []RunState {
	return []RunState{RunPending, RunWaitingWindow, RunRunning, RunPaused, RunSucceeded, RunFailed, RunAborted, RunCancelled}
}

// Valid reports whether s is a known run state.
func (s RunState) Valid() bool {
	switch s {
	case RunPending, RunWaitingWindow, RunRunning, RunPaused, RunSucceeded, RunFailed, RunAborted, RunCancelled:
		return true
	}
	return false
}

// Finished reports whether s is a final state, after which the run never
// changes again.
func (s RunState) Finished() bool {
	switch s {
	case RunSucceeded, RunFailed, RunAborted, RunCancelled:
		return true
	}
	return false
}

// ParseRunState returns the run state named s.
func ParseRunState(s string) (RunState, error) {
	if st := RunState(s); st.Valid() {
		return st, nil
	}
	return "", fmt.Errorf("unknown run state %q (want one of pending, waiting_window, running, paused, succeeded, failed, aborted, cancelled)", s)
}

// ExecState is where one device is in one step:
// pending → invoking → in_progress → succeeded | failed | timed_out | skipped.
type ExecState string

// Device execution states.
const (
	ExecPending    ExecState = "pending"
	ExecInvoking   ExecState = "invoking"
	ExecInProgress ExecState = "in_progress"
	ExecSucceeded  ExecState = "succeeded"
	ExecFailed     ExecState = "failed"
	ExecTimedOut   ExecState = "timed_out"
	ExecSkipped    ExecState = "skipped"
)

// ExecStates lists every execution state in lifecycle order.
func ExecStates() []ExecState {
	return []ExecState{ExecPending, ExecInvoking, ExecInProgress, ExecSucceeded, ExecFailed, ExecTimedOut, ExecSkipped}
}

// Valid reports whether s is a known execution state.
func (s ExecState) Valid() bool {
	switch s {
	case ExecPending, ExecInvoking, ExecInProgress, ExecSucceeded, ExecFailed, ExecTimedOut, ExecSkipped:
		return true
	}
	return false
}

// Finished reports whether s is final for the step: succeeded, failed,
// timed_out or skipped.
func (s ExecState) Finished() bool {
	switch s {
	case ExecSucceeded, ExecFailed, ExecTimedOut, ExecSkipped:
		return true
	}
	return false
}

// ParseExecState returns the execution state named s.
func ParseExecState(s string) (ExecState, error) {
	if st := ExecState(s); st.Valid() {
		return st, nil
	}
	return "", fmt.Errorf("unknown device state %q (want one of pending, invoking, in_progress, succeeded, failed, timed_out, skipped)", s)
}

// Trigger says what created a run.
type Trigger string

// Triggers.
const (
	TriggerManual   Trigger = "manual"   // hubflow run
	TriggerSchedule Trigger = "schedule" // a schedule slot in hubflow serve
	TriggerResume   Trigger = "resume"   // hubflow resume of a run whose process is gone
)

// Valid reports whether t is a known trigger.
func (t Trigger) Valid() bool {
	switch t {
	case TriggerManual, TriggerSchedule, TriggerResume:
		return true
	}
	return false
}

// EventKind says what an Event records.
type EventKind string

// Event kinds.
const (
	// KindState is a transition of the execution to Event.State.
	KindState EventKind = "state"
	// KindProgress is a new value of the step's progress expression.
	KindProgress EventKind = "progress"
	// KindNote is anything else worth keeping in the device's history: a
	// condition that could not be evaluated, a retry scheduled, a throttled
	// call. Its Error, if set, becomes the execution's last error.
	KindNote EventKind = "note"
)

// Valid reports whether k is a known event kind.
func (k EventKind) Valid() bool {
	switch k {
	case KindState, KindProgress, KindNote:
		return true
	}
	return false
}

// Counts is the number of a run's devices in each state. A device's state is
// that of its current step; a device that has succeeded a step that is not
// its last counts as pending until its next step starts.
type Counts struct {
	Pending   int // not started, or between steps
	Running   int // invoking or in_progress
	Succeeded int // succeeded its last step
	Failed    int
	TimedOut  int
	Skipped   int
}

// Devices is the number of devices in the run's target set.
func (c Counts) Devices() int {
	return c.Pending + c.Running + c.Succeeded + c.Failed + c.TimedOut + c.Skipped
}

// Finished is the number of devices that reached a final state.
func (c Counts) Finished() int { return c.Succeeded + c.Failed + c.TimedOut + c.Skipped }

func (c *Counts) add(s ExecState, n int) {
	switch s {
	case ExecPending:
		c.Pending += n
	case ExecInvoking, ExecInProgress:
		c.Running += n
	case ExecSucceeded:
		c.Succeeded += n
	case ExecFailed:
		c.Failed += n
	case ExecTimedOut:
		c.TimedOut += n
	case ExecSkipped:
		c.Skipped += n
	}
}
