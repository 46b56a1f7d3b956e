package state

import (
	"context"
	"database/sql"
	"strings"
)

type execKey struct {
	runNo  int64
	device string
	step   string
}

type devKey struct {
	runNo  int64
	device string
}

// rowCache keeps the writer's copy of the executions and run_devices rows of
// devices still in flight, so that most events are folded in without reading
// the row first. Only the writer's connection changes these tables, except
// for another process writing the same file; PRAGMA data_version tells the
// writer when that happened and the cache is dropped.
type rowCache struct {
	execs       map[execKey]execRow
	devs        map[devKey]devRow
	dataVersion int64
}

// maxCached bounds each map; past it the cache starts over. Rows of finished
// executions leave the cache when they finish, so only very wide runs reach
// it.
const maxCached = 100_000

func newRowCache() rowCache {
	return rowCache{execs: make(map[execKey]execRow), devs: make(map[devKey]devRow), dataVersion: -1}
}

func (c *rowCache) reset() {
	clear(c.execs)
	clear(c.devs)
}

// check drops the cache if another connection has committed since the
// writer last looked. It runs inside the writer's transaction, after the
// write lock is held, so no commit can slip in between.
func (c *rowCache) check(ctx context.Context, tx *sql.Tx) error {
	var v int64
	if err := tx.QueryRowContext(ctx, "PRAGMA data_version").Scan(&v); err != nil {
		return err
	}
	if v != c.dataVersion {
		c.reset()
		c.dataVersion = v
	}
	return nil
}

// install keeps the rows of a committed batch.
func (c *rowCache) install(b *batch) {
	if len(c.execs) > maxCached || len(c.devs) > maxCached {
		c.reset()
	}
	for _, x := range b.execs {
		k := execKey{x.runNo, x.device, x.step}
		if x.state.Finished() {
			delete(c.execs, k)
			continue
		}
		c.execs[k] = *x
	}
	for _, d := range b.devs {
		k := devKey{d.row.runNo, d.row.device}
		if d.row.state.Finished() {
			delete(c.devs, k)
			continue
		}
		d.row.exists = true
		c.devs[k] = d.row
	}
}

// batch is what one transaction changed, in first-touched order.
type batch struct {
	execs []*execRow
	devs  []*devEntry
}

type devEntry struct {
	orig  ExecState // state when loaded; "" for a new row
	row   devRow
	dirty bool // row differs from what is stored
}

