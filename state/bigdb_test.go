package state_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hubflow/hubflow/state"
)

// The large history the query benchmarks run against: 1,000,000 device
// executions and 5,000,000 events. One wide run of 100,000 devices, and 100
// runs of 4,000 devices each drawn from the same fleet; every device has two
// steps ("update", "reboot"), 5% fail their update and skip the reboot, and
// every execution has five events.
const (
	bigRuns        = 100
	bigRunDevices  = 4000
	wideRunDevices = 100_000
	bigFleet       = 100_000
	eventsPerExec  = 5
	wideRunID      = "wide-20261101T010000Z"
)

// bigDB builds the database once per test binary; it takes a minute or two.
type bigDB struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func (g *bigDB) get(b *testing.B) string {
	b.Helper()
	g.once.Do(func() {
		g.dir, g.err = os.MkdirTemp("", "hubflow-bench-")
		if g.err != nil {
			return
		}
		g.path = filepath.Join(g.dir, "big.db")
		start := time.Now()
		g.err = buildBigDB(g.path)
		b.Logf("built %s in %v", g.path, time.Since(start).Round(time.Second))
	})
	if g.err != nil {
		b.Fatalf("build large database: %v", g.err)
	}
	return g.path
}

func (g *bigDB) cleanup() {
	if g.dir != "" {
		os.RemoveAll(g.dir)
	}
}

func buildBigDB(path string) error {
	ctx := context.Background()
	s, err := state.Open(ctx, path, state.Options{})
	if err != nil {
		return err
	}
	if err := s.Close(); err != nil {
		return err
	}
	// Bulk load through a plain connection: the writer's work per event is
	// what BenchmarkStore_Append measures; here only the result matters.
	db, err := sql.Open("sqlite", path+"?_pragma=synchronous(OFF)&_pragma=cache_size(-262144)&_pragma=foreign_keys(0)")
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	tx, err := db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	t0 := time.Date(2026, 8, 1, 1, 0, 0, 0, time.UTC)
	ins := newBulk(tx)
	for r := 0; r <= bigRuns; r++ {
		id, n, first := fmt.Sprintf("firmware-%03d-%s", r, t0.Add(time.Duration(r)*24*time.Hour).Format("20060102T150405Z")), bigRunDevices, r*997
		created := t0.Add(time.Duration(r) * 24 * time.Hour)
		if r == bigRuns {
			id, n, first = wideRunID, wideRunDevices, 0
		}
		failed := n / 20
		_, err := tx.Exec(`INSERT INTO runs (run_no, id, job, triggered_by, steps, state, n_succeeded, n_failed, created_ms, started_ms, ended_ms)
			VALUES (?, ?, 'firmware', 'schedule', '["update","reboot"]', 'failed', ?, ?, ?, ?, ?)`,
			r+1, id, n-failed, failed, created.UnixMilli(), created.UnixMilli(), created.Add(3*time.Hour).UnixMilli())
		if err != nil {
			return err
		}
		for i := range n {
			dev := fmt.Sprintf("device-%06d", (first+i)%bigFleet)
			start := created.Add(time.Duration(i%3600) * time.Second).UnixMilli()
			took := int64(60_000 + (i*7919)%600_000)
			fails := i%20 == 7
			devState, devStep, devEnd := "succeeded", "reboot", start+took+30_000
			if fails {
				devState, devStep, devEnd = "failed", "update", start+took
			}
			if err := ins.add("run_devices", []string{"run_no", "device_id", "state", "step", "step_index", "attempt", "error", "started_ms", "ended_ms"},
				r+1, dev, devState, devStep, map[bool]int{true: 0, false: 1}[fails], 1, map[bool]string{true: `firmwareStatus is "error"`}[fails], start, devEnd); err != nil {
				return err
			}
			for step, name := range []string{"update", "reboot"} {
				st, s0, end, errText := "succeeded", start, start+took, ""
				if step == 1 {
					s0, end = start+took, start+took+30_000
				}
				if fails && step == 0 {
					st, errText = "failed", `firmwareStatus is "error"`
				}
				if fails && step == 1 {
					st = "skipped"
				}
				if err := ins.add("executions", []string{"run_no", "device_id", "step", "step_index", "state", "attempt", "method_status", "response",
					"progress", "progress_ms", "error", "started_ms", "invoked_ms", "ended_ms", "updated_ms"},
					r+1, dev, name, step, st, 1, 200, `{"accepted":true}`, `"applying"`, end-1000, errText, s0, s0, end, end); err != nil {
					return err
				}
				kinds := []struct{ kind, state, progress any }{
					{"state", "invoking", nil}, {"state", "in_progress", nil}, {"progress", nil, `"downloading"`},
					{"progress", nil, `"applying"`}, {"state", st, nil},
				}
				for k, e := range kinds[:eventsPerExec] {
					var status, resp any
					if k == 1 {
						status, resp = 200, `{"accepted":true}`
					}
					if err := ins.add("events", []string{"run_no", "device_id", "step", "kind", "state", "attempt", "progress", "method_status", "response", "observed_ms"},
						r+1, dev, name, e.kind, e.state, 1, e.progress, status, resp, s0+int64(k)*(end-s0)/4); err != nil {
						return err
					}
				}
			}
		}
	}
	if err := ins.flush(); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	_, err = db.Exec("PRAGMA wal_checkpoint(TRUNCATE)")
	return err
}

// bulk gathers rows per table into multi-row INSERTs.
type bulk struct {
	tx   *sql.Tx
	cols map[string][]string
	args map[string][]any
	rows map[string]int
}

func newBulk(tx *sql.Tx) *bulk {
	return &bulk{tx: tx, cols: map[string][]string{}, args: map[string][]any{}, rows: map[string]int{}}
}

func (b *bulk) add(table string, cols []string, vals ...any) error {
	b.cols[table] = cols
	b.args[table] = append(b.args[table], vals...)
	b.rows[table]++
	if b.rows[table] == 200 {
		return b.flushTable(table)
	}
	return nil
}

func (b *bulk) flushTable(table string) error {
	n := b.rows[table]
	if n == 0 {
		return nil
	}
	one := "(" + strings.TrimSuffix(strings.Repeat("?,", len(b.cols[table])), ",") + ")"
	q := "INSERT INTO " + table + " (" + strings.Join(b.cols[table], ",") + ") VALUES " +
		strings.TrimSuffix(strings.Repeat(one+",", n), ",")
	_, err := b.tx.Exec(q, b.args[table]...)
	b.args[table], b.rows[table] = b.args[table][:0], 0
	return err
}

func (b *bulk) flush() error {
	for t := range b.cols {
		if err := b.flushTable(t); err != nil {
			return err
		}
	}
	return nil
}
