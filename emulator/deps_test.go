package emulator

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestDeps keeps the emulator a hub, not a client: it shares only wire types
// with iothub and must never lean on hubflow's clients, runner or store,
// which it exists to test.
func TestDeps(t *testing.T) {
	forbidden := []string{
		"github.com/hubflow/hubflow/iothub/service",
		"github.com/hubflow/hubflow/iothub/device",
		"github.com/hubflow/hubflow/runner",
		"github.com/hubflow/hubflow/state",
		"github.com/hubflow/hubflow/jobs",
		"github.com/hubflow/hubflow/simulator",
		"github.com/eclipse/paho.mqtt.golang",
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
					t.Errorf("%s imports %s, which the emulator must not use", name, path)
				}
			}
		}
	}
}
