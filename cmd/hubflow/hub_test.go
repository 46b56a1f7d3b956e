package main

import (
	"bytes"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hubflow/hubflow/examples"
)

// TestFindFleet checks the order in which the embedded hub's fleet is
// looked for: -fleet, next to the job file, under the working directory,
// then the built-in copy.
func TestFindFleet(t *testing.T) {
	tests := []struct {
		name  string
		files []string // created under the working directory
		given string
		want  string
	}{
		{"-fleet wins", []string{"jobs/fleet.hcl", "examples/fleet.hcl", "mine.hcl"}, "mine.hcl", "mine.hcl"},
		{"next to the job file", []string{"jobs/fleet.hcl", "examples/fleet.hcl", "fleet.hcl"}, "", "jobs/fleet.hcl"},
		{"examples under the working directory", []string{"examples/fleet.hcl", "fleet.hcl"}, "", "examples/fleet.hcl"},
		{"the working directory", []string{"fleet.hcl"}, "", "fleet.hcl"},
		{"built in", nil, "", builtinFleet},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Chdir(t.TempDir())
			if err := os.Mkdir("jobs", 0o755); err != nil {
				t.Fatal(err)
			}
			for _, f := range tt.files {
				if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
					t.Fatal(err)
				}
				writeJobFile(t, f, "# "+f+"\n")
			}
			name, src, err := findFleet(tt.given, filepath.Join("jobs", "job.hcl"))
			if err != nil {
				t.Fatal(err)
			}
			if name != tt.want {
				t.Errorf("got %s, want %s", name, tt.want)
			}
			want := []byte("# " + tt.want + "\n")
			if tt.want == builtinFleet {
				want = examples.Fleet()
			}
			if !bytes.Equal(src, want) {
				t.Errorf("got %d bytes starting %q, want those of %s", len(src), firstLine(src), tt.want)
			}
		})
	}
	t.Run("missing -fleet", func(t *testing.T) {
		_, _, err := findFleet(filepath.Join(t.TempDir(), "none.hcl"), "job.hcl")
		if exitCodeOf(err) != exitBadInput || !strings.Contains(fmtErr(err), "none.hcl") {
			t.Errorf("got %v (exit %d), want exit %d naming none.hcl", err, exitCodeOf(err), exitBadInput)
		}
	})
}

func firstLine(b []byte) string {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	return string(line)
}

func fmtErr(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// assertNoDB fails the test if the history database or one of its side
// files exists.
func assertNoDB(t testing.TB, db string) {
	t.Helper()
	for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
		if _, err := os.Stat(db + suffix); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("got %s (stat: %v), want no such file", db+suffix, err)
		}
	}
}
