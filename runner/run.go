package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/hubflow/hubflow/iothub"
	"github.com/hubflow/hubflow/jobs"
	"github.com/hubflow/hubflow/state"
)

// Recorder is the part of the run history (*state.Store) the runner uses:
// it records runs, targets and events, and reads back what a resumed run
// needs and what other processes asked of a run.
type Recorder interface {
	CreateRun(ctx context.Context, r state.NewRun) error
	UpdateRunState(ctx context.Context, runID string, s state.RunState, reason string) error
	SetRunWindow(ctx context.Context, runID, window string) error
	RecordTargets(ctx context.Context, runID string, targets []state.Target) error
	Append(ctx context.Context, ev state.Event) error
	AppendSync(ctx context.Context, evs ...state.Event) error
	Flush(ctx context.Context) error
	ReadControl(ctx context.Context, runID string) (state.Control, error)
	LoadRun(ctx context.Context, id string) (state.Run, error)
	Executions(ctx context.Context, runID string) ([]state.Execution, error)
	RunDevices(ctx context.Context, runID string, f state.DeviceFilter) ([]state.Device, error)
}

var _ Recorder = (*state.Store)(nil)

// Config configures a Runner. Hub is required, and Recorder for Run and
// Resume (Plan records nothing).
type Config struct {
	Hub      Hub
	Recorder Recorder
	// Budget is the quota budget of the hub, shared by every run the
	// process makes against it. Nil means an unmetered budget of the
	// Runner's own.
	Budget *Budget
	// Clock is the time windows, step timeouts, retries and recorded
	// times follow. Nil means SystemClock.
	Clock Clock
	// Logger receives state changes at Info and per-device detail at
	// Debug. Nil discards.
	Logger *slog.Logger
	// ControlInterval is how often a run reads the cancel and resume
	// requests other processes leave in the store. Default 1 s.
	ControlInterval time.Duration
	// FollowInterval is how often a run of a job with follow = true and no
	// windows re-resolves its target while it has devices left. Default 5
	// minutes.
	FollowInterval time.Duration
}

// Runner carries out runs of jobs. One Runner serves any number of runs,
// concurrently, sharing its hub, budget and store; it is safe for
// concurrent use.
type Runner struct {
	hub     Hub
	rec     Recorder
	budget  *Budget
	clock   Clock
	log     *slog.Logger
	control time.Duration
	follow  time.Duration
}

