package state

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Run is one recorded run of a job.
type Run struct {
	ID       string
	Job      string
	FileHash string
	PlanHash string
	// Vars is the JSON object of the run's variables as the caller recorded
	// them, with secrets already redacted.
	Vars    json.RawMessage
	Trigger Trigger
	// Window describes the maintenance window the run is in or waits for.
	Window string
	// Steps are the job's step names in order.
	Steps  []string
	State  RunState
	Reason string // why the run ended, paused or aborted; empty otherwise
	Counts Counts // devices per state, kept up to date by the store

	CreatedAt time.Time
	StartedAt time.Time // first time the run was running; zero before
	EndedAt   time.Time // when it reached a final state; zero before

	CancelRequested bool
	ResumeRequested bool
}

// NewRun is what CreateRun records about a new run.
type NewRun struct {
	ID       string // see NewRunID
	Job      string
	FileHash string
	PlanHash string
	Vars     json.RawMessage // a JSON object, secrets redacted; nil means {}
	Trigger  Trigger
	Window   string
	Steps    []string // step names in order
	State    RunState // zero means RunPending
}

// Target is one device of a run's resolved target set.
type Target struct {
	DeviceID string
	// SkipReason, when set, records the device as skipped with this reason
	// (for example a missing or invalid time zone for timezone_from).
	SkipReason string
}

// Control is what another process may have asked of a run.
type Control struct {
	State           RunState
	CancelRequested bool
	ResumeRequested bool
}

// RunFilter selects runs for ListRuns. Zero fields do not filter.
type RunFilter struct {
	Job    string
	State  RunState
	Since  time.Time // created at or after
	Until  time.Time // created before
	Device string    // runs whose target set includes this device
	Limit  int       // at most this many, newest first; 0 means all
}

// NewRunID derives a human-typable run id from the job name and the run's
// schedule slot (or start time for manual runs), e.g.
// "firmware-2-1-0-20261122T010000Z". A non-empty suffix is appended to tell
// apart manual runs started in the same second; a scheduled run has none, so
// that a restarted scheduler finds the slot it already launched.
func NewRunID(job string, slot time.Time, suffix string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(job) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			dash = false
			continue
		}
		if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	id := strings.TrimSuffix(b.String(), "-")
	if id == "" {
		id = "run"
	}
	id += "-" + slot.UTC().Format("20060102T150405Z")
	if suffix != "" {
		id += "-" + suffix
	}
	return id
}

// CreateRun records a new run and returns once it is committed. It returns
// ErrRunExists if a run with the same id was recorded before.
func (s *Store) CreateRun(ctx context.Context, r NewRun) error {
	if s.w == nil {
		return s.errReadOnly("create run")
	}
	if r.ID == "" || r.Job == "" {
		return fmt.Errorf("create run: id and job are required")
	}
	if r.State == "" {
		r.State = RunPending
	}
	if !r.State.Valid() {
		return fmt.Errorf("create run %s: unknown state %q", r.ID, r.State)
	}
	if !r.Trigger.Valid() {
		return fmt.Errorf("create run %s: unknown trigger %q", r.ID, r.Trigger)
	}
	vars := "{}"
	if len(r.Vars) > 0 {
		if !json.Valid(r.Vars) {
			return fmt.Errorf("create run %s: vars are not valid JSON", r.ID)
		}
		vars = redactSecrets(string(r.Vars))
	}
	steps := r.Steps
	if steps == nil {
		steps = []string{}
	}
	stepsJSON, err := json.Marshal(steps)
	if err != nil {
		return fmt.Errorf("create run %s: %w", r.ID, err)
	}
	now := s.now().UnixMilli()
	var started, ended any
	if r.State == RunRunning {
		started = now
	}
	if r.State.Finished() {
		ended = now
	}
	var no int64
	err = s.w.do(ctx, func(ctx context.Context, tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `INSERT INTO runs
			(id, job, file_hash, plan_hash, vars, triggered_by, window_name, steps, state, created_ms, started_ms, ended_ms)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO NOTHING RETURNING run_no`,
			r.ID, r.Job, r.FileHash, r.PlanHash, vars, string(r.Trigger), r.Window, string(stepsJSON), string(r.State),
			now, started, ended).Scan(&no)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrRunExists
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("create run %s: %w", r.ID, err)
	}
	s.rememberRun(r.ID, runInfo{no: no, steps: append([]string(nil), steps...)})
	return nil
}

