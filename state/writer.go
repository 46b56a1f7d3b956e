package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
)

// A request is one call waiting for the writer: events to record, a
// run-control operation, or neither (a Flush barrier).
type request struct {
	rows []row
	op   func(ctx context.Context, tx *sql.Tx) error
	done chan error // nil for Append, which does not wait
}

// writer is the one goroutine that writes a Store's database. It takes
// requests in arrival order, commits consecutive events together (group
// commit: while one transaction syncs, the next batch gathers), and runs
// each operation in a transaction of its own.
//
// After a failed commit the writer holds on to the asynchronous events of
// the failed batch and commits them before anything that arrives later, so
// that the log keeps its order; synchronous callers get the error and their
// events are dropped, which keeps AppendSync's answer exact.
type writer struct {
	s        *Store
	conn     *sql.Conn
	ctx      context.Context // the writer's own: a caller's cancelled context must not abandon a commit half-reported
	maxBatch int

	reqs   chan *request
	sendMu sync.RWMutex // held for reading while sending, for writing to close reqs
	closed bool

	faultMu sync.Mutex
	fault   error // the last commit's error; nil once one succeeds

	retained []*request // async requests from a failed batch; writer goroutine only
	cache    rowCache   // writer goroutine only
	prep     *stmtCache // writer goroutine only

	exited   chan struct{}
	closeErr error
}

func newWriter(s *Store, conn *sql.Conn) *writer {
	return &writer{
		s:        s,
		conn:     conn,
		ctx:      context.Background(),
		maxBatch: s.opts.MaxBatch,
		reqs:     make(chan *request, s.opts.QueueSize),
		exited:   make(chan struct{}),
		cache:    newRowCache(),
		prep:     newStmtCache(conn),
	}
}

// Err returns the error of the most recent commit if it failed, and nil once
// a later commit succeeds. While it is non-nil, Append refuses new events:
// recording has stopped, and a runner must pause rather than go on acting
// unrecorded. AppendSync, Flush and the run-control methods keep trying, and
// the first of them to commit clears the error.
func (s *Store) Err() error {
	if s.w == nil {
		return nil
	}
	return s.w.err()
}

func (w *writer) err() error {
	w.faultMu.Lock()
	defer w.faultMu.Unlock()
	return w.fault
}

func (w *writer) setFault(err error) {
	w.faultMu.Lock()
	w.fault = err
	w.faultMu.Unlock()
}

// Append queues ev to be committed with the next batch and returns without
// waiting for the commit. It blocks while the queue is full (until ctx ends).
// It returns an error, and queues nothing, when ev is invalid, its run is
// unknown (ErrRunNotFound), the store is closed, or Err is non-nil.
func (s *Store) Append(ctx context.Context, ev Event) error {
	if s.w == nil {
		return s.errReadOnly("record event")
	}
	if err := ev.validate(); err != nil {
		return fmt.Errorf("record event: %w", err)
	}
	if err := s.w.err(); err != nil {
		return fmt.Errorf("record event: history writes are failing: %w", err)
	}
	info, err := s.runInfo(ctx, ev.RunID)
	if err != nil {
		return fmt.Errorf("record event of run %s: %w", ev.RunID, err)
	}
	return s.w.send(ctx, &request{rows: []row{newRow(&ev, info, s.now())}})
}

// AppendSync records evs in one transaction, after everything appended
// before it, and returns once they are committed: nil means they survive a
// crash, an error means none of them was recorded and the call may be
// repeated. ctx bounds only the wait for room in the queue; once queued,
// AppendSync waits for the outcome so that its answer is exact.
func (s *Store) AppendSync(ctx context.Context, evs ...Event) error {
	if s.w == nil {
		return s.errReadOnly("record events")
	}
	rows := make([]row, 0, len(evs))
	now := s.now()
	for i := range evs {
		if err := evs[i].validate(); err != nil {
			return fmt.Errorf("record events: %w", err)
		}
		info, err := s.runInfo(ctx, evs[i].RunID)
		if err != nil {
			return fmt.Errorf("record events of run %s: %w", evs[i].RunID, err)
		}
		rows = append(rows, newRow(&evs[i], info, now))
	}
	req := &request{rows: rows, done: make(chan error, 1)}
	if err := s.w.send(ctx, req); err != nil {
		return err
	}
	if err := <-req.done; err != nil {
		return fmt.Errorf("record events: %w", err)
	}
	return nil
}

// Flush returns once every event appended before it is committed. If the
// writer cannot commit them, Flush retries them once and returns the error;
// the events stay queued for the next attempt.
func (s *Store) Flush(ctx context.Context) error {
	if s.w == nil {
		return nil
	}
	req := &request{done: make(chan error, 1)}
	if err := s.w.send(ctx, req); err != nil {
		return err
	}
	if err := <-req.done; err != nil {
		return fmt.Errorf("flush history: %w", err)
	}
	return nil
}

// do runs op in a transaction of its own on the writer, after everything
// queued before it, and returns op's error or the commit's.
func (w *writer) do(ctx context.Context, op func(ctx context.Context, tx *sql.Tx) error) error {
	req := &request{op: op, done: make(chan error, 1)}
	if err := w.send(ctx, req); err != nil {
		return err
	}
	return <-req.done
}

