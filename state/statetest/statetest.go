package statetest

import (
	"bytes"
	"database/sql"
	"fmt"
	"os"
	"strings"

	_ "modernc.org/sqlite" // the "sqlite" driver, to read the file as SQL too
)

// TB is the part of testing.TB the helpers use.
type TB interface {
	Helper()
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
}

// AssertNoSecrets fails tb if any of secrets occurs in the history database
// at path: in the raw bytes of the database, its -wal and its -shm file
// (free pages included), or in any value of any table (which also finds a
// string SQLite split across overflow pages). Failures name the secret by its
// position in secrets, never by its value. Close the store, or at least
// Flush it, before calling.
func AssertNoSecrets(tb TB, path string, secrets ...string) {
	tb.Helper()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		b, err := os.ReadFile(path + suffix)
		if err != nil {
			if suffix != "" && os.IsNotExist(err) {
				continue
			}
			tb.Fatalf("read %s%s: %v", path, suffix, err)
			return
		}
		for i, s := range secrets {
			if s != "" && bytes.Contains(b, []byte(s)) {
				tb.Errorf("%s%s holds secret #%d (%d bytes) in its raw bytes", path, suffix, i+1, len(s))
			}
		}
	}
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		tb.Fatalf("open %s: %v", path, err)
		return
	}
	defer db.Close()
	tables, err := tableNames(db)
	if err != nil {
		tb.Fatalf("list tables of %s: %v", path, err)
		return
	}
	for _, table := range tables {
		if err := scanTable(db, table, func(col string, v string) {
			for i, s := range secrets {
				if s != "" && strings.Contains(v, s) {
					tb.Errorf("%s: table %s, column %s holds secret #%d (%d bytes)", path, table, col, i+1, len(s))
				}
			}
		}); err != nil {
			tb.Fatalf("read table %s of %s: %v", table, path, err)
			return
		}
	}
}

func tableNames(db *sql.DB) ([]string, error) {
	rows, err := db.Query("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		names = append(names, n)
	}
	return names, rows.Err()
}

func scanTable(db *sql.DB, table string, fn func(col, v string)) error {
	rows, err := db.Query(fmt.Sprintf("SELECT * FROM %q", table))
	if err != nil {
		return err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		for i, v := range vals {
			switch v := v.(type) {
			case string:
				fn(cols[i], v)
			case []byte:
				fn(cols[i], string(v))
			}
		}
	}
	return rows.Err()
}
