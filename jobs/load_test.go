package jobs_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"

	"github.com/hubflow/hubflow/jobs"
)

// loadSource loads one in-memory job file and fails the test on errors.
func loadSource(t testing.TB, src string, opts ...func(*jobs.LoadConfig)) *jobs.Config {
	t.Helper()
	cfg := jobs.LoadConfig{Sources: []jobs.Source{{Name: "test.hcl", Bytes: []byte(src)}}}
	for _, o := range opts {
		o(&cfg)
	}
	c, diags := jobs.Load(cfg)
	if diags.HasErrors() {
		logDiags(t, diags)
		t.Fatalf("load: got %d diagnostics, want none", len(diags))
	}
	return c
}

func logDiags(t testing.TB, diags hcl.Diagnostics) {
	t.Helper()
	for _, d := range diags {
		t.Logf("  %s", diagString(d))
	}
}

func diagString(d *hcl.Diagnostic) string {
	pos := "-"
	if d.Subject != nil {
		pos = fmt.Sprintf("%s:%d:%d", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column)
	}
	return fmt.Sprintf("%s: %s: %s", pos, d.Summary, d.Detail)
}

func TestLoad_valid(t *testing.T) {
	files, err := filepath.Glob("testdata/valid/*.hcl")
	if err != nil || len(files) == 0 {
		t.Fatalf("glob: %v, %d files", err, len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			c, diags := jobs.Load(jobs.LoadConfig{Files: []string{f}})
			if len(diags) > 0 {
				logDiags(t, diags)
				t.Fatalf("got %d diagnostics, want none", len(diags))
			}
			if len(c.Jobs) == 0 {
				t.Fatalf("got no jobs")
			}
			for _, j := range c.Jobs {
				if len(j.Hash()) != 64 {
					t.Errorf("job %s: hash %q, want 64 hex digits", j.Name, j.Hash())
				}
			}
		})
	}
}

var errorComment = regexp.MustCompile(`#\s*ERROR:\s*(.+?)\s*$`)

// TestLoad_invalid loads each file under testdata/invalid and compares the
// error summaries reported per line with the "# ERROR: summary" comments
// on those lines.
func TestLoad_invalid(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid/*.hcl")
	if err != nil || len(files) == 0 {
		t.Fatalf("glob: %v, %d files", err, len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for i, line := range strings.Split(string(src), "\n") {
				if m := errorComment.FindStringSubmatch(line); m != nil {
					want = append(want, fmt.Sprintf("%d: %s", i+1, m[1]))
				}
			}
			if len(want) == 0 {
				t.Fatalf("%s has no # ERROR: comments", f)
			}
			c, diags := jobs.Load(jobs.LoadConfig{Files: []string{f}})
			if c != nil {
				t.Errorf("got a config, want nil with errors")
			}
			var got []string
			for _, d := range diags {
				if d.Severity != hcl.DiagError {
					continue
				}
				if d.Subject == nil {
					t.Errorf("diagnostic without a range: %s", diagString(d))
					continue
				}
				if d.Detail == "" {
					t.Errorf("diagnostic without a detail: %s", diagString(d))
				}
				got = append(got, fmt.Sprintf("%d: %s", d.Subject.Start.Line, d.Summary))
			}
			sort.Strings(got)
			sort.Strings(want)
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				logDiags(t, diags)
				t.Errorf("errors by line:\ngot:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
			}
		})
	}
}
