package state

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Execution is one device's execution of one step in a run.
type Execution struct {
	RunID        string
	DeviceID     string
	Step         string
	StepIndex    int
	State        ExecState
	Attempt      int
	MethodStatus *int            // nil until the device answered a method
	Response     json.RawMessage // the device's method response; nil if none
	Progress     json.RawMessage // last progress value; nil if none seen
	ProgressAt   time.Time       // when Progress was observed
	Error        string
	StartedAt    time.Time // first invocation (or first state past pending); zero before
	InvokedAt    time.Time // latest invocation; zero before the first
	EndedAt      time.Time // when it reached a final state; zero while unfinished
	UpdatedAt    time.Time // last event
}

// Duration is EndedAt-StartedAt for a finished execution, else 0.
func (e Execution) Duration() time.Duration {
	if e.StartedAt.IsZero() || e.EndedAt.IsZero() {
		return 0
	}
	return e.EndedAt.Sub(e.StartedAt)
}

// Device is one device of a run: its target-set entry and where it is now.
type Device struct {
	DeviceID   string
	State      ExecState // see Counts for how a multi-step device's state is read
	SkipReason string
	Step       string // current step
	StepIndex  int
	Attempt    int             // attempts of the current step
	Progress   json.RawMessage // last progress value; nil if none
	Error      string
	StartedAt  time.Time // first step's start; zero before
	EndedAt    time.Time // zero while unfinished
	UpdatedAt  time.Time
}

// Duration is EndedAt-StartedAt for a finished device, else 0.
func (d Device) Duration() time.Duration {
	if d.StartedAt.IsZero() || d.EndedAt.IsZero() {
		return 0
	}
	return d.EndedAt.Sub(d.StartedAt)
}

// DeviceFilter selects a run's devices. Zero fields do not filter.
type DeviceFilter struct {
	State ExecState
	Limit int // 0 means all
}

// StepStats summarises one step of a run.
type StepStats struct {
	Name  string
	Index int
	// States counts the step's finished executions per final state
	// (succeeded, failed, timed_out, skipped); states with none are absent.
	// Executions still under way are counted per device in Run.Counts.
	States map[ExecState]int
	// P50 and P95 are nearest-rank percentiles of the durations (start to
	// end) of the executions that succeeded; 0 when none did.
	P50, P95 time.Duration
}

// Summary is what `hubflow show` prints above the device list.
type Summary struct {
	Run   Run
	Steps []StepStats
}

