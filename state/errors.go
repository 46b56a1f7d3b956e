package state

import (
	"errors"
	"fmt"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// ErrRunNotFound is returned when no run has the given id.
var ErrRunNotFound = errors.New("run not found")

// ErrRunExists is returned by CreateRun when a run with the same id is
// already recorded, for example because a schedule slot was launched before
// a restart.
var ErrRunExists = errors.New("run already exists")

// ErrRunFinished is returned when a control request or a state change targets
// a run that has already ended (succeeded, failed, aborted or cancelled).
var ErrRunFinished = errors.New("run already finished")

// ErrClosed is returned by writes attempted after Close.
var ErrClosed = errors.New("history store closed")

// WriteError is a write the history database itself failed (locked by
// another process, read-only, disk full, an i/o error), as opposed to a
// request refused for what it asked. The same write may succeed once the
// fault clears: a runner pauses on it rather than giving up.
type WriteError struct{ Err error }

func (e *WriteError) Error() string { return e.Err.Error() }
func (e *WriteError) Unwrap() error { return e.Err }

// IsWriteError reports whether err is, or wraps, a *WriteError.
func IsWriteError(err error) bool {
	var we *WriteError
	return errors.As(err, &we)
}

// sqliteCode returns the primary SQLite result code of err, or 0.
func sqliteCode(err error) int {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() & 0xff
	}
	return 0
}

// isConstraint reports whether err is a constraint violation, the one kind of
// write error that is the fault of the rows written rather than the disk.
func isConstraint(err error) bool { return sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT }

// describe turns the SQLite errors an operator can act on into messages that
// name the database file and say what to do; others are returned as they are.
func describe(path string, err error) error {
	switch sqliteCode(err) {
	case sqlite3.SQLITE_NOTADB:
		return fmt.Errorf("%s is not a hubflow history database (not an SQLite file): %w", path, err)
	case sqlite3.SQLITE_CORRUPT:
		return fmt.Errorf("history database %s is corrupt; move it aside to start a new history: %w", path, err)
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
		return fmt.Errorf("history database %s is locked by another process for longer than the busy timeout: %w", path, err)
	case sqlite3.SQLITE_READONLY:
		return fmt.Errorf("history database %s is read-only: %w", path, err)
	case sqlite3.SQLITE_FULL:
		return fmt.Errorf("history database %s: disk full: %w", path, err)
	case sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM:
		return fmt.Errorf("cannot open history database %s: %w", path, err)
	case sqlite3.SQLITE_IOERR:
		return fmt.Errorf("history database %s: i/o error: %w", path, err)
	}
	return err
}
