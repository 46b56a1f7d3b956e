package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hubflow/hubflow/runner"
	"github.com/hubflow/hubflow/state"
)

const cliRebootJob = `
job "reboot-osaka" {
  target { query = "tags.site = 'osaka'" }
  rollout { concurrency = 2 }
  step "reboot" {
    method  = "rebootDevice"
    success = try(timecmp(reported.rebootTime, step.started_at) > 0, false)
    timeout = "1m"
  }
}
`

func TestRun_EmbeddedDefault(t *testing.T) {
	fleet, _ := filepath.Abs("testdata/plan/fleet.hcl")
	dir := t.TempDir()
	file := filepath.Join(dir, "reboot.hcl")
	db := filepath.Join(dir, "h.db")
	writeJobFile(t, file, cliRebootJob)
	code, stdout, stderr := runCommands(t, nil, "run", file, "-fleet", fleet, "-db", db)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if !regexp.MustCompile(`run reboot-osaka-\S+ succeeded: 3 succeeded`).MatchString(stdout) {
		t.Errorf("stdout lacks the summary:\n%s", stdout)
	}
	if !strings.Contains(stderr, "embedded emulator") {
		t.Errorf("stderr does not say which hub was used:\n%s", stderr)
	}
	st := openTestStore(t, db)
	runs, err := st.ListRuns(context.Background(), state.RunFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1 || runs[0].State != state.RunSucceeded || runs[0].Counts.Succeeded != 3 {
		t.Errorf("got runs %+v, want one succeeded with 3 devices", runs)
	}
}

func TestRun_ExitCodes(t *testing.T) {
	fleet, _ := filepath.Abs("testdata/plan/fleet.hcl")
	dir := t.TempDir()
	failing := filepath.Join(dir, "failing.hcl")
	writeJobFile(t, failing, `
job "unknown-method" {
  target { query = "tags.site = 'osaka'" }
  step "s" {
    method  = "noSuchMethod"
    success = true
  }
}`)
	bad := filepath.Join(dir, "bad.hcl")
	writeJobFile(t, bad, `job "x" {`)
	good := filepath.Join(dir, "good.hcl")
	writeJobFile(t, good, cliRebootJob)
	two := filepath.Join(dir, "two.hcl")
	writeJobFile(t, two, cliRebootJob+strings.Replace(cliRebootJob, "reboot-osaka", "again", 1))
	cases := []struct {
		name string
		args []string
		want int
		msg  string
	}{
		{"failed run", []string{"run", failing}, exitFailed, "reason"},
		{"bad job file", []string{"run", bad}, exitBadInput, "bad.hcl:1"},
		{"plan hash changed", []string{"run", good, "-plan-hash", "0123456789abcdef"}, exitBadInput, "plan changed"},
		{"two jobs", []string{"run", two}, exitBadInput, "-job NAME"},
		{"no such run", []string{"run", good, "-resume", "nope"}, exitBadInput, "nope"},
		{"bad tier", []string{"run", good, "-hub-tier", "B1"}, exitBadInput, "B1"},
		{"device connection string", []string{"run", good, "-hub", "HostName=h;DeviceId=d;SharedAccessKey=a2V5"}, exitBadInput, "device's connection string"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append(tc.args, "-fleet", fleet, "-db", filepath.Join(t.TempDir(), "h.db"))
			code, stdout, stderr := runCommands(t, nil, args...)
			if code != tc.want {
				t.Errorf("got exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.want, stdout, stderr)
			}
			if !strings.Contains(stdout+stderr, tc.msg) {
				t.Errorf("output lacks %q:\nstdout:\n%s\nstderr:\n%s", tc.msg, stdout, stderr)
			}
		})
	}
}

func TestRun_PlanHashFromPlan(t *testing.T) {
	fleet, _ := filepath.Abs("testdata/plan/fleet.hcl")
	dir := t.TempDir()
	file := filepath.Join(dir, "reboot.hcl")
	writeJobFile(t, file, cliRebootJob)
	code, stdout, stderr := runCommands(t, nil, "plan", file, "-fleet", fleet)
	if code != 0 {
		t.Fatalf("plan: exit %d: %s", code, stderr)
	}
	m := regexp.MustCompile(`Plan hash: ([0-9a-f]+)`).FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("no plan hash in:\n%s", stdout)
	}
	code, stdout, stderr = runCommands(t, nil, "run", file, "-fleet", fleet, "-db", filepath.Join(dir, "h.db"), "-plan-hash", m[1])
	if code != 0 {
		t.Errorf("run with the planned hash: exit %d\n%s\n%s", code, stdout, stderr)
	}
}

