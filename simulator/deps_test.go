package simulator_test

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestDeps keeps the simulator a client of the hub: it reaches it only
// through iothub, iothub/service and iothub/device, never the emulator's
// insides, and knows nothing of jobs, the runner or the state store.
func TestDeps(t *testing.T) {
	allowed := map[string]bool{
		"github.com/hubflow/hubflow/iothub":         true,
		"github.com/hubflow/hubflow/iothub/service": true,
		"github.com/hubflow/hubflow/iothub/device":  true,
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
			if strings.HasPrefix(path, "github.com/hubflow/hubflow/") && !allowed[path] {
				t.Errorf("%s imports %s; the simulator may use only iothub, iothub/service and iothub/device of hubflow", name, path)
			}
			if path == "database/sql" || path == "os/exec" || path == "log" {
				t.Errorf("%s imports %s, which this package must not use", name, path)
			}
		}
	}
}
