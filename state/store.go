package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
	sqlite3 "modernc.org/sqlite/lib"
)

// Defaults for the zero Options.
const (
	DefaultBusyTimeout = 5 * time.Second
	DefaultQueueSize   = 8192
	DefaultMaxBatch    = 4096
)

// readerConns bounds the pool of read connections; history queries are few
// and short, and each connection holds a page cache.
const readerConns = 4

// Options configures a Store. The zero value is ready to use.
type Options struct {
	// Logger receives the writer's warnings (an asynchronous event that could
	// not be recorded). Nil discards them.
	Logger *slog.Logger

	// Now is the clock used for creation and control times and for events
	// whose ObservedAt is zero. Nil means time.Now.
	Now func() time.Time

	// BusyTimeout is how long a write waits for another process's write lock
	// before it fails. Zero means DefaultBusyTimeout.
	BusyTimeout time.Duration

	// QueueSize is how many pending Append calls are buffered before Append
	// blocks (back-pressure). Zero means DefaultQueueSize.
	QueueSize int

	// MaxBatch caps the events committed in one transaction. Zero means
	// DefaultMaxBatch.
	MaxBatch int

	// ReadOnly opens an existing database for queries only: no file is
	// created, no migration runs, and every write method fails. Readers work
	// while another process writes.
	ReadOnly bool
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.BusyTimeout <= 0 {
		o.BusyTimeout = DefaultBusyTimeout
	}
	if o.QueueSize <= 0 {
		o.QueueSize = DefaultQueueSize
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	return o
}

// Store is hubflow's run history in one SQLite file. All methods are safe for
// concurrent use. Writes from one Store go through a single writer goroutine
// in the order they were made; several processes may open the same file, and
// SQLite serialises their writes (each waits up to Options.BusyTimeout).
type Store struct {
	path string
	opts Options

	rdb *sql.DB // queries; mode=ro connections
	wdb *sql.DB // the writer's connection; nil when read-only
	w   *writer // nil when read-only

	closeOnce sync.Once

	runsMu sync.Mutex
	runs   map[string]runInfo // immutable facts about runs seen, by id
}

// runInfo is what the writer needs to know about a run, fixed at creation.
type runInfo struct {
	no    int64
	steps []string
}

// Open opens the history database at path, creating it (mode 0600) when it
// does not exist and applying any migrations this binary has that the file
// lacks. It fails, naming the path, when the file is not a hubflow history
// database, is corrupt, or was written by a newer hubflow. The caller must
// Close the store.
//
// Durability: the database runs in WAL mode with synchronous=FULL, so a write
// reported as committed survives a crash of the process and of the machine.
// The runner commits "invoking attempt N" before it calls the hub, and that
// record is what stops a restarted runner from sending a device the same
// firmware update twice; WAL with synchronous=NORMAL would survive a process
// crash but could lose the last commits on power loss. The cost is one fsync
// per transaction, which the writer's batching spreads over many events.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	opts = opts.withDefaults()
	if opts.ReadOnly {
		return openReadOnly(ctx, path, opts)
	}
	return openWith(ctx, path, opts, migrationsFS)
}

// OpenReadOnly opens an existing history database for queries. It never
// creates or changes the file and works while another process writes to it.
// A missing file yields an error that wraps fs.ErrNotExist.
func OpenReadOnly(ctx context.Context, path string, opts Options) (*Store, error) {
	opts.ReadOnly = true
	return Open(ctx, path, opts)
}

func openWith(ctx context.Context, path string, opts Options, migrations fs.FS) (*Store, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open history database %s: %w", path, err)
	}
	// SQLite would create the file with the process umask (often 0644);
	// history may name devices and runs an operator considers private, so
	// create it first with 0600. SQLite gives the -wal and -shm files the
	// mode of the database file.
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case err == nil:
		if err := f.Close(); err != nil {
			return nil, fmt.Errorf("create history database %s: %w", path, err)
		}
	case errors.Is(err, fs.ErrExist):
		// An existing file must be writable by us; SQLite would otherwise
		// open it read-only without a word and fail on the first write.
		f, err := os.OpenFile(abs, os.O_RDWR, 0)
		if err != nil {
			return nil, fmt.Errorf("open history database %s for writing: %w", path, err)
		}
		f.Close()
	default:
		return nil, fmt.Errorf("create history database %s: %w", path, err)
	}

	wdb, err := sql.Open("sqlite", writerDSN(abs, opts))
	if err != nil {
		return nil, fmt.Errorf("open history database %s: %w", path, err)
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetConnMaxIdleTime(0)
	wdb.SetConnMaxLifetime(0)

	s := &Store{path: path, opts: opts, wdb: wdb, runs: make(map[string]runInfo)}
	if err := retryBusy(ctx, opts.BusyTimeout, func() error { return s.prepareWritable(ctx, migrations) }); err != nil {
		wdb.Close()
		return nil, err
	}
	s.rdb, err = openReaders(abs, opts)
	if err != nil {
		wdb.Close()
		return nil, fmt.Errorf("open history database %s: %w", path, err)
	}
	conn, err := wdb.Conn(ctx)
	if err != nil {
		s.rdb.Close()
		wdb.Close()
		return nil, fmt.Errorf("open history database %s: %w", path, describe(path, err))
	}
	s.w = newWriter(s, conn)
	go s.w.run()
	return s, nil
}

