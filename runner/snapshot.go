package runner

import (
	"time"

	"github.com/hubflow/hubflow/state"
)

// Snapshot is the state of a run at one moment, for progress displays.
type Snapshot struct {
	RunID string
	Job   string
	State state.RunState
	// Reason says why the run is paused or ended, or what it is waiting
	// for.
	Reason string
	// Canary is true while only the canary devices may run.
	Canary bool
	// Counts are the devices per state: Running are in flight, Pending
	// wait for a slot, a window or a retry.
	Counts state.Counts
	Total  int
	// Rate is devices finished per second, over the last seconds.
	Rate float64
	// ETA is the time left at Rate; 0 when unknown.
	ETA time.Duration
	// Elapsed is the time since the run (or its resumption) started.
	Elapsed time.Duration
	Window  WindowStatus
	// Throttled counts the hub's 429 answers so far, for all runs sharing
	// the budget.
	Throttled int64
	// At is the time of the snapshot on the runner's clock.
	At time.Time
	// Final is true for the last snapshot of a run (ended or left
	// interrupted).
	Final bool
}

// WindowStatus says whether the job's maintenance windows let devices
// start. For device-local windows it describes the zone that opens or
// closes soonest.
type WindowStatus struct {
	// Windows names the job's windows; empty when the job has none or
	// they are ignored.
	Windows string
	// Open is true while devices may start.
	Open bool
	// Closes is when the open window closes; Next when the next one opens.
	Closes, Next time.Time
	// Zones are the time zones the windows are read in.
	Zones string
}
