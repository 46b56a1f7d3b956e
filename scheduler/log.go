package scheduler

// Attribute keys of the scheduler's log records.
const (
	keyComponent = "component"
	keyJob       = "job"
	keyRun       = "run"
	keySlot      = "slot"
	keyFile      = "file"
	keyError     = "error"
	keyState     = "state"
	keyReason    = "reason"
	keyNext      = "next"
	keyPos       = "pos"
	keyDetail    = "detail"
)
