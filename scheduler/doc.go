// Package scheduler turns job schedules into runs: it is the daemon behind
// `hubflow serve`. It loads every job file of a directory, creates a run at
// each slot of a job's cron schedule (or once, at its at time), names each
// run after its job and slot so that a restarted daemon never launches the
// same slot twice, keeps two runs of one job from overlapping unless the
// job allows it, resumes the unfinished scheduled runs it finds at start,
// reloads the directory on request (keeping the previous version of a file
// that no longer validates), and stops by draining the runs in flight.
//
// It leaves decoding job files and computing schedule times (across time
// zones and daylight-saving changes) to jobs, carrying out a run to runner
// (through the Runner interface it declares), the run history to state,
// and signals, flags, the hub connection and the log format to cmd/hubflow.
package scheduler
