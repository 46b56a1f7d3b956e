package state_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/hubflow/hubflow/state"
)

func TestOpen_CreatesPrivateWALDatabase(t *testing.T) {
	ctx := context.Background()
	s, path := openStore(t, state.Options{})
	createRun(t, s, "r1")
	for _, p := range []string{path, path + "-wal"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatalf("stat %s: %v", p, err)
		}
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Errorf("mode of %s: got %v, want -rw-------", filepath.Base(p), got)
		}
	}
	for _, c := range []struct {
		pragma string
		want   int64
	}{
		{"PRAGMA synchronous", 2}, // FULL
		{"PRAGMA foreign_keys", 1},
		{"PRAGMA auto_vacuum", 2}, // INCREMENTAL
		{"PRAGMA application_id", 0x68666c77},
		{"PRAGMA user_version", int64(state.LatestVersion())},
	} {
		got, err := state.QueryOnWriter(ctx, s, c.pragma)
		if err != nil {
			t.Fatalf("%s: %v", c.pragma, err)
		}
		if got != c.want {
			t.Errorf("%s: got %d, want %d", c.pragma, got, c.want)
		}
	}
	got, err := state.QueryOnWriter(ctx, s, "SELECT COUNT(*) FROM pragma_journal_mode WHERE journal_mode = 'wal'")
	if err != nil || got != 1 {
		t.Errorf("journal mode wal: got %d (%v), want 1", got, err)
	}
}

func writeFile(tb testing.TB, path string, b []byte) {
	tb.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		tb.Fatal(err)
	}
}

// rawSQL runs statements on a plain SQLite connection to path.
func rawSQL(tb testing.TB, path string, stmts ...string) {
	tb.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			tb.Fatalf("%s: %v", q, err)
		}
	}
}

func TestOpen_RefusesForeignFiles(t *testing.T) {
	tests := []struct {
		name  string
		setup func(tb testing.TB, path string)
		want  string
	}{
		{"text file", func(tb testing.TB, path string) {
			writeFile(tb, path, []byte(strings.Repeat("this is not a database\n", 200)))
		}, "not a hubflow history database"},
		{"other sqlite database", func(tb testing.TB, path string) {
			rawSQL(tb, path, "CREATE TABLE customers (id INTEGER)")
		}, "not a hubflow history database"},
		{"other application id", func(tb testing.TB, path string) {
			rawSQL(tb, path, "PRAGMA application_id = 42")
		}, "another application"},
		{"corrupt hubflow database", func(tb testing.TB, path string) {
			s, err := state.Open(context.Background(), path, state.Options{})
			if err != nil {
				tb.Fatal(err)
			}
			s.Close()
			b, err := os.ReadFile(path)
			if err != nil {
				tb.Fatal(err)
			}
			// Keep the header, wreck the schema page.
			for i := 100; i < 4096 && i < len(b); i++ {
				b[i] = 0xAA
			}
			writeFile(tb, path, b)
		}, "corrupt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "h.db")
			tt.setup(t, path)
			for _, open := range []struct {
				name string
				fn   func() (*state.Store, error)
			}{
				{"Open", func() (*state.Store, error) { return state.Open(context.Background(), path, state.Options{}) }},
				{"OpenReadOnly", func() (*state.Store, error) {
					return state.OpenReadOnly(context.Background(), path, state.Options{})
				}},
			} {
				s, err := open.fn()
				if err == nil {
					s.Close()
					t.Fatalf("%s: got no error, want one", open.name)
				}
				if !strings.Contains(err.Error(), path) {
					t.Errorf("%s: error %q does not name the path", open.name, err)
				}
				if !strings.Contains(err.Error(), tt.want) {
					t.Errorf("%s: got %q, want it to mention %q", open.name, err, tt.want)
				}
			}
		})
	}
}

// migrationsUpTo returns the embedded migrations with versions <= v.
func migrationsUpTo(tb testing.TB, v int) fs.FS {
	tb.Helper()
	all := state.Migrations()
	names, err := fs.Glob(all, "migrations/*.sql")
	if err != nil {
		tb.Fatal(err)
	}
	out := fstest.MapFS{}
	for _, n := range names {
		var num int
		if _, err := fmt.Sscanf(filepath.Base(n), "%04d_", &num); err != nil {
			tb.Fatalf("migration %s: %v", n, err)
		}
		if num > v {
			continue
		}
		b, err := fs.ReadFile(all, n)
		if err != nil {
			tb.Fatal(err)
		}
		out[n] = &fstest.MapFile{Data: b}
	}
	return out
}

func schemaVersion(tb testing.TB, path string) int {
	tb.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	var v int
	if err := db.QueryRow("SELECT MAX(version) FROM schema_migrations").Scan(&v); err != nil {
		tb.Fatal(err)
	}
	return v
}

func TestOpen_UpgradesEveryEarlierVersion(t *testing.T) {
	latest := state.LatestVersion()
	for v := 0; v < latest; v++ {
		t.Run(fmt.Sprintf("from version %d", v), func(t *testing.T) {
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "h.db")
			old, err := state.OpenWithMigrations(ctx, path, state.Options{}, migrationsUpTo(t, v))
			if err != nil {
				t.Fatalf("create version %d: %v", v, err)
			}
			if err := old.Close(); err != nil {
				t.Fatal(err)
			}
			s, err := state.Open(ctx, path, state.Options{})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			createRun(t, s, "after-upgrade")
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if got := schemaVersion(t, path); got != latest {
				t.Errorf("schema version: got %d, want %d", got, latest)
			}
		})
	}
}

