package state

import (
	"context"
	"database/sql"
	"io/fs"
)

// OpenWithMigrations opens path applying the migrations in fsys (files
// migrations/NNNN_*.sql) instead of the embedded ones.
func OpenWithMigrations(ctx context.Context, path string, opts Options, fsys fs.FS) (*Store, error) {
	return openWith(ctx, path, opts.withDefaults(), fsys)
}

// Migrations returns the embedded migrations.
func Migrations() fs.FS { return migrationsFS }

// LatestVersion returns the newest embedded schema version.
func LatestVersion() int {
	v, err := latestVersion(migrationsFS)
	if err != nil {
		panic(err)
	}
	return v
}

// ExecOnWriter runs query on the writer's connection, in its queue, for
// fault injection (PRAGMA max_page_count) and pragma checks.
func ExecOnWriter(ctx context.Context, s *Store, query string) error {
	return s.w.do(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, query)
		return err
	})
}

// QueryOnWriter returns the single integer query yields on the writer's
// connection.
func QueryOnWriter(ctx context.Context, s *Store, query string) (int64, error) {
	var v int64
	err := s.w.do(ctx, func(ctx context.Context, tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, query).Scan(&v)
	})
	return v, err
}

var RedactSecrets = redactSecrets
