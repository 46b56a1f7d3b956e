package scheduler_test

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestDeps keeps the scheduler away from the hub and the process: it
// reaches the hub only through its Runner, and signals, flags and the
// environment belong to cmd/hubflow.
func TestDeps(t *testing.T) {
	forbidden := []string{
		"github.com/hubflow/hubflow/iothub", "github.com/hubflow/hubflow/iothub/service",
		"github.com/hubflow/hubflow/iothub/device", "github.com/hubflow/hubflow/emulator",
		"github.com/hubflow/hubflow/simulator", "github.com/robfig/cron/v3",
		"net", "net/http", "database/sql", "os/signal", "flag", "log",
	}
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
			for _, bad := range forbidden {
				if path == bad {
					t.Errorf("%s imports %s, which the scheduler must not use", name, path)
				}
			}
		}
	}
}