// UpdateRunState moves a run to state with reason (empty clears it) and
// returns once that is committed. Entering running the first time sets the
// start time; a final state sets the end time; leaving paused consumes a
// pending resume request. It returns ErrRunNotFound, or ErrRunFinished when
// the run has already reached a different final state.
func (s *Store) UpdateRunState(ctx context.Context, runID string, state RunState, reason string) error {
	if s.w == nil {
		return s.errReadOnly("update run")
	}
	if !state.Valid() {
		return fmt.Errorf("update run %s: unknown state %q", runID, state)
	}
	reason = redactSecrets(reason)
	now := s.now().UnixMilli()
	err := s.w.do(ctx, func(ctx context.Context, tx *sql.Tx) error {
		cur, err := runStateTx(ctx, tx, runID)
		if err != nil {
			return err
		}
		if cur.Finished() {
			if cur == state {
				return nil
			}
			return ErrRunFinished
		}
		var ended any
		if state.Finished() {
			ended = now
		}
		_, err = tx.ExecContext(ctx, `UPDATE runs SET
				state = ?, reason = ?, ended_ms = ?,
				started_ms = CASE WHEN started_ms IS NULL AND ? = 'running' THEN ? ELSE started_ms END,
				resume_requested = CASE WHEN state = 'paused' AND ? <> 'paused' THEN 0 ELSE resume_requested END
			WHERE id = ?`,
			string(state), reason, ended, string(state), now, string(state), runID)
		return err
	})
	if err != nil {
		return fmt.Errorf("update run %s to %s: %w", runID, state, err)
	}
	return nil
}

// SetRunWindow records the maintenance window the run is in or waits for.
func (s *Store) SetRunWindow(ctx context.Context, runID, window string) error {
	if s.w == nil {
		return s.errReadOnly("set run window")
	}
	err := s.w.do(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "UPDATE runs SET window_name = ? WHERE id = ?", window, runID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrRunNotFound
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("set window of run %s: %w", runID, err)
	}
	return nil
}

// RequestCancel asks the process running runID to cancel it. It returns
// ErrRunNotFound, or ErrRunFinished when there is nothing left to cancel.
func (s *Store) RequestCancel(ctx context.Context, runID string) error {
	return s.request(ctx, runID, "cancel_requested", "cancel")
}

// RequestResume asks the process holding a paused runID to resume it. It
// returns ErrRunNotFound, or ErrRunFinished.
func (s *Store) RequestResume(ctx context.Context, runID string) error {
	return s.request(ctx, runID, "resume_requested", "resume")
}

func (s *Store) request(ctx context.Context, runID, column, what string) error {
	if s.w == nil {
		return s.errReadOnly("request " + what)
	}
	err := s.w.do(ctx, func(ctx context.Context, tx *sql.Tx) error {
		cur, err := runStateTx(ctx, tx, runID)
		if err != nil {
			return err
		}
		if cur.Finished() {
			return ErrRunFinished
		}
		// column is one of two constants above, never input.
		_, err = tx.ExecContext(ctx, "UPDATE runs SET "+column+" = 1 WHERE id = ?", runID)
		return err
	})
	if err != nil {
		return fmt.Errorf("request %s of run %s: %w", what, runID, err)
	}
	return nil
}

func runStateTx(ctx context.Context, tx *sql.Tx, runID string) (RunState, error) {
	var st string
	err := tx.QueryRowContext(ctx, "SELECT state FROM runs WHERE id = ?", runID).Scan(&st)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrRunNotFound
	}
	return RunState(st), err
}

// ReadControl returns the run's state and the requests other processes have
// made of it. It is cheap enough to poll every second.
func (s *Store) ReadControl(ctx context.Context, runID string) (Control, error) {
	var c Control
	var st string
	err := s.rdb.QueryRowContext(ctx, "SELECT state, cancel_requested, resume_requested FROM runs WHERE id = ?", runID).
		Scan(&st, &c.CancelRequested, &c.ResumeRequested)
	if errors.Is(err, sql.ErrNoRows) {
		return Control{}, fmt.Errorf("read control of run %s: %w", runID, ErrRunNotFound)
	}
	if err != nil {
		return Control{}, fmt.Errorf("read control of run %s: %w", runID, describe(s.path, err))
	}
	c.State = RunState(st)
	return c, nil
}

