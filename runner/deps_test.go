package runner

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestDeps keeps the runner on its own interfaces: it talks to a hub through
// Hub, never a concrete client, and knows nothing of the emulator, the
// fleet, the scheduler or the CLI built on it.
func TestDeps(t *testing.T) {
	forbidden := []string{
		"github.com/hubflow/hubflow/iothub/service",
		"github.com/hubflow/hubflow/iothub/device",
		"github.com/hubflow/hubflow/emulator",
		"github.com/hubflow/hubflow/simulator",
		"github.com/hubflow/hubflow/scheduler",
		"github.com/hubflow/hubflow/cmd",
		"net/http",
		"github.com/eclipse/paho.mqtt.golang",
		"modernc.org/sqlite",
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
				if path == bad || strings.HasPrefix(path, bad+"/") {
					t.Errorf("%s imports %s, which the runner must not use", name, path)
				}
			}
		}
	}
}