// Executions returns every execution of the run, ordered by device and step
// index: what a resumed runner needs to skip work already done.
func (s *Store) Executions(ctx context.Context, runID string) ([]Execution, error) {
	info, err := s.runInfo(ctx, runID)
	if err != nil {
		return nil, fmt.Errorf("list executions of run %s: %w", runID, err)
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT device_id, step, step_index, state, attempt, method_status, response,
		progress, progress_ms, error, started_ms, invoked_ms, ended_ms, updated_ms
		FROM executions WHERE run_no = ? ORDER BY device_id, step_index`, info.no)
	if err != nil {
		return nil, fmt.Errorf("list executions of run %s: %w", runID, describe(s.path, err))
	}
	defer rows.Close()
	var out []Execution
	for rows.Next() {
		x, err := scanExecution(rows)
		if err != nil {
			return nil, fmt.Errorf("list executions of run %s: %w", runID, describe(s.path, err))
		}
		x.RunID = runID
		out = append(out, x)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list executions of run %s: %w", runID, describe(s.path, err))
	}
	return out, nil
}

func scanExecution(sc scanner) (Execution, error) {
	var x Execution
	var state string
	var response, progress sql.NullString
	var progressAt, started, invoked, ended sql.NullInt64
	var updated int64
	if err := sc.Scan(&x.DeviceID, &x.Step, &x.StepIndex, &state, &x.Attempt, &x.MethodStatus, &response, &progress,
		&progressAt, &x.Error, &started, &invoked, &ended, &updated); err != nil {
		return Execution{}, err
	}
	x.State = ExecState(state)
	if response.Valid {
		x.Response = json.RawMessage(response.String)
	}
	if progress.Valid {
		x.Progress = json.RawMessage(progress.String)
	}
	x.ProgressAt = fromNullMillis(progressAt)
	x.StartedAt = fromNullMillis(started)
	x.InvokedAt = fromNullMillis(invoked)
	x.EndedAt = fromNullMillis(ended)
	x.UpdatedAt = fromMillis(updated)
	return x, nil
}

// RunDevices returns the run's devices that match f, ordered by device id.
func (s *Store) RunDevices(ctx context.Context, runID string, f DeviceFilter) ([]Device, error) {
	info, err := s.runInfo(ctx, runID)
	if err != nil {
		return nil, fmt.Errorf("list devices of run %s: %w", runID, err)
	}
	q := `SELECT d.device_id, d.state, d.skip_reason, d.step, d.step_index, d.attempt, x.progress, d.error,
		d.started_ms, d.ended_ms, coalesce(x.updated_ms, d.ended_ms)
		FROM run_devices d
		LEFT JOIN executions x ON x.run_no = d.run_no AND x.device_id = d.device_id AND x.step = d.step
		WHERE d.run_no = ?`
	args := []any{info.no}
	if f.State != "" {
		q += " AND d.state = ?"
		args = append(args, string(f.State))
	}
	q += " ORDER BY d.device_id"
	if f.Limit > 0 {
		q += " LIMIT ?"
		args = append(args, f.Limit)
	}
	rows, err := s.rdb.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list devices of run %s: %w", runID, describe(s.path, err))
	}
	defer rows.Close()
	var out []Device
	for rows.Next() {
		var d Device
		var state string
		var progress sql.NullString
		var started, ended, updated sql.NullInt64
		if err := rows.Scan(&d.DeviceID, &state, &d.SkipReason, &d.Step, &d.StepIndex, &d.Attempt, &progress, &d.Error,
			&started, &ended, &updated); err != nil {
			return nil, fmt.Errorf("list devices of run %s: %w", runID, describe(s.path, err))
		}
		d.State = ExecState(state)
		if progress.Valid {
			d.Progress = json.RawMessage(progress.String)
		}
		d.StartedAt = fromNullMillis(started)
		d.EndedAt = fromNullMillis(ended)
		d.UpdatedAt = fromNullMillis(updated)
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list devices of run %s: %w", runID, describe(s.path, err))
	}
	return out, nil
}

// RunSummary returns the run with per-step state counts and p50/p95
// durations, read from one snapshot of the database.
func (s *Store) RunSummary(ctx context.Context, runID string) (Summary, error) {
	tx, err := s.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return Summary{}, fmt.Errorf("summarise run %s: %w", runID, describe(s.path, err))
	}
	defer tx.Rollback()
	r, err := scanRun(tx.QueryRowContext(ctx, "SELECT "+runColumns+" FROM runs WHERE id = ?", runID))
	if errors.Is(err, sql.ErrNoRows) {
		return Summary{}, fmt.Errorf("summarise run %s: %w", runID, ErrRunNotFound)
	}
	if err != nil {
		return Summary{}, fmt.Errorf("summarise run %s: %w", runID, describe(s.path, err))
	}
	var no int64
	if err := tx.QueryRowContext(ctx, "SELECT run_no FROM runs WHERE id = ?", runID).Scan(&no); err != nil {
		return Summary{}, fmt.Errorf("summarise run %s: %w", runID, describe(s.path, err))
	}
	sum := Summary{Run: r}
	byName := map[string]*StepStats{}
	for i, name := range r.Steps {
		sum.Steps = append(sum.Steps, StepStats{Name: name, Index: i, States: map[ExecState]int{}})
	}
	for i := range sum.Steps {
		byName[sum.Steps[i].Name] = &sum.Steps[i]
	}
	rows, err := tx.QueryContext(ctx, `SELECT step, state, COUNT(*) FROM executions
		WHERE run_no = ? AND ended_ms IS NOT NULL GROUP BY step, state ORDER BY step, state`, no)
	if err != nil {
		return Summary{}, fmt.Errorf("summarise run %s: %w", runID, describe(s.path, err))
	}
	for rows.Next() {
		var step, state string
		var n int
		if err := rows.Scan(&step, &state, &n); err != nil {
			rows.Close()
			return Summary{}, fmt.Errorf("summarise run %s: %w", runID, describe(s.path, err))
		}
		st := byName[step]
		if st == nil {
			// A step the run's step list does not name (recorded by
			// an older plan); show it after the known ones.
			sum.Steps = append(sum.Steps, StepStats{Name: step, Index: len(sum.Steps), States: map[ExecState]int{}})
			byName = map[string]*StepStats{}
			for i := range sum.Steps {
				byName[sum.Steps[i].Name] = &sum.Steps[i]
			}
			st = byName[step]
		}
		st.States[ExecState(state)] = n
	}
	if err := rows.Close(); err != nil {
		return Summary{}, fmt.Errorf("summarise run %s: %w", runID, describe(s.path, err))
	}
	if err := rows.Err(); err != nil {
		return Summary{}, fmt.Errorf("summarise run %s: %w", runID, describe(s.path, err))
	}
	for i := range sum.Steps {
		st := &sum.Steps[i]
		n := st.States[ExecSucceeded]
		if n == 0 {
			continue
		}
		if st.P50, err = percentile(ctx, tx, no, st.Name, n, 50); err == nil {
			st.P95, err = percentile(ctx, tx, no, st.Name, n, 95)
		}
		if err != nil {
			return Summary{}, fmt.Errorf("summarise run %s: step %s durations: %w", runID, st.Name, describe(s.path, err))
		}
	}
	return sum, nil
}

// percentile returns the nearest-rank p-th percentile of the durations of
// the step's n succeeded executions, walking the executions_finished index
// rather than sorting rows.
func percentile(ctx context.Context, tx *sql.Tx, runNo int64, step string, n, p int) (time.Duration, error) {
	rank := (n*p + 99) / 100 // ceil(n*p/100), 1-based
	if rank < 1 {
		rank = 1
	}
	var ms sql.NullInt64
	err := tx.QueryRowContext(ctx, `SELECT ended_ms - started_ms FROM executions
		WHERE run_no = ? AND step = ? AND state = 'succeeded' AND ended_ms IS NOT NULL
		ORDER BY ended_ms - started_ms LIMIT 1 OFFSET ?`, runNo, step, rank-1).Scan(&ms)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return time.Duration(ms.Int64) * time.Millisecond, nil
}

// TimelineEntry is one execution of a device, with its run's job and the
// events that make it up.
type TimelineEntry struct {
	Job       string
	Execution Execution
	Events    []Event
}

// DeviceTimeline returns the device's executions across runs, oldest first,
// each with its events (state changes, progress changes, notes) in the order
// they were recorded. In a run where the device was skipped before any
// step (when the targets were resolved), its entry has no step, the state
// skipped and the reason as its error. limit bounds the number of runs looked at, newest
// kept; 0 means all.
func (s *Store) DeviceTimeline(ctx context.Context, deviceID string, limit int) ([]TimelineEntry, error) {
	tx, err := s.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("device %s timeline: %w", deviceID, describe(s.path, err))
	}
	defer tx.Rollback()
	q := `SELECT r.run_no, r.id, r.job FROM run_devices d JOIN runs r ON r.run_no = d.run_no
		WHERE d.device_id = ? ORDER BY r.created_ms DESC, r.run_no DESC`
	args := []any{deviceID}
	if limit > 0 {
		q += " LIMIT ?"
		args = append(args, limit)
	}
	type runRef struct {
		no      int64
		id, job string
	}
	var runs []runRef
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("device %s timeline: %w", deviceID, describe(s.path, err))
	}
	for rows.Next() {
		var r runRef
		if err := rows.Scan(&r.no, &r.id, &r.job); err != nil {
			rows.Close()
			return nil, fmt.Errorf("device %s timeline: %w", deviceID, describe(s.path, err))
		}
		runs = append(runs, r)
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("device %s timeline: %w", deviceID, describe(s.path, err))
	}
	var out []TimelineEntry
	for i := len(runs) - 1; i >= 0; i-- {
		r := runs[i]
		entries, err := deviceRunTimeline(ctx, tx, r.no, r.id, r.job, deviceID)
		if err != nil {
			return nil, fmt.Errorf("device %s timeline: %w", deviceID, describe(s.path, err))
		}
		out = append(out, entries...)
	}
	return out, nil
}

func deviceRunTimeline(ctx context.Context, tx *sql.Tx, runNo int64, runID, job, deviceID string) ([]TimelineEntry, error) {
	rows, err := tx.QueryContext(ctx, `SELECT device_id, step, step_index, state, attempt, method_status, response,
		progress, progress_ms, error, started_ms, invoked_ms, ended_ms, updated_ms
		FROM executions WHERE run_no = ? AND device_id = ? ORDER BY step_index`, runNo, deviceID)
	if err != nil {
		return nil, err
	}
	var out []TimelineEntry
	index := map[string]int{}
	for rows.Next() {
		x, err := scanExecution(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		x.RunID = runID
		index[x.Step] = len(out)
		out = append(out, TimelineEntry{Job: job, Execution: x})
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return notRun(ctx, tx, runNo, runID, job, deviceID)
	}
	rows, err = tx.QueryContext(ctx, `SELECT id, step, kind, state, attempt, progress, method_status, response, detail,
		error, observed_ms FROM events WHERE run_no = ? AND device_id = ? ORDER BY id`, runNo, deviceID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var ev Event
		var kind string
		var state, progress, response, detail, errText sql.NullString
		var attempt sql.NullInt64
		var observed int64
		if err := rows.Scan(&ev.ID, &ev.Step, &kind, &state, &attempt, &progress, &ev.MethodStatus, &response, &detail,
			&errText, &observed); err != nil {
			return nil, err
		}
		ev.RunID, ev.DeviceID, ev.Kind = runID, deviceID, EventKind(kind)
		ev.State = ExecState(state.String)
		ev.Attempt = int(attempt.Int64)
		if progress.Valid {
			ev.Progress = json.RawMessage(progress.String)
		}
		if response.Valid {
			ev.Response = json.RawMessage(response.String)
		}
		ev.Detail, ev.Error = detail.String, errText.String
		ev.ObservedAt = fromMillis(observed)
		i, ok := index[ev.Step]
		if !ok {
			continue
		}
		ev.StepIndex = out[i].Execution.StepIndex
		out[i].Events = append(out[i].Events, ev)
	}
	return out, rows.Err()
}

// notRun is the timeline of a device that ran no step in a run: one that
// was skipped when the targets were resolved (it does not exist, its time
// zone is unknown…) says so, with the reason as its one event, observed
// when it was recorded; one still waiting for its first step has none.
func notRun(ctx context.Context, tx *sql.Tx, runNo int64, runID, job, deviceID string) ([]TimelineEntry, error) {
	var st, reason string
	var ended sql.NullInt64
	err := tx.QueryRowContext(ctx, `SELECT state, skip_reason, ended_ms FROM run_devices WHERE run_no = ? AND device_id = ?`,
		runNo, deviceID).Scan(&st, &reason, &ended)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && (ExecState(st) != ExecSkipped || reason == "")) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	at := fromMillis(ended.Int64)
	x := Execution{RunID: runID, DeviceID: deviceID, State: ExecSkipped, Error: reason, EndedAt: at, UpdatedAt: at}
	ev := Event{RunID: runID, DeviceID: deviceID, Kind: KindState, State: ExecSkipped, Error: reason, ObservedAt: at}
	return []TimelineEntry{{Job: job, Execution: x, Events: []Event{ev}}}, nil
}

// PruneResult counts what Prune removed (or, for a dry run, would remove).
type PruneResult struct {
	Runs       int64
	Devices    int64
	Executions int64
	Events     int64
}

// Prune removes the runs that ended before cutoff, with their devices,
// executions and events, one run per transaction so that a run being
// recorded meanwhile waits only briefly. Unfinished runs are never removed.
// With dryRun it only counts. The file's freed pages are returned to the
// file system afterwards.
func (s *Store) Prune(ctx context.Context, cutoff time.Time, dryRun bool) (PruneResult, error) {
	var res PruneResult
	rows, err := s.rdb.QueryContext(ctx, `SELECT run_no, id FROM runs
		WHERE state IN ('succeeded', 'failed', 'aborted', 'cancelled') AND ended_ms < ? ORDER BY run_no`, cutoff.UnixMilli())
	if err != nil {
		return res, fmt.Errorf("prune history: %w", describe(s.path, err))
	}
	type victim struct {
		no int64
		id string
	}
	var victims []victim
	for rows.Next() {
		var v victim
		if err := rows.Scan(&v.no, &v.id); err != nil {
			rows.Close()
			return res, fmt.Errorf("prune history: %w", describe(s.path, err))
		}
		victims = append(victims, v)
	}
	if err := rows.Close(); err != nil {
		return res, fmt.Errorf("prune history: %w", describe(s.path, err))
	}
	if dryRun {
		for _, v := range victims {
			var d, x, e int64
			err := s.rdb.QueryRowContext(ctx, `SELECT
				(SELECT COUNT(*) FROM run_devices WHERE run_no = ?1),
				(SELECT COUNT(*) FROM executions WHERE run_no = ?1),
				(SELECT COUNT(*) FROM events WHERE run_no = ?1)`, v.no).Scan(&d, &x, &e)
			if err != nil {
				return res, fmt.Errorf("prune history: %w", describe(s.path, err))
			}
			res.Runs++
			res.Devices += d
			res.Executions += x
			res.Events += e
		}
		return res, nil
	}
	if s.w == nil {
		return res, s.errReadOnly("prune history")
	}
	for _, v := range victims {
		var one PruneResult
		err := s.w.do(ctx, func(ctx context.Context, tx *sql.Tx) error {
			one = PruneResult{}
			for _, d := range []struct {
				table string
				n     *int64
			}{{"events", &one.Events}, {"executions", &one.Executions}, {"run_devices", &one.Devices}, {"runs", &one.Runs}} {
				// table names are the constants above.
				res, err := tx.ExecContext(ctx, "DELETE FROM "+d.table+" WHERE run_no = ?", v.no)
				if err != nil {
					return err
				}
				*d.n, _ = res.RowsAffected()
			}
			return nil
		})
		if err != nil {
			return res, fmt.Errorf("prune run %s: %w", v.id, err)
		}
		s.forgetRun(v.id)
		res.Runs += one.Runs
		res.Devices += one.Devices
		res.Executions += one.Executions
		res.Events += one.Events
	}
	if res.Runs > 0 {
		err := s.w.do(ctx, func(ctx context.Context, tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, "PRAGMA incremental_vacuum")
			return err
		})
		if err != nil {
			return res, fmt.Errorf("prune history: reclaim space: %w", err)
		}
	}
	return res, nil
}