// applyRows records rows in tx and folds them into executions, run_devices
// and the runs' counts. c may be nil.
func applyRows(ctx context.Context, tx *sql.Tx, rows []row, c *rowCache, prep *stmtCache) (*batch, error) {
	st := &stmts{tx: tx, cache: prep}
	defer st.close()

	b := &batch{}
	execs := make(map[execKey]*execRow)
	devs := make(map[devKey]*devEntry)
	// Rows missing from the cache are read in bulk, one query per run.
	if err := preload(ctx, st, rows, c, execs, devs, b); err != nil {
		return nil, err
	}
	for i := range rows {
		r := &rows[i]
		x := execs[execKey{r.runNo, r.device, r.step}]
		if x.state == "" {
			x.state = ExecPending // first news of this execution
		}
		applyToExecution(x, r)
		d := devs[devKey{r.runNo, r.device}]
		before := d.row
		applyToDevice(&d.row, x, r.steps, r.observed)
		if !d.row.exists || !sameDevice(&before, &d.row) {
			d.dirty = true
		}
	}
	if err := st.insertEvents(ctx, rows); err != nil {
		return nil, err
	}
	if err := st.saveExecs(ctx, b.execs); err != nil {
		return nil, err
	}
	if err := st.saveDevs(ctx, b.devs); err != nil {
		return nil, err
	}
	deltas := make(map[int64]*Counts)
	for _, d := range b.devs {
		if d.orig == d.row.state && d.row.exists {
			continue
		}
		cnt := deltas[d.row.runNo]
		if cnt == nil {
			cnt = &Counts{}
			deltas[d.row.runNo] = cnt
		}
		if d.row.exists {
			cnt.add(d.orig, -1)
		}
		cnt.add(d.row.state, 1)
	}
	for no, cnt := range deltas {
		s, err := st.stmt(ctx, `UPDATE runs SET n_pending = n_pending + ?, n_running = n_running + ?,
			n_succeeded = n_succeeded + ?, n_failed = n_failed + ?, n_timed_out = n_timed_out + ?, n_skipped = n_skipped + ?
			WHERE run_no = ?`)
		if err != nil {
			return nil, err
		}
		if _, err := s.ExecContext(ctx, cnt.Pending, cnt.Running, cnt.Succeeded, cnt.Failed, cnt.TimedOut, cnt.Skipped, no); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// preload fills execs and devs with a working copy of every row the events
// touch: from the cache, from the database, or new.
func preload(ctx context.Context, st *stmts, rows []row, c *rowCache, execs map[execKey]*execRow, devs map[devKey]*devEntry, b *batch) error {
	type missing struct {
		execs []execKey
		devs  []devKey
	}
	miss := map[int64]*missing{}
	need := func(no int64) *missing {
		m := miss[no]
		if m == nil {
			m = &missing{}
			miss[no] = m
		}
		return m
	}
	for i := range rows {
		r := &rows[i]
		ek := execKey{r.runNo, r.device, r.step}
		if _, ok := execs[ek]; !ok {
			x := &execRow{runNo: r.runNo, device: r.device, step: r.step}
			execs[ek] = x
			b.execs = append(b.execs, x)
			if cx, ok := c.getExec(ek); ok {
				*x = cx
				x.remember()
			} else {
				need(r.runNo).execs = append(need(r.runNo).execs, ek)
			}
		}
		dk := devKey{r.runNo, r.device}
		if _, ok := devs[dk]; !ok {
			d := &devEntry{row: devRow{runNo: r.runNo, device: r.device}}
			devs[dk] = d
			b.devs = append(b.devs, d)
			if cd, ok := c.getDev(dk); ok {
				d.row = cd
				d.orig = cd.state
			} else {
				need(r.runNo).devs = append(need(r.runNo).devs, dk)
			}
		}
	}
	for no, m := range miss {
		if err := st.loadExecs(ctx, no, m.execs, execs); err != nil {
			return err
		}
		if err := st.loadDevs(ctx, no, m.devs, devs); err != nil {
			return err
		}
	}
	return nil
}

func (c *rowCache) getExec(k execKey) (execRow, bool) {
	if c == nil {
		return execRow{}, false
	}
	x, ok := c.execs[k]
	return x, ok
}

func (c *rowCache) getDev(k devKey) (devRow, bool) {
	if c == nil {
		return devRow{}, false
	}
	d, ok := c.devs[k]
	return d, ok
}

// rowsPerStatement rows go into one multi-row statement: far fewer
// statement executions than one per row, well under SQLite's limit of bound
// parameters.
const rowsPerStatement = 64

// stmtShapes are the row counts multi-row statements are made of: a batch
// of n rows runs as a few statements of these sizes, so that the writer
// prepares a handful of statement shapes once instead of parsing a new
// one for every batch size.
var stmtShapes = [...]int{rowsPerStatement, 16, 4, 1}

// stmtCache keeps statements prepared on the writer's connection across
// transactions. A statement run on the connection takes part in whatever
// transaction is open on it, so the batches reuse them as they are.
type stmtCache struct {
	conn *sql.Conn
	m    map[string]*sql.Stmt
}

func newStmtCache(conn *sql.Conn) *stmtCache {
	return &stmtCache{conn: conn, m: make(map[string]*sql.Stmt)}
}

func (c *stmtCache) get(ctx context.Context, q string) (*sql.Stmt, error) {
	if s, ok := c.m[q]; ok {
		return s, nil
	}
	s, err := c.conn.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	c.m[q] = s
	return s, nil
}

func (c *stmtCache) close() {
	for q, s := range c.m {
		s.Close()
		delete(c.m, q)
	}
}

// stmts runs the batch's statements: from the writer's cache, or prepared
// for this transaction alone when there is none.
type stmts struct {
	tx    *sql.Tx
	cache *stmtCache
	prep  map[string]*sql.Stmt
}

func (st *stmts) close() {
	for _, s := range st.prep {
		s.Close()
	}
}

func (st *stmts) stmt(ctx context.Context, q string) (*sql.Stmt, error) {
	if st.cache != nil {
		return st.cache.get(ctx, q)
	}
	if s, ok := st.prep[q]; ok {
		return s, nil
	}
	s, err := st.tx.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	if st.prep == nil {
		st.prep = make(map[string]*sql.Stmt)
	}
	st.prep[q] = s
	return s, nil
}

// values returns "(?,…),(?,…)" for n rows of cols columns.
func values(n, cols int) string {
	one := "(" + strings.TrimSuffix(strings.Repeat("?,", cols), ",") + ")"
	return strings.TrimSuffix(strings.Repeat(one+",", n), ",")
}

func inList(n int) string { return "(" + strings.TrimSuffix(strings.Repeat("?,", n), ",") + ")" }

// chunks calls fn for consecutive slices of n items, each of one of the
// stmtShapes sizes.
func chunks(n int, fn func(lo, hi int) error) error {
	lo := 0
	for _, size := range stmtShapes {
		for n-lo >= size {
			if err := fn(lo, lo+size); err != nil {
				return err
			}
			lo += size
		}
	}
	return nil
}

// padIn pads the values of an IN list to the next stmtShapes size by
// repeating the last one, which changes nothing in what the list matches.
func padIn(vals []any) []any {
	n := len(vals)
	size := rowsPerStatement
	for _, s := range stmtShapes {
		if s >= n {
			size = s
		}
	}
	for len(vals) < size {
		vals = append(vals, vals[n-1])
	}
	return vals
}

func (st *stmts) loadExecs(ctx context.Context, runNo int64, keys []execKey, into map[execKey]*execRow) error {
	return chunks(len(keys), func(lo, hi int) error {
		devices := make([]any, 0, hi-lo+1)
		devices = append(devices, runNo)
		seen := map[string]bool{}
		for _, k := range keys[lo:hi] {
			if !seen[k.device] {
				seen[k.device] = true
				devices = append(devices, k.device)
			}
		}
		devices = append(devices[:1], padIn(devices[1:])...)
		s, err := st.stmt(ctx, `SELECT device_id, step, step_index, state, attempt, method_status, response, progress,
			progress_ms, error, started_ms, invoked_ms, ended_ms, updated_ms
			FROM executions WHERE run_no = ? AND device_id IN `+inList(len(devices)-1))
		if err != nil {
			return err
		}
		rows, err := s.QueryContext(ctx, devices...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var x execRow
			var state string
			if err := rows.Scan(&x.device, &x.step, &x.stepIndex, &state, &x.attempt, &x.status, &x.response,
				&x.progress, &x.progressAt, &x.errText, &x.started, &x.invoked, &x.ended, &x.updated); err != nil {
				return err
			}
			dst, ok := into[execKey{runNo, x.device, x.step}]
			if !ok {
				continue // another step of a device this batch touches
			}
			x.runNo = runNo
			x.state = ExecState(state)
			x.remember()
			*dst = x
		}
		return rows.Err()
	})
}

func (st *stmts) loadDevs(ctx context.Context, runNo int64, keys []devKey, into map[devKey]*devEntry) error {
	return chunks(len(keys), func(lo, hi int) error {
		args := make([]any, 0, hi-lo+1)
		args = append(args, runNo)
		for _, k := range keys[lo:hi] {
			args = append(args, k.device)
		}
		args = append(args[:1], padIn(args[1:])...)
		s, err := st.stmt(ctx, `SELECT device_id, state, skip_reason, step, step_index, attempt, error,
			started_ms, ended_ms FROM run_devices WHERE run_no = ? AND device_id IN `+inList(len(args)-1))
		if err != nil {
			return err
		}
		rows, err := s.QueryContext(ctx, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			d := devRow{runNo: runNo, exists: true}
			var state string
			if err := rows.Scan(&d.device, &state, &d.skipReason, &d.step, &d.stepIndex, &d.attempt,
				&d.errText, &d.started, &d.ended); err != nil {
				return err
			}
			d.state = ExecState(state)
			dst := into[devKey{runNo, d.device}]
			dst.row = d
			dst.orig = d.state
		}
		return rows.Err()
	})
}

func (st *stmts) saveExecs(ctx context.Context, all []*execRow) error {
	var full, narrow []*execRow
	for _, x := range all {
		if x.indexChanged() {
			full = append(full, x)
		} else {
			narrow = append(narrow, x)
		}
	}
	if err := st.upsertExecs(ctx, full, `state = excluded.state, step_index = excluded.step_index,
		started_ms = excluded.started_ms, ended_ms = excluded.ended_ms, `); err != nil {
		return err
	}
	// Progress and notes leave the indexed columns out of SET, so SQLite
	// does not even look at the row's executions_finished entry.
	return st.upsertExecs(ctx, narrow, "")
}

func (st *stmts) upsertExecs(ctx context.Context, xs []*execRow, indexed string) error {
	const cols = 15
	return chunks(len(xs), func(lo, hi int) error {
		args := make([]any, 0, cols*(hi-lo))
		for _, x := range xs[lo:hi] {
			args = append(args, x.runNo, x.device, x.step, x.stepIndex, string(x.state), x.attempt, x.status, x.response,
				x.progress, x.progressAt, x.errText, x.started, x.invoked, x.ended, x.updated)
		}
		s, err := st.stmt(ctx, `INSERT INTO executions (run_no, device_id, step, step_index, state, attempt, method_status,
			response, progress, progress_ms, error, started_ms, invoked_ms, ended_ms, updated_ms)
			VALUES `+values(hi-lo, cols)+`
			ON CONFLICT (run_no, device_id, step) DO UPDATE SET `+indexed+`attempt = excluded.attempt,
			method_status = excluded.method_status, response = excluded.response, progress = excluded.progress,
			progress_ms = excluded.progress_ms, error = excluded.error, invoked_ms = excluded.invoked_ms,
			updated_ms = excluded.updated_ms`)
		if err != nil {
			return err
		}
		_, err = s.ExecContext(ctx, args...)
		return err
	})
}

func (st *stmts) saveDevs(ctx context.Context, all []*devEntry) error {
	const cols = 10
	var ds []*devEntry
	for _, d := range all {
		if d.dirty {
			ds = append(ds, d)
		}
	}
	return chunks(len(ds), func(lo, hi int) error {
		args := make([]any, 0, cols*(hi-lo))
		for _, e := range ds[lo:hi] {
			d := &e.row
			args = append(args, d.runNo, d.device, string(d.state), d.skipReason, d.step, d.stepIndex, d.attempt,
				d.errText, d.started, d.ended)
		}
		s, err := st.stmt(ctx, `INSERT INTO run_devices (run_no, device_id, state, skip_reason, step, step_index, attempt,
			error, started_ms, ended_ms) VALUES `+values(hi-lo, cols)+`
			ON CONFLICT (run_no, device_id) DO UPDATE SET
			state = excluded.state, step = excluded.step, step_index = excluded.step_index, attempt = excluded.attempt,
			error = excluded.error, started_ms = excluded.started_ms, ended_ms = excluded.ended_ms`)
		if err != nil {
			return err
		}
		_, err = s.ExecContext(ctx, args...)
		return err
	})
}

func (st *stmts) insertEvents(ctx context.Context, rows []row) error {
	const cols = 12
	return chunks(len(rows), func(lo, hi int) error {
		args := make([]any, 0, cols*(hi-lo))
		for i := range rows[lo:hi] {
			r := &rows[lo+i]
			var state, detail, errText, attempt any
			if r.state != "" {
				state = string(r.state)
			}
			if r.detail != "" {
				detail = r.detail
			}
			if r.errText != "" {
				errText = r.errText
			}
			if r.attempt > 0 {
				attempt = r.attempt
			}
			args = append(args, r.runNo, r.device, r.step, string(r.kind), state, attempt, r.progress, r.status,
				r.response, detail, errText, r.observed)
		}
		s, err := st.stmt(ctx, `INSERT INTO events (run_no, device_id, step, kind, state, attempt, progress,
			method_status, response, detail, error, observed_ms) VALUES `+values(hi-lo, cols))
		if err != nil {
			return err
		}
		_, err = s.ExecContext(ctx, args...)
		return err
	})
}
