package runner

// Attribute keys of the runner's log records.
const (
	keyJob    = "job"
	keyRun    = "run"
	keyDevice = "device"
	keyStep   = "step"
	keyState  = "state"
	keyError  = "error"
	keyReason = "reason"
)