func TestOpen_RefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	s, path := openStore(t, state.Options{})
	createRun(t, s, "r1")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	newer := state.LatestVersion() + 1
	rawSQL(t, path, fmt.Sprintf("INSERT INTO schema_migrations (version, name, applied_ms) VALUES (%d, 'future.sql', 0)", newer))
	for name, open := range map[string]func(context.Context, string, state.Options) (*state.Store, error){
		"Open": state.Open, "OpenReadOnly": state.OpenReadOnly,
	} {
		s, err := open(ctx, path, state.Options{})
		if err == nil {
			s.Close()
			t.Fatalf("%s: got no error, want a newer-schema error", name)
		}
		want := fmt.Sprintf("schema version %d, newer than this hubflow knows (%d)", newer, state.LatestVersion())
		if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: got %q, want it to contain %q and the path", name, err, want)
		}
	}
}

func TestOpen_FailedMigrationChangesNothing(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "h.db")
	fsys := migrationsUpTo(t, state.LatestVersion())
	bad := fmt.Sprintf("migrations/%04d_broken.sql", state.LatestVersion()+1)
	fsys.(fstest.MapFS)[bad] = &fstest.MapFile{Data: []byte("CREATE TABLE extra (x INTEGER); THIS IS NOT SQL;")}
	s, err := state.OpenWithMigrations(ctx, path, state.Options{}, fsys)
	if err == nil {
		s.Close()
		t.Fatal("got no error from a broken migration")
	}
	if !strings.Contains(err.Error(), "broken.sql") || !strings.Contains(err.Error(), path) {
		t.Errorf("got %q, want it to name the migration and the path", err)
	}
	if got := schemaVersion(t, path); got != state.LatestVersion() {
		t.Errorf("schema version after failed migration: got %d, want %d", got, state.LatestVersion())
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM sqlite_schema WHERE name = 'extra'").Scan(&n); err != nil || n != 0 {
		t.Errorf("table of the failed migration: got %d (%v), want 0", n, err)
	}
}

func TestOpenReadOnly_MissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "none.db")
	_, err := state.OpenReadOnly(context.Background(), path, state.Options{})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("got %v, want an error wrapping fs.ErrNotExist", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("OpenReadOnly created %s", path)
	}
}

func TestOpenReadOnly_ReadsWhileAnotherStoreWrites(t *testing.T) {
	ctx := context.Background()
	w, path := openStore(t, state.Options{})
	createRun(t, w, "r1")
	r, err := state.OpenReadOnly(ctx, path, state.Options{})
	if err != nil {
		t.Fatalf("OpenReadOnly: %v", err)
	}
	defer r.Close()
	c := newClock()
	for i := range 3 {
		appendSync(t, w, stateEv("r1", fmt.Sprintf("d%d", i), "update", 0, state.ExecInvoking, c.Now()))
		ds, err := r.RunDevices(ctx, "r1", state.DeviceFilter{})
		if err != nil {
			t.Fatalf("RunDevices: %v", err)
		}
		if len(ds) != i+1 {
			t.Errorf("devices seen by the reader after %d commits: got %d, want %d", i+1, len(ds), i+1)
		}
	}
	if err := r.CreateRun(ctx, state.NewRun{ID: "x", Job: "j", Trigger: state.TriggerManual}); err == nil {
		t.Error("CreateRun on a read-only store: got no error")
	}
	if err := r.Append(ctx, stateEv("r1", "d9", "update", 0, state.ExecInvoking, c.Now())); err == nil {
		t.Error("Append on a read-only store: got no error")
	}
}

func TestOpenReadOnly_ReadOnlyFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "h.db")
	s, err := state.Open(ctx, path, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	createRun(t, s, "r1")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o400); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(path, 0o600) })

	r, err := state.OpenReadOnly(ctx, path, state.Options{})
	if err != nil {
		t.Fatalf("OpenReadOnly of a read-only file: %v", err)
	}
	runs, err := r.ListRuns(ctx, state.RunFilter{})
	r.Close()
	if err != nil || len(runs) != 1 {
		t.Fatalf("ListRuns: got %d runs (%v), want 1", len(runs), err)
	}

	if os.Geteuid() == 0 {
		t.Skip("root can write a read-only file; the writable-open check cannot be seen")
	}
	_, err = state.Open(ctx, path, state.Options{})
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("Open of a read-only file: got %v, want an error naming %s", err, path)
	}
}

func TestOpen_ConcurrentOpensOfOneFile(t *testing.T) {
	// `hubflow serve` and a `hubflow run` may start together on a new file;
	// neither may fail with "database is locked".
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "h.db")
	const n = 6
	errs := make(chan error, n)
	stores := make(chan *state.Store, n)
	for i := range n {
		go func() {
			s, err := state.Open(ctx, path, state.Options{})
			if err == nil {
				err = s.CreateRun(ctx, state.NewRun{ID: fmt.Sprintf("r%d", i), Job: "j", Trigger: state.TriggerManual})
				stores <- s
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("concurrent Open: %v", err)
		}
	}
	close(stores)
	for s := range stores {
		s.Close()
	}
}