func (s *Store) prepareWritable(ctx context.Context, migrations fs.FS) error {
	if err := s.migrate(ctx, migrations); err != nil {
		return err
	}
	var mode string
	if err := s.wdb.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("open history database %s: read journal mode: %w", s.path, describe(s.path, err))
	}
	// WAL is what lets `hubflow history` read while a run writes; a file
	// system that cannot do it (some network mounts) must say so here.
	if mode != "wal" {
		return fmt.Errorf("open history database %s: journal mode is %q, want \"wal\" (is the file on a network file system?)", s.path, mode)
	}
	return nil
}

func openReadOnly(ctx context.Context, path string, opts Options) (*Store, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open history database %s: %w", path, err)
	}
	if _, err := os.Stat(abs); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no history database at %s: %w", path, err)
		}
		return nil, fmt.Errorf("open history database %s: %w", path, err)
	}
	rdb, err := openReaders(abs, opts)
	if err != nil {
		return nil, fmt.Errorf("open history database %s: %w", path, err)
	}
	s := &Store{path: path, opts: opts, rdb: rdb, runs: make(map[string]runInfo)}
	var v int
	err = retryBusy(ctx, opts.BusyTimeout, func() error {
		var err error
		v, err = s.schemaVersion(ctx, rdb)
		return err
	})
	if err == nil {
		latest, lerr := latestVersion(migrationsFS)
		switch {
		case lerr != nil:
			err = lerr
		case v == 0:
			err = fmt.Errorf("history database %s holds no history yet", path)
		case v > latest:
			err = newerSchemaError(path, v, latest)
		case v < latest:
			err = fmt.Errorf("history database %s has schema version %d, older than this hubflow's %d; open it once with a writing command (hubflow run or hubflow prune) to upgrade it", path, v, latest)
		}
	}
	if err != nil {
		rdb.Close()
		return nil, err
	}
	return s, nil
}

// retryBusy calls fn until it does not fail with SQLITE_BUSY or timeout has
// passed. SQLite skips its busy handler where waiting could deadlock, as when
// connections of two processes opening a new file both switch it to WAL;
// one of them gets SQLITE_BUSY at once and must simply try again.
func retryBusy(ctx context.Context, timeout time.Duration, fn func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil || sqliteCode(err) != sqlite3.SQLITE_BUSY || time.Now().After(deadline) {
			return err
		}
		t := time.NewTimer(20 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// writerDSN sets every pragma in the DSN so that each pooled connection has
// them, not only the first.
func writerDSN(abs string, opts Options) string {
	q := url.Values{}
	// The shorthand key, unlike a _pragma, is applied before _auto_vacuum
	// and the _pragma list, which may need a lock another process holds.
	q.Set("_busy_timeout", strconv.FormatInt(opts.BusyTimeout.Milliseconds(), 10))
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	// Lets Prune return the space of deleted runs to the file system.
	// SQLite only honours it before the first table exists.
	q.Set("_auto_vacuum", "INCREMENTAL")
	// The write lock is taken at BEGIN, where busy_timeout applies, rather
	// than at the first write inside a transaction, where a conflict fails
	// at once.
	q.Set("_txlock", "immediate")
	return fileURI(abs, q)
}

func openReaders(abs string, opts Options) (*sql.DB, error) {
	q := url.Values{}
	q.Set("mode", "ro")
	q.Set("_busy_timeout", strconv.FormatInt(opts.BusyTimeout.Milliseconds(), 10))
	db, err := sql.Open("sqlite", fileURI(abs, q))
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(readerConns)
	db.SetMaxIdleConns(readerConns)
	return db, nil
}

func fileURI(abs string, q url.Values) string {
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: q.Encode()}
	return u.String()
}

// Path returns the database path the store was opened with.
func (s *Store) Path() string { return s.path }

// Close commits what is queued, stops the writer and closes the database. It
// returns the error of a final commit that failed, in which case the events
// appended with Append that Err had reported as uncommitted are lost. Calls
// after the first return nil.
func (s *Store) Close() error {
	err := ErrClosed
	s.closeOnce.Do(func() { err = s.close() })
	if errors.Is(err, ErrClosed) {
		return nil
	}
	return err
}

func (s *Store) close() error {
	var err error
	if s.w != nil {
		err = s.w.close()
	}
	if s.rdb != nil {
		if cerr := s.rdb.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("close history database %s: %w", s.path, cerr)
		}
	}
	if s.wdb != nil {
		if cerr := s.wdb.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("close history database %s: %w", s.path, cerr)
		}
	}
	return err
}

func (s *Store) now() time.Time { return s.opts.Now() }

// errReadOnly is returned by write methods of a store opened read-only.
func (s *Store) errReadOnly(op string) error {
	return fmt.Errorf("%s: history database %s is open read-only", op, s.path)
}
