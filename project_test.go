package hubflow_test

import (
	"bytes"
	"go/format"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// goPackages returns the directories holding Go files, skipping testdata and
// hidden or vendored trees.
func goPackages(t testing.TB) map[string][]string {
	t.Helper()
	pkgs := map[string][]string{}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != "." && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(path, ".go") {
			dir := filepath.Dir(path)
			pkgs[dir] = append(pkgs[dir], path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pkgs
}

// TestPackageDocs enforces exactly one package comment per package, in doc.go
// (main packages may keep theirs in main.go).
func TestPackageDocs(t *testing.T) {
	for dir, files := range goPackages(t) {
		var withDoc []string
		isMain := false
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.PackageClauseOnly|parser.ParseComments)
			if err != nil {
				t.Fatal(err)
			}
			if af.Name.Name == "main" {
				isMain = true
			}
			if af.Doc != nil {
				withDoc = append(withDoc, filepath.Base(f))
			}
		}
		if len(withDoc) != 1 {
			t.Errorf("%s: got package comments in %v, want exactly one", dir, withDoc)
			continue
		}
		if !isMain && withDoc[0] != "doc.go" {
			t.Errorf("%s: package comment in %s, want doc.go", dir, withDoc[0])
		}
	}
}

func TestGofmt(t *testing.T) {
	for _, files := range goPackages(t) {
		for _, f := range files {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			out, err := format.Source(src)
			if err != nil {
				t.Errorf("%s: %v", f, err)
				continue
			}
			if !bytes.Equal(src, out) {
				t.Errorf("%s is not gofmt-ed; run gofmt -w %s", f, f)
			}
		}
	}
}

func runGo(t *testing.T, args ...string) {
	t.Helper()
	if testing.Short() {
		t.Skip("skipped with -short")
	}
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func TestVet(t *testing.T) { runGo(t, "vet", "./...") }

func TestStaticcheck(t *testing.T) { runGo(t, "tool", "staticcheck", "./...") }