// New returns a Runner for cfg.
func New(cfg Config) (*Runner, error) {
	if cfg.Hub == nil {
		return nil, errors.New("new runner: Hub is required")
	}
	r := &Runner{hub: cfg.Hub, rec: cfg.Recorder, budget: cfg.Budget, clock: cfg.Clock, log: cfg.Logger,
		control: cfg.ControlInterval, follow: cfg.FollowInterval}
	if r.budget == nil {
		r.budget = NewBudgetQuota(unmetered())
	}
	if r.clock == nil {
		r.clock = SystemClock{}
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.control <= 0 {
		r.control = time.Second
	}
	if r.follow <= 0 {
		r.follow = 5 * time.Minute
	}
	return r, nil
}

func unmetered() Quota {
	q, _ := TierQuota("", 0)
	return q
}

// Budget returns the runner's quota budget.
func (r *Runner) Budget() *Budget { return r.budget }

// Request asks for one run of a job.
type Request struct {
	// Job is the job to run; required.
	Job *jobs.Job
	// RunID names the run. Empty means state.NewRunID(job, Slot), with a
	// suffix when a manual run of the same second exists.
	RunID string
	// Trigger says what created the run; empty means state.TriggerManual.
	Trigger state.Trigger
	// Slot is the schedule slot the run is for, or its start time for a
	// manual run; zero means now.
	Slot time.Time
	// Vars are the run's variables as a JSON object, sensitive values
	// already redacted (jobs.Config.RedactedVariables), for the record.
	Vars json.RawMessage
	// PlanHash, when set, must equal the plan hash of the job and its
	// resolved targets (see PlanHash); otherwise the run is refused with a
	// *PlanMismatchError before anything is recorded or sent.
	PlanHash string
	// IgnoreWindows starts devices whatever the job's windows say.
	IgnoreWindows bool
	// Progress, when set, receives snapshots of the run: at each state
	// change and every few hundred milliseconds while it runs. It is called
	// from the run's goroutine and must not block.
	Progress func(Snapshot)
	// Drain, when closed, stops the run from starting devices; the run
	// returns once the executions in flight have finished, left unfinished
	// for a later Resume (Result.Interrupted).
	Drain <-chan struct{}
}

// Result is how a run ended, or where it was left.
type Result struct {
	RunID  string
	State  state.RunState
	Reason string
	Counts state.Counts
	// Interrupted is true when the run was drained or its context ended
	// before it finished; Resume carries it on.
	Interrupted bool
	// PlanHash is the plan hash of the run's initial target set.
	PlanHash string
	// TwinReads and Queries count the calls the run made to follow its
	// devices' progress (twin reads, and batched twin queries).
	TwinReads, Queries int64
}

// PlanMismatchError refuses a run whose plan changed since it was planned.
type PlanMismatchError struct {
	Want, Got string
}

func (e *PlanMismatchError) Error() string {
	return fmt.Sprintf("plan changed: -plan-hash is %s but the job and its targets now hash to %s; run hubflow plan again", e.Want, e.Got)
}

// ErrJobChanged is wrapped when Resume is given a job whose content or
// variables differ from the run's.
var ErrJobChanged = errors.New("job changed since the run started")

// Run creates a run of req.Job and carries it out: it resolves and records
// the target set, then starts devices as the rollout, windows and quotas
// allow, follows each through its steps, and returns when the run reached
// a final state, or when it was drained or ctx ended (Interrupted). An
// error means the run could not be started or could no longer be recorded.
func (r *Runner) Run(ctx context.Context, req Request) (*Result, error) {
	job := req.Job
	if job == nil || len(job.Steps) == 0 {
		return nil, errors.New("run: a job with at least one step is required")
	}
	if r.rec == nil {
		return nil, errors.New("run: the runner has no Recorder")
	}
	targets, err := r.resolve(ctx, job)
	if err != nil {
		return nil, err
	}
	hash := PlanHash(job, targets)
	if req.PlanHash != "" && req.PlanHash != hash {
		return nil, &PlanMismatchError{Want: req.PlanHash, Got: hash}
	}
	trigger := req.Trigger
	if trigger == "" {
		trigger = state.TriggerManual
	}
	slot := req.Slot
	if slot.IsZero() {
		slot = r.clock.Now()
	}
	runID, err := r.createRun(ctx, req, trigger, slot, hash)
	if err != nil {
		return nil, err
	}
	log := r.log.With(slog.String(keyRun, runID), slog.String(keyJob, job.Name))
	log.Info("run created", slog.Int("devices", len(targets)), slog.String("plan_hash", hash))

	e := newEngine(r, req, runID, log)
	recs := make([]state.Target, 0, len(targets))
	for _, t := range targets {
		reason := t.SkipReason
		d := &device{id: t.ID, twin: t.Twin}
		if reason == "" {
			d.gate, reason = e.gates.forDevice(t.ID, t.Twin)
		}
		recs = append(recs, state.Target{DeviceID: t.ID, SkipReason: reason})
		if reason != "" {
			d.done, d.outcome = true, state.ExecSkipped
		}
		e.add(d)
	}
	if err := r.rec.RecordTargets(ctx, runID, recs); err != nil {
		return nil, fmt.Errorf("run %s: %w", runID, err)
	}
	targets, recs = nil, nil // the engine keeps what it needs
	res, err := e.run(ctx)
	if res != nil {
		res.PlanHash = hash
	}
	return res, err
}

func (r *Runner) createRun(ctx context.Context, req Request, trigger state.Trigger, slot time.Time, hash string) (string, error) {
	steps := make([]string, len(req.Job.Steps))
	for i, s := range req.Job.Steps {
		steps[i] = s.Name
	}
	nr := state.NewRun{
		Job: req.Job.Name, FileHash: req.Job.Hash(), PlanHash: hash, Vars: req.Vars,
		Trigger: trigger, Window: windowNames(req.Job), Steps: steps, State: state.RunPending,
	}
	for n := 1; ; n++ {
		nr.ID = req.RunID
		if nr.ID == "" {
			suffix := ""
			if n > 1 {
				suffix = strconv.Itoa(n)
			}
			nr.ID = state.NewRunID(req.Job.Name, slot, suffix)
		}
		err := r.rec.CreateRun(ctx, nr)
		if err == nil {
			return nr.ID, nil
		}
		// A scheduled slot or a given id is one run; manual runs of the same
		// second are told apart.
		if !errors.Is(err, state.ErrRunExists) || req.RunID != "" || trigger == state.TriggerSchedule || n >= 100 {
			return "", fmt.Errorf("create run of job %s: %w", req.Job.Name, err)
		}
	}
}

// Resume carries on an unfinished run after a crash, an interrupt or a
// restart of the process: req.Job must be the run's job with the same
// content and variables (ErrJobChanged otherwise). Steps that succeeded are
// never invoked again; an execution caught between recording "invoking"
// and learning the answer is reconciled from the device's twin before
// anything is sent again. A finished run is returned as it is.
// req.RunID, Slot, Trigger, Vars and PlanHash are ignored.
func (r *Runner) Resume(ctx context.Context, runID string, req Request) (*Result, error) {
	job := req.Job
	if job == nil {
		return nil, errors.New("resume: the run's job is required")
	}
	if r.rec == nil {
		return nil, errors.New("resume: the runner has no Recorder")
	}
	run, err := r.rec.LoadRun(ctx, runID)
	if err != nil {
		return nil, fmt.Errorf("resume: %w", err)
	}
	if run.State.Finished() {
		return &Result{RunID: runID, State: run.State, Reason: run.Reason, Counts: run.Counts, PlanHash: run.PlanHash}, nil
	}
	if run.Job != job.Name {
		return nil, fmt.Errorf("resume run %s: it is a run of job %q, not %q", runID, run.Job, job.Name)
	}
	if run.FileHash != job.Hash() {
		return nil, fmt.Errorf("resume run %s: %w (hash %s then, %s now); give the same job file and variables", runID, ErrJobChanged, short(run.FileHash), short(job.Hash()))
	}
	if run.State == state.RunPending {
		// A run is pending until its target set is recorded and it starts;
		// a crash in between leaves the set partial or empty, so it is
		// resolved again (devices already recorded stay as they are).
		if err := r.recordTargets(ctx, job, runID, req.IgnoreWindows); err != nil {
			return nil, fmt.Errorf("resume run %s: %w", runID, err)
		}
	}
	devs, err := r.rec.RunDevices(ctx, runID, state.DeviceFilter{})
	if err != nil {
		return nil, fmt.Errorf("resume run %s: %w", runID, err)
	}
	execs, err := r.rec.Executions(ctx, runID)
	if err != nil {
		return nil, fmt.Errorf("resume run %s: %w", runID, err)
	}
	log := r.log.With(slog.String(keyRun, runID), slog.String(keyJob, job.Name))
	e := newEngine(r, req, runID, log)
	e.resumed = true

	byDev := map[string][]state.Execution{}
	for _, x := range execs {
		byDev[x.DeviceID] = append(byDev[x.DeviceID], x)
	}
	var open []*device
	for _, sd := range devs {
		d := &device{id: sd.DeviceID}
		if sd.SkipReason != "" {
			d.done, d.outcome = true, state.ExecSkipped
		} else {
			restoreDevice(d, job, byDev[sd.DeviceID])
			e.skipUnrecorded(ctx, d, byDev[sd.DeviceID])
		}
		if !d.done {
			open = append(open, d)
		}
		e.add(d)
	}
	// Twins of unfinished devices are read again: device-local windows
	// need their zone, and nothing of the twin is kept in the history.
	if len(open) > 0 {
		ids := make([]string, len(open))
		for i, d := range open {
			ids[i] = d.id
		}
		twins, err := r.readTwins(ctx, ids)
		if err != nil {
			return nil, fmt.Errorf("resume run %s: %w", runID, err)
		}
		for _, d := range open {
			d.twin = twins[d.id]
			if e.gates.none() {
				continue
			}
			var reason string
			d.gate, reason = e.gates.forDevice(d.id, d.twin)
			// A device whose zone went away while it waited is skipped; one
			// caught mid-step finishes that step without a window.
			if reason != "" && d.mode == modeStart {
				d.pendingSkip = reason
			}
		}
	}
	log.Info("run resumed", slog.Int("devices", len(devs)), slog.Int("unfinished", len(open)))
	res, err := e.run(ctx)
	if res != nil {
		res.PlanHash = run.PlanHash
	}
	return res, err
}

// recordTargets resolves the job's target and records it for the run.
func (r *Runner) recordTargets(ctx context.Context, job *jobs.Job, runID string, ignoreWindows bool) error {
	targets, err := r.resolve(ctx, job)
	if err != nil {
		return err
	}
	gs := newGates(job, ignoreWindows)
	recs := make([]state.Target, 0, len(targets))
	for _, t := range targets {
		reason := t.SkipReason
		if reason == "" {
			_, reason = gs.forDevice(t.ID, t.Twin)
		}
		recs = append(recs, state.Target{DeviceID: t.ID, SkipReason: reason})
	}
	return r.rec.RecordTargets(ctx, runID, recs)
}

// restoreDevice sets a device's position in the run from its recorded
// executions.
func restoreDevice(d *device, job *jobs.Job, execs []state.Execution) {
	byStep := map[int]state.Execution{}
	for _, x := range execs {
		byStep[x.StepIndex] = x
	}
	for i := range job.Steps {
		x, ok := byStep[i]
		if !ok {
			d.step = i
			return
		}
		switch x.State {
		case state.ExecSucceeded:
			continue
		case state.ExecFailed, state.ExecTimedOut, state.ExecSkipped:
			d.step, d.done, d.outcome = i, true, x.State
			return
		}
		d.step = i
		d.attempt = x.Attempt
		d.started = x.StartedAt
		d.invokedAt = x.InvokedAt
		d.progress = progressText(x.Progress)
		switch x.State {
		case state.ExecInvoking:
			d.mode = modeReconcile
		case state.ExecInProgress:
			d.mode = modeFollow
		default:
			// Pending after a failed attempt. The step gets its full time
			// again: it waited out a stopped process. A method is
			// reconciled first: "not online" and transient answers do not
			// prove the call never reached the device.
			d.mode = modeStart
			if job.Steps[i].IsMethod() && x.Attempt > 0 {
				d.mode = modeReconcile
			}
			d.started = time.Time{}
		}
		return
	}
	d.step, d.done, d.outcome = len(job.Steps), true, state.ExecSucceeded
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// progressText turns a recorded progress value back into the text
// jobs.Observation.Progress gives.
func progressText(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}

// progressJSON is the recorded form of a progress text: objects and lists
// as they are, anything else as a JSON string, and null for "".
func progressJSON(text string) json.RawMessage {
	if text == "" {
		return json.RawMessage("null")
	}
	if (text[0] == '{' || text[0] == '[') && json.Valid([]byte(text)) {
		return json.RawMessage(text)
	}
	b, _ := json.Marshal(text)
	return b
}

// isHubError reports whether err came from the hub (as opposed to the
// store or a canceled context); cmd/hubflow maps those to exit code 3.
func isHubError(err error) bool {
	var he *iothub.Error
	return errors.As(err, &he)
}