// RecordTargets adds devices to a run's target set and returns once that is
// committed. Devices already in the set are left as they are, so that a run
// whose target query is re-run at each window opening can pass the whole
// result again. Devices with a SkipReason are recorded as skipped.
func (s *Store) RecordTargets(ctx context.Context, runID string, targets []Target) error {
	if s.w == nil {
		return s.errReadOnly("record targets")
	}
	for _, t := range targets {
		if t.DeviceID == "" {
			return fmt.Errorf("record targets of run %s: empty device id", runID)
		}
	}
	info, err := s.runInfo(ctx, runID)
	if err != nil {
		return fmt.Errorf("record targets of run %s: %w", runID, err)
	}
	now := s.now().UnixMilli()
	err = s.w.do(ctx, func(ctx context.Context, tx *sql.Tx) error {
		const per = 500
		for len(targets) > 0 {
			n := min(per, len(targets))
			chunk := targets[:n]
			targets = targets[n:]
			var q strings.Builder
			q.WriteString("INSERT INTO run_devices (run_no, device_id, state, skip_reason, error, ended_ms) VALUES ")
			args := make([]any, 0, 6*n)
			for i, t := range chunk {
				if i > 0 {
					q.WriteByte(',')
				}
				q.WriteString("(?, ?, ?, ?, ?, ?)")
				st, reason, ended := ExecPending, "", any(nil)
				if t.SkipReason != "" {
					st, reason, ended = ExecSkipped, redactSecrets(t.SkipReason), now
				}
				args = append(args, info.no, t.DeviceID, string(st), reason, reason, ended)
			}
			q.WriteString(" ON CONFLICT (run_no, device_id) DO NOTHING")
			if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
				return err
			}
		}
		return recount(ctx, tx, info.no)
	})
	if err != nil {
		return fmt.Errorf("record targets of run %s: %w", runID, err)
	}
	return nil
}

// recount sets a run's device counts from run_devices.
func recount(ctx context.Context, tx *sql.Tx, runNo int64) error {
	rows, err := tx.QueryContext(ctx, "SELECT state, COUNT(*) FROM run_devices WHERE run_no = ? GROUP BY state", runNo)
	if err != nil {
		return err
	}
	var c Counts
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			rows.Close()
			return err
		}
		c.add(ExecState(st), n)
	}
	if err := rows.Close(); err != nil {
		return err
	}
	if err := rows.Err(); err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `UPDATE runs SET n_pending = ?, n_running = ?, n_succeeded = ?, n_failed = ?,
		n_timed_out = ?, n_skipped = ? WHERE run_no = ?`,
		c.Pending, c.Running, c.Succeeded, c.Failed, c.TimedOut, c.Skipped, runNo)
	return err
}

// runInfo returns the fixed facts about a run, from the cache or the
// database.
func (s *Store) runInfo(ctx context.Context, runID string) (runInfo, error) {
	s.runsMu.Lock()
	info, ok := s.runs[runID]
	s.runsMu.Unlock()
	if ok {
		return info, nil
	}
	var steps string
	err := s.rdb.QueryRowContext(ctx, "SELECT run_no, steps FROM runs WHERE id = ?", runID).Scan(&info.no, &steps)
	if errors.Is(err, sql.ErrNoRows) {
		return runInfo{}, ErrRunNotFound
	}
	if err != nil {
		return runInfo{}, describe(s.path, err)
	}
	if err := json.Unmarshal([]byte(steps), &info.steps); err != nil {
		return runInfo{}, fmt.Errorf("run %s: steps: %w", runID, err)
	}
	s.rememberRun(runID, info)
	return info, nil
}

func (s *Store) rememberRun(runID string, info runInfo) {
	s.runsMu.Lock()
	s.runs[runID] = info
	s.runsMu.Unlock()
}