func TestProgressLine(t *testing.T) {
	at := time.Date(2026, 3, 29, 1, 0, 0, 0, time.UTC)
	s := runner.Snapshot{
		RunID: "fw-1", State: state.RunRunning, Canary: true, Total: 10,
		Counts: state.Counts{Pending: 5, Running: 2, Succeeded: 2, Failed: 1},
		Rate:   2.5, ETA: 3 * time.Second, At: at,
		Window: runner.WindowStatus{Windows: "night", Open: true, Closes: at.Add(2 * time.Hour)},
	}
	want := "fw-1 running canaries: 2/10 succeeded, 2 running, 5 pending, 1 failed, 0 timed out, 0 skipped | 2.5/s, ETA 3s | window night open until 2026-03-29 03:00Z"
	if got := progressLine(s); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	s.State, s.Window = state.RunWaitingWindow, runner.WindowStatus{Windows: "night", Next: at.Add(22 * time.Hour)}
	if got := progressLine(s); !strings.Contains(got, "waiting_window") || !strings.Contains(got, "closed, opens 2026-03-29 23:00Z") {
		t.Errorf("got %q, want the waiting state and the next opening", got)
	}
}

// TestRun_BuiltinFleet runs a job from a directory with no fleet file
// anywhere: the embedded hub uses the fleet built into hubflow.
func TestRun_BuiltinFleet(t *testing.T) {
	t.Chdir(t.TempDir())
	writeJobFile(t, "ping.hcl", `
job "ping-osaka" {
  target { query = "tags.site = 'osaka'" }
  rollout { concurrency = 10 }
  step "ping" {
    method  = "rebootDevice"
    success = true
  }
}`)
	code, stdout, stderr := runCommands(t, nil, "run", "ping.hcl", "-db", "h.db")
	if code != 0 {
		t.Fatalf("got exit %d, want 0\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "simulated devices from "+builtinFleet) {
		t.Errorf("stderr does not name the built-in fleet:\n%s", stderr)
	}
	if !regexp.MustCompile(`run ping-osaka-\S+ succeeded: 10 succeeded`).MatchString(stdout) {
		t.Errorf("got stdout\n%s\nwant the 10 osaka sensors of examples/fleet.hcl to succeed", stdout)
	}
}

// TestRun_NoHistoryWithoutRun checks that a run that cannot start leaves
// no new history database behind, and that an existing one is kept.
func TestRun_NoHistoryWithoutRun(t *testing.T) {
	fleet, _ := filepath.Abs("testdata/plan/fleet.hcl")
	dir := t.TempDir()
	job := filepath.Join(dir, "reboot.hcl")
	writeJobFile(t, job, cliRebootJob)
	const key = "c2VjcmV0LWtleS1ub3QtdG8tYmUtc2hvd24tYW55d2hlcmU="
	addr := closedAddr(t)
	unreachable := "HostName=" + addr + ";SharedAccessKeyName=iothubowner;SharedAccessKey=" + key
	tests := []struct {
		name string
		args []string
		code int
		msgs []string
	}{
		{"unreachable hub", []string{"-hub", unreachable}, exitHubError, []string{"hub " + addr, "resolve target of job reboot-osaka", "connection refused", "new history database"}},
		{"malformed connection string", []string{"-hub", "HostName=h;SharedAccessKey=" + key}, exitBadInput, []string{"connection string"}},
		{"changed plan", []string{"-fleet", fleet, "-plan-hash", "0123456789abcdef"}, exitBadInput, []string{"plan changed"}},
		{"resume with no history", []string{"-hub", unreachable, "-resume", "reboot-osaka-1"}, exitBadInput, []string{"no run reboot-osaka-1", "no history database"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := filepath.Join(t.TempDir(), "h.db")
			args := append([]string{"run", job, "-db", db}, tt.args...)
			code, stdout, stderr := runCommands(t, nil, args...)
			if code != tt.code {
				t.Errorf("got exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, stdout, stderr)
			}
			for _, msg := range tt.msgs {
				if !strings.Contains(stderr, msg) {
					t.Errorf("got stderr %q, want it to say %q", stderr, msg)
				}
			}
			if strings.Contains(stdout+stderr, strings.TrimRight(key, "=")) {
				t.Errorf("the key is in the output:\n%s%s", stdout, stderr)
			}
			assertNoDB(t, db)
		})
	}
	t.Run("existing history is kept", func(t *testing.T) {
		db := filepath.Join(t.TempDir(), "h.db")
		if err := openTestStore(t, db).Close(); err != nil {
			t.Fatal(err)
		}
		code, _, stderr := runCommands(t, nil, "run", job, "-db", db, "-hub", unreachable)
		if code != exitHubError {
			t.Errorf("got exit %d, want %d: %s", code, exitHubError, stderr)
		}
		if _, err := os.Stat(db); err != nil {
			t.Errorf("got %v, want the database kept", err)
		}
	})
}

func TestCancel_NoHistory(t *testing.T) {
	db := filepath.Join(t.TempDir(), "h.db")
	code, _, stderr := runCommands(t, nil, "cancel", "reboot-osaka-1", "-db", db)
	if code != exitBadInput || !strings.Contains(stderr, "no history database at "+db) {
		t.Errorf("got exit %d stderr %q, want %d and no history database", code, stderr, exitBadInput)
	}
	assertNoDB(t, db)
}
