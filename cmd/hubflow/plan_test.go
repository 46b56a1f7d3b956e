package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"
)

// runCommands runs the run, plan, cancel and resume commands in-process
// as main does, and returns the exit code and the streams.
func runCommands(t testing.TB, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	a := &app{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, env: env}
	a.logger = slog.New(slog.NewTextHandler(&errb, &slog.HandlerOptions{Level: slog.LevelWarn}))
	fs := flag.NewFlagSet("hubflow", flag.ContinueOnError)
	fs.SetOutput(&errb)
	root := &ffcli.Command{Name: "hubflow", FlagSet: fs, Subcommands: []*ffcli.Command{
		a.runCommand(), a.planCommand(), a.cancelCommand(), a.resumeCommand(),
	}}
	for _, c := range root.Subcommands {
		c.FlagSet.SetOutput(&errb)
	}
	err := root.ParseAndRun(context.Background(), args)
	if err == nil {
		return 0, out.String(), errb.String()
	}
	var se silentExit
	if !errors.As(err, &se) {
		errb.WriteString("hubflow: " + err.Error() + "\n")
	}
	return exitCodeOf(err), out.String(), errb.String()
}

// planNow is the time the plan golden files are computed at: the day
// before Europe's spring-forward night.
var planNow = time.Date(2026, 3, 28, 12, 0, 0, 0, time.UTC)

// TestPlan_Golden plans each testdata/plan case (the job file, a line of
// dashes, the expected output) against the embedded emulator with
// testdata/plan/fleet.hcl. Run with -update to rewrite the expectations.
func TestPlan_Golden(t *testing.T) {
	fleet, err := filepath.Abs("testdata/plan/fleet.hcl")
	if err != nil {
		t.Fatal(err)
	}
	cases, err := filepath.Glob("testdata/plan/*.txt")
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range cases {
		name := strings.TrimSuffix(filepath.Base(path), ".txt")
		for _, format := range []string{"text", "json"} {
			t.Run(name+"/"+format, func(t *testing.T) {
				golden, _ := filepath.Abs(path)
				if format == "json" {
					golden = strings.TrimSuffix(golden, ".txt") + ".json"
				}
				src, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				input, _, ok := strings.Cut(string(src), "\n----------\n")
				if !ok {
					t.Fatalf("%s: no ---------- line between the job file and the expected output", path)
				}
				dir := t.TempDir()
				t.Chdir(dir)
				if err := os.WriteFile("job.hcl", []byte(input), 0o600); err != nil {
					t.Fatal(err)
				}
				var out, errb bytes.Buffer
				a := &app{stdout: &out, stderr: &errb, logger: slog.New(slog.DiscardHandler)}
				f := &planFlags{vars: &jobVarFlags{}, hub: &hubFlags{fleet: fleet, units: 1}, output: format}
				if err := a.plan(context.Background(), "job.hcl", f, planNow); err != nil {
					t.Fatalf("plan: %v\n%s", err, errb.String())
				}
				got := out.String()
				if *updateGolden {
					if format == "json" {
						err = os.WriteFile(golden, []byte(got), 0o644)
					} else {
						err = os.WriteFile(golden, []byte(input+"\n----------\n"+got), 0o644)
					}
					if err != nil {
						t.Fatal(err)
					}
					return
				}
				want := ""
				if format == "json" {
					b, err := os.ReadFile(golden)
					if err != nil {
						t.Fatalf("%v (run with -update)", err)
					}
					want = string(b)
				} else {
					_, want, _ = strings.Cut(string(src), "\n----------\n")
				}
				if got != want {
					t.Errorf("%s: got\n%s\nwant\n%s", golden, got, want)
				}
			})
		}
	}
}

func TestPlan_DetailedExitCode(t *testing.T) {
	fleet, _ := filepath.Abs("testdata/plan/fleet.hcl")
	dir := t.TempDir()
	work := filepath.Join(dir, "work.hcl")
	none := filepath.Join(dir, "none.hcl")
	writeJobFile(t, work, `job "w" {
  target { query = "tags.site = 'osaka'" }
  step "r" {
    method  = "rebootDevice"
    success = true
  }
}`)
	writeJobFile(t, none, `job "n" {
  target { query = "tags.site = 'nowhere'" }
  step "r" {
    method  = "rebootDevice"
    success = true
  }
}`)
	for _, tc := range []struct {
		file string
		want int
	}{{work, exitPlanWork}, {none, exitOK}} {
		code, _, stderr := runCommands(t, nil, "plan", tc.file, "-fleet", fleet, "-detailed-exitcode")
		if code != tc.want {
			t.Errorf("%s: got exit %d, want %d\n%s", filepath.Base(tc.file), code, tc.want, stderr)
		}
	}
}

func TestPlan_UnreachableHub(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "job.hcl")
	writeJobFile(t, file, `job "w" {
  target { query = "tags.site = 'osaka'" }
  step "r" {
    method  = "rebootDevice"
    success = true
  }
}`)
	const key = "c2VjcmV0LWtleS1ub3QtdG8tYmUtbG9nZ2Vk"
	cs := "HostName=127.0.0.1:1;SharedAccessKeyName=service;SharedAccessKey=" + key
	code, stdout, stderr := runCommands(t, []string{"IOTHUB_CONNECTION_STRING=" + cs}, "plan", file)
	if code != exitHubError {
		t.Errorf("got exit %d, want %d", code, exitHubError)
	}
	if !strings.Contains(stderr, "hub 127.0.0.1:1") || !strings.Contains(stderr, "refused") {
		t.Errorf("stderr does not name the host and the reason: %q", stderr)
	}
	if strings.Contains(stdout+stderr, key) {
		t.Errorf("the key appears in the output")
	}
}

func TestPlan_BadJobFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bad.hcl")
	writeJobFile(t, file, `job "w" {
  target { query = "x = 1" }
  step "r" {
    method  = "rebootDevice"
    timeout = "soon"
  }
}`)
	code, _, stderr := runCommands(t, nil, "plan", file)
	if code != exitBadInput || !strings.Contains(stderr, "bad.hcl:5") {
		t.Errorf("got exit %d, stderr %q; want 2 and the diagnostic's position", code, stderr)
	}
}

func TestPlan_JSONIsStable(t *testing.T) {
	fleet, _ := filepath.Abs("testdata/plan/fleet.hcl")
	file := filepath.Join(t.TempDir(), "job.hcl")
	writeJobFile(t, file, `job "w" {
  target { query = "tags.site = 'osaka'" }
  step "r" {
    method  = "rebootDevice"
    success = true
  }
}`)
	code, stdout, stderr := runCommands(t, nil, "plan", file, "-fleet", fleet, "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(stdout), &v); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, stdout)
	}
	for _, k := range []string{"job", "plan_hash", "devices", "skipped", "steps", "rollout", "windows", "estimate"} {
		if _, ok := v[k]; !ok {
			t.Errorf("JSON plan lacks %q", k)
		}
	}
}

func writeJobFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