func (w *writer) send(ctx context.Context, req *request) error {
	w.sendMu.RLock()
	defer w.sendMu.RUnlock()
	if w.closed {
		return ErrClosed
	}
	select {
	case w.reqs <- req:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (w *writer) close() error {
	w.sendMu.Lock()
	if !w.closed {
		w.closed = true
		close(w.reqs)
	}
	w.sendMu.Unlock()
	<-w.exited
	w.prep.close()
	if cerr := w.conn.Close(); cerr != nil && w.closeErr == nil {
		w.closeErr = cerr
	}
	return w.closeErr
}

func (w *writer) run() {
	defer close(w.exited)
	for {
		first, ok := <-w.reqs
		if !ok {
			break
		}
		batch := []*request{first}
		n := len(first.rows)
		open := true
	gather:
		for n < w.maxBatch {
			select {
			case r, ok := <-w.reqs:
				if !ok {
					open = false
					break gather
				}
				batch = append(batch, r)
				n += len(r.rows)
			default:
				break gather
			}
		}
		w.process(batch)
		if !open {
			break
		}
	}
	if len(w.retained) > 0 {
		w.process(nil)
		if len(w.retained) > 0 {
			w.closeErr = fmt.Errorf("close history database %s: %d queued events not recorded: %w", w.s.path, countRows(w.retained), w.err())
		}
	}
}

func countRows(reqs []*request) int {
	n := 0
	for _, r := range reqs {
		n += len(r.rows)
	}
	return n
}

// process handles one batch in order: runs of event requests are committed
// together, each operation alone. Once a commit fails, nothing later in the
// batch is attempted, so that no write overtakes one that failed.
func (w *writer) process(batch []*request) {
	if len(w.retained) > 0 {
		batch = append(w.retained, batch...)
		w.retained = nil
	}
	var failed error
	for len(batch) > 0 {
		if failed != nil {
			for _, r := range batch {
				w.fail(r, failed)
			}
			return
		}
		if batch[0].op != nil {
			failed = w.runOp(batch[0])
			batch = batch[1:]
			continue
		}
		i := 0
		for i < len(batch) && batch[i].op == nil {
			i++
		}
		failed = w.commitEvents(batch[:i])
		batch = batch[i:]
	}
}

// fail reports err to a synchronous request, or keeps an asynchronous one
// for the next attempt.
func (w *writer) fail(r *request, err error) {
	if r.done != nil {
		r.done <- err
		return
	}
	w.retained = append(w.retained, r)
}

// sentinel reports whether err is an answer about the request rather than a
// failure of the database.
func sentinel(err error) bool {
	return errors.Is(err, ErrRunNotFound) || errors.Is(err, ErrRunExists) || errors.Is(err, ErrRunFinished)
}

func (w *writer) runOp(r *request) error {
	// Operations change rows behind the cache's back.
	w.cache.reset()
	err := w.inTx(r.op)
	if err != nil && sentinel(err) {
		r.done <- err
		return nil
	}
	if err != nil {
		err = &WriteError{describe(w.s.path, err)}
		w.setFault(err)
		r.done <- err
		return err
	}
	w.setFault(nil)
	r.done <- nil
	return nil
}

func (w *writer) inTx(fn func(ctx context.Context, tx *sql.Tx) error) error {
	tx, err := w.conn.BeginTx(w.ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(w.ctx, tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// commitEvents commits the rows of reqs in one transaction and answers the
// synchronous ones. A constraint violation is the fault of some request's
// rows, not of the database, so the batch is then retried with each request
// isolated in a savepoint and only the offending ones are refused.
func (w *writer) commitEvents(reqs []*request) error {
	if countRows(reqs) == 0 {
		for _, r := range reqs {
			r.done <- nil // a Flush with nothing before it
		}
		return nil
	}
	var b *batch
	err := w.inTx(func(ctx context.Context, tx *sql.Tx) error {
		if err := w.cache.check(ctx, tx); err != nil {
			return err
		}
		var rows []row
		for _, r := range reqs {
			rows = append(rows, r.rows...)
		}
		var err error
		b, err = applyRows(ctx, tx, rows, &w.cache, w.prep)
		return err
	})
	if err == nil {
		w.cache.install(b)
	}
	if err != nil && isConstraint(err) {
		err = w.commitIsolated(reqs)
		if err == nil {
			return nil
		}
	}
	if err != nil {
		err = &WriteError{describe(w.s.path, err)}
		w.setFault(err)
		for _, r := range reqs {
			w.fail(r, err)
		}
		return err
	}
	w.setFault(nil)
	for _, r := range reqs {
		if r.done != nil {
			r.done <- nil
		}
	}
	return nil
}

func (w *writer) commitIsolated(reqs []*request) error {
	w.cache.reset()
	refused := make(map[*request]error)
	err := w.inTx(func(ctx context.Context, tx *sql.Tx) error {
		for _, r := range reqs {
			if len(r.rows) == 0 {
				continue
			}
			if _, err := tx.ExecContext(ctx, "SAVEPOINT req"); err != nil {
				return err
			}
			_, err := applyRows(ctx, tx, r.rows, nil, w.prep)
			if err != nil && !isConstraint(err) {
				return err
			}
			if err != nil {
				refused[r] = err
				if _, err := tx.ExecContext(ctx, "ROLLBACK TO req"); err != nil {
					return err
				}
			}
			if _, err := tx.ExecContext(ctx, "RELEASE req"); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	w.setFault(nil)
	for _, r := range reqs {
		rerr := refused[r]
		if rerr != nil && r.done == nil {
			w.s.opts.Logger.Warn("event not recorded", "run_no", r.rows[0].runNo, "device", r.rows[0].device, "err", rerr)
		}
		if r.done != nil {
			r.done <- rerr
		}
	}
	return nil
}
