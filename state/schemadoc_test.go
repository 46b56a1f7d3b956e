package state_test

import (
	"database/sql"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hubflow/hubflow/state"
)

// TestSchemaDoc keeps docs/schema.md true: every table and column is
// described, and every example query runs.
func TestSchemaDoc(t *testing.T) {
	doc, err := os.ReadFile("../docs/schema.md")
	if err != nil {
		t.Fatal(err)
	}
	s, path := openStore(t, state.Options{})
	seedRun(t, s, "r", 10, time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	rows, err := db.Query(`SELECT m.name, p.name FROM sqlite_schema m, pragma_table_info(m.name) p
		WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var table, col string
		if err := rows.Scan(&table, &col); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(doc), "### `"+table+"`") {
			t.Errorf("table %s is not described in docs/schema.md", table)
		}
		if !strings.Contains(string(doc), "`"+col+"`") {
			t.Errorf("column %s.%s is not described in docs/schema.md", table, col)
		}
	}
	rows.Close()

	blocks := regexp.MustCompile("(?s)```sql\n(.*?)```").FindAllStringSubmatch(string(doc), -1)
	if len(blocks) < 3 {
		t.Fatalf("example queries: got %d, want at least 3", len(blocks))
	}
	for _, b := range blocks {
		rows, err := db.Query(b[1])
		if err != nil {
			t.Errorf("example query fails: %v\n%s", err, b[1])
			continue
		}
		for rows.Next() {
		}
		if err := rows.Err(); err != nil {
			t.Errorf("example query fails: %v\n%s", err, b[1])
		}
		rows.Close()
	}
}
