package state

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

//go:embed migrations/*.sql
var migrationsFS embed.FS

// applicationID marks a hubflow history database in the SQLite header
// ("hflw"), so that `file` and hubflow itself can tell it from other SQLite
// files.
const applicationID = 0x68666c77

type migration struct {
	version int
	name    string
	sql     string
}

// loadMigrations reads migrations/NNNN_name.sql in version order and checks
// that versions run 1, 2, 3… without gaps.
func loadMigrations(fsys fs.FS) ([]migration, error) {
	names, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		return nil, fmt.Errorf("list migrations: %w", err)
	}
	var ms []migration
	for _, n := range names {
		base := path.Base(n)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must start with a positive version number and '_'", base)
		}
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", base, err)
		}
		ms = append(ms, migration{version: v, name: base, sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration %s: version %d, want %d", m.name, m.version, i+1)
		}
	}
	return ms, nil
}

func latestVersion(fsys fs.FS) (int, error) {
	ms, err := loadMigrations(fsys)
	if err != nil {
		return 0, err
	}
	return len(ms), nil
}

func newerSchemaError(path string, have, want int) error {
	return fmt.Errorf("history database %s has schema version %d, newer than this hubflow knows (%d); use a newer hubflow, or pass -db to use another file", path, have, want)
}

// queryer is what schemaVersion needs from a *sql.DB, *sql.Conn or *sql.Tx.
type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// schemaVersion identifies the file: 0 for a database with no tables (a new
// file), the applied version for a hubflow database, and an error naming the
// path for anything else.
func (s *Store) schemaVersion(ctx context.Context, q queryer) (int, error) {
	var appID int64
	if err := q.QueryRowContext(ctx, "PRAGMA application_id").Scan(&appID); err != nil {
		return 0, fmt.Errorf("open history database %s: %w", s.path, describe(s.path, err))
	}
	if appID != 0 && appID != applicationID {
		return 0, fmt.Errorf("%s is an SQLite database of another application (application_id %#x), not a hubflow history database; pass -db to use another file", s.path, appID)
	}
	rows, err := q.QueryContext(ctx, "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
	if err != nil {
		return 0, fmt.Errorf("open history database %s: %w", s.path, describe(s.path, err))
	}
	tables := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return 0, fmt.Errorf("open history database %s: %w", s.path, describe(s.path, err))
		}
		tables[n] = true
	}
	if err := rows.Close(); err != nil {
		return 0, fmt.Errorf("open history database %s: %w", s.path, describe(s.path, err))
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("open history database %s: %w", s.path, describe(s.path, err))
	}
	if len(tables) == 0 {
		return 0, nil
	}
	if !tables["schema_migrations"] {
		return 0, fmt.Errorf("%s is an SQLite database but not a hubflow history database (it has no schema_migrations table); pass -db to use another file", s.path)
	}
	var v sql.NullInt64
	if err := q.QueryRowContext(ctx, "SELECT MAX(version) FROM schema_migrations").Scan(&v); err != nil {
		return 0, fmt.Errorf("open history database %s: read schema version: %w", s.path, describe(s.path, err))
	}
	return int(v.Int64), nil
}

// migrate brings the database to the newest version this binary has, one
// transaction per migration, each recorded in schema_migrations.
func (s *Store) migrate(ctx context.Context, fsys fs.FS) error {
	ms, err := loadMigrations(fsys)
	if err != nil {
		return err
	}
	have, err := s.schemaVersion(ctx, s.wdb)
	if err != nil {
		return err
	}
	if have > len(ms) {
		return newerSchemaError(s.path, have, len(ms))
	}
	for _, m := range ms[have:] {
		if err := s.applyMigration(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) applyMigration(ctx context.Context, m migration) error {
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate history database %s to version %d: %w", s.path, m.version, describe(s.path, err))
	}
	defer tx.Rollback()

	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_ms INTEGER NOT NULL
	)`); err != nil {
		return fmt.Errorf("migrate history database %s: create schema_migrations: %w", s.path, describe(s.path, err))
	}
	// Another process may have migrated while this one waited for the lock.
	var applied int
	if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM schema_migrations WHERE version = ?", m.version).Scan(&applied); err != nil {
		return fmt.Errorf("migrate history database %s: %w", s.path, describe(s.path, err))
	}
	if applied > 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return fmt.Errorf("migrate history database %s: apply %s: %w", s.path, m.name, describe(s.path, err))
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO schema_migrations (version, name, applied_ms) VALUES (?, ?, ?)",
		m.version, m.name, s.now().UnixMilli()); err != nil {
		return fmt.Errorf("migrate history database %s: record %s: %w", s.path, m.name, describe(s.path, err))
	}
	// Both pragmas write the file header inside this transaction.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA application_id = %d", applicationID)); err != nil {
		return fmt.Errorf("migrate history database %s: %w", s.path, describe(s.path, err))
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", m.version)); err != nil {
		return fmt.Errorf("migrate history database %s: %w", s.path, describe(s.path, err))
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate history database %s to version %d: %w", s.path, m.version, describe(s.path, err))
	}
	return nil
}
