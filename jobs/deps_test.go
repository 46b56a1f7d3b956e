package jobs_test

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestDeps keeps jobs at the bottom of hubflow: it knows HCL and time, not
// the hub, the database or the runner, and it does no networking.
func TestDeps(t *testing.T) {
	forbidden := []string{"net", "net/http", "database/sql", "os/exec", "log"}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(path, "github.com/hubflow/hubflow/") {
				t.Errorf("%s imports %s: got a hubflow import, want none (jobs is imported, it imports nothing of hubflow)", name, path)
			}
			for _, bad := range forbidden {
				if path == bad {
					t.Errorf("%s imports %s, which this package must not use", name, path)
				}
			}
		}
	}
}