func (s *Store) forgetRun(runID string) {
	s.runsMu.Lock()
	delete(s.runs, runID)
	s.runsMu.Unlock()
}

const runColumns = `id, job, file_hash, plan_hash, vars, triggered_by, window_name, steps, state, reason,
	n_pending, n_running, n_succeeded, n_failed, n_timed_out, n_skipped,
	created_ms, started_ms, ended_ms, cancel_requested, resume_requested`

type scanner interface{ Scan(dest ...any) error }

func scanRun(sc scanner) (Run, error) {
	var r Run
	var vars, trig, steps, st string
	var created int64
	var started, ended sql.NullInt64
	err := sc.Scan(&r.ID, &r.Job, &r.FileHash, &r.PlanHash, &vars, &trig, &r.Window, &steps, &st, &r.Reason,
		&r.Counts.Pending, &r.Counts.Running, &r.Counts.Succeeded, &r.Counts.Failed, &r.Counts.TimedOut, &r.Counts.Skipped,
		&created, &started, &ended, &r.CancelRequested, &r.ResumeRequested)
	if err != nil {
		return Run{}, err
	}
	r.Vars = json.RawMessage(vars)
	r.Trigger = Trigger(trig)
	r.State = RunState(st)
	if err := json.Unmarshal([]byte(steps), &r.Steps); err != nil {
		return Run{}, fmt.Errorf("run %s: steps: %w", r.ID, err)
	}
	r.CreatedAt = fromMillis(created)
	r.StartedAt = fromNullMillis(started)
	r.EndedAt = fromNullMillis(ended)
	return r, nil
}

// LoadRun returns the run with id, or ErrRunNotFound.
func (s *Store) LoadRun(ctx context.Context, id string) (Run, error) {
	r, err := scanRun(s.rdb.QueryRowContext(ctx, "SELECT "+runColumns+" FROM runs WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return Run{}, fmt.Errorf("load run %s: %w", id, ErrRunNotFound)
	}
	if err != nil {
		return Run{}, fmt.Errorf("load run %s: %w", id, describe(s.path, err))
	}
	return r, nil
}

// UnfinishedRuns returns the runs not yet in a final state, oldest first:
// what `hubflow serve` picks up again at start-up.
func (s *Store) UnfinishedRuns(ctx context.Context) ([]Run, error) {
	runs, err := s.queryRuns(ctx, "SELECT "+runColumns+` FROM runs
		WHERE state NOT IN ('succeeded', 'failed', 'aborted', 'cancelled') ORDER BY created_ms, run_no`)
	if err != nil {
		return nil, fmt.Errorf("list unfinished runs: %w", err)
	}
	return runs, nil
}

// ListRuns returns the runs that match f, newest first.
func (s *Store) ListRuns(ctx context.Context, f RunFilter) ([]Run, error) {
	var where []string
	var args []any
	if f.Job != "" {
		where = append(where, "job = ?")
		args = append(args, f.Job)
	}
	if f.State != "" {
		where = append(where, "state = ?")
		args = append(args, string(f.State))
	}
	if !f.Since.IsZero() {
		where = append(where, "created_ms >= ?")
		args = append(args, f.Since.UnixMilli())
	}
	if !f.Until.IsZero() {
		where = append(where, "created_ms < ?")
		args = append(args, f.Until.UnixMilli())
	}
	if f.Device != "" {
		where = append(where, "run_no IN (SELECT run_no FROM run_devices WHERE device_id = ?)")
		args = append(args, f.Device)
	}
	q := "SELECT " + runColumns + " FROM runs"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY created_ms DESC, run_no DESC"
	if f.Limit > 0 {
		q += " LIMIT ?"
		args = append(args, f.Limit)
	}
	runs, err := s.queryRuns(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	return runs, nil
}

func (s *Store) queryRuns(ctx context.Context, q string, args ...any) ([]Run, error) {
	rows, err := s.rdb.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, describe(s.path, err)
	}
	defer rows.Close()
	var runs []Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, describe(s.path, err)
		}
		runs = append(runs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, describe(s.path, err)
	}
	return runs, nil
}

func fromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

func fromNullMillis(ms sql.NullInt64) time.Time {
	if !ms.Valid {
		return time.Time{}
	}
	return fromMillis(ms.Int64)
}
