package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/hubflow/hubflow/state"
)

// updateGolden rewrites the golden files under testdata instead of comparing
// with them: go test ./cmd/hubflow -run Golden -update
var updateGolden = flag.Bool("update", false, "rewrite golden files in testdata")

// seedT0 is when the seeded history begins; far enough in the past for
// prune tests that measure age from the real clock.
var seedT0 = time.Date(2025, 11, 21, 1, 0, 0, 0, time.UTC)

const (
	seedRunA = "firmware-2-1-0-20251121T010000Z"
	seedRunB = "reboot-20251122T010000Z-a3f9"
)

// seedHistory writes a small, fixed history: a finished firmware run that
// was aborted, and a reboot run still going.
func seedHistory(tb testing.TB) string {
	tb.Helper()
	ctx := context.Background()
	path := filepath.Join(tb.TempDir(), "hubflow.db")
	now := seedT0
	s, err := state.Open(ctx, path, state.Options{Now: func() time.Time { return now }})
	if err != nil {
		tb.Fatal(err)
	}
	defer s.Close()
	at := func(d time.Duration) time.Time { return seedT0.Add(d) }
	must := func(err error) {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
	}
	st := func(run, dev, step string, idx int, s state.ExecState, attempt int, d time.Duration, errText string) state.Event {
		return state.Event{RunID: run, DeviceID: dev, Step: step, StepIndex: idx, Kind: state.KindState, State: s,
			Attempt: attempt, Error: errText, ObservedAt: at(d)}
	}
	pr := func(run, dev, step string, idx int, p string, d time.Duration) state.Event {
		return state.Event{RunID: run, DeviceID: dev, Step: step, StepIndex: idx, Kind: state.KindProgress,
			Progress: json.RawMessage(p), ObservedAt: at(d)}
	}
	ok := 200

	must(s.CreateRun(ctx, state.NewRun{ID: seedRunA, Job: "firmware-2-1-0", FileHash: "sha256:1f2e", PlanHash: "sha256:9a8b",
		Vars: json.RawMessage(`{"image_uri":"https://firmware.example.com/edge-2.1.0.bin"}`), Trigger: state.TriggerSchedule,
		Window: "night (01:00 Europe/Berlin, 3h)", Steps: []string{"update", "reboot"}}))
	must(s.RecordTargets(ctx, seedRunA, []state.Target{{DeviceID: "press-01"}, {DeviceID: "press-02"}, {DeviceID: "press-03"},
		{DeviceID: "press-04", SkipReason: `tags.timezone "Mars/Olympus" is not a known time zone`}}))
	must(s.UpdateRunState(ctx, seedRunA, state.RunRunning, ""))
	must(s.AppendSync(ctx,
		st(seedRunA, "press-01", "update", 0, state.ExecInvoking, 1, 0, ""),
		state.Event{RunID: seedRunA, DeviceID: "press-01", Step: "update", Kind: state.KindState, State: state.ExecInProgress,
			MethodStatus: &ok, Response: json.RawMessage(`{"accepted":true}`), ObservedAt: at(time.Second)},
		pr(seedRunA, "press-01", "update", 0, `"downloading"`, 30*time.Second),
		pr(seedRunA, "press-01", "update", 0, `"applying"`, 4*time.Minute),
		st(seedRunA, "press-01", "update", 0, state.ExecSucceeded, 0, 6*time.Minute, ""),
		st(seedRunA, "press-01", "reboot", 1, state.ExecInvoking, 1, 6*time.Minute, ""),
		st(seedRunA, "press-01", "reboot", 1, state.ExecSucceeded, 0, 7*time.Minute, ""),

		st(seedRunA, "press-02", "update", 0, state.ExecInvoking, 1, 2*time.Second, ""),
		st(seedRunA, "press-02", "update", 0, state.ExecInvoking, 2, 32*time.Second, "device not online"),
		pr(seedRunA, "press-02", "update", 0, `"downloading"`, time.Minute),
		pr(seedRunA, "press-02", "update", 0, `{"status":"error","code":17}`, 3*time.Minute),
		st(seedRunA, "press-02", "update", 0, state.ExecFailed, 0, 3*time.Minute, "failure condition met: firmwareStatus is \"error\""),
		st(seedRunA, "press-02", "reboot", 1, state.ExecSkipped, 0, 3*time.Minute, ""),

		st(seedRunA, "press-03", "update", 0, state.ExecInvoking, 1, 3*time.Second, ""),
		st(seedRunA, "press-03", "update", 0, state.ExecInProgress, 0, 4*time.Second, ""),
		state.Event{RunID: seedRunA, DeviceID: "press-03", Step: "update", Kind: state.KindNote,
			Detail: "success condition could not be evaluated", Error: "reported.firmwareStatus is null", ObservedAt: at(5 * time.Second)},
		st(seedRunA, "press-03", "update", 0, state.ExecTimedOut, 0, 20*time.Minute+3*time.Second, "no success within 20m"),
		st(seedRunA, "press-03", "reboot", 1, state.ExecSkipped, 0, 20*time.Minute+3*time.Second, ""),
	))
	now = at(21 * time.Minute)
	must(s.UpdateRunState(ctx, seedRunA, state.RunAborted, "abort rule: 2 of 3 finished devices failed or timed out (0.67 >= 0.10)"))

	now = at(24 * time.Hour)
	must(s.CreateRun(ctx, state.NewRun{ID: seedRunB, Job: "reboot", Trigger: state.TriggerManual, Steps: []string{"reboot"},
		State: state.RunRunning}))
	must(s.RecordTargets(ctx, seedRunB, []state.Target{{DeviceID: "press-01"}, {DeviceID: "press-05"}}))
	must(s.AppendSync(ctx,
		st(seedRunB, "press-01", "reboot", 0, state.ExecInvoking, 1, 24*time.Hour, ""),
		st(seedRunB, "press-01", "reboot", 0, state.ExecInProgress, 0, 24*time.Hour+time.Second, ""),
		pr(seedRunB, "press-01", "reboot", 0, `"rebooting"`, 24*time.Hour+10*time.Second),
	))
	return path
}

// cliResult is what one in-process command run produced.
type cliResult struct {
	stdout, stderr string
	err            error
	code           int
}

// runHistoryCLI runs the command built by mk with args, in-process, and maps
// its error to an exit code as main does.
func runHistoryCLI(tb testing.TB, env []string, mk func(*app) *ffcli.Command, args ...string) cliResult {
	tb.Helper()
	var out, errOut bytes.Buffer
	a := &app{stdin: strings.NewReader(""), stdout: &out, stderr: &errOut, env: env,
		logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	cmd := mk(a)
	res := cliResult{code: exitOK}
	if err := cmd.Parse(args); err != nil {
		res.err, res.code = err, exitBadInput
	} else if err := cmd.Run(context.Background()); err != nil {
		res.err, res.code = err, exitCodeOf(err)
	}
	res.stdout, res.stderr = out.String(), errOut.String()
	return res
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(tb testing.TB, name, got string) {
	tb.Helper()
	path := filepath.Join("testdata", name)
	if *updateGolden {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			tb.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("read golden file (run with -update to create it): %v", err)
	}
	if got != string(want) {
		tb.Errorf("output differs from %s (run with -update and review the diff)\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

func TestHistoryCommands_Golden(t *testing.T) {
	path := seedHistory(t)
	cmds := map[string]func(*app) *ffcli.Command{
		"history": (*app).historyCommand,
		"show":    (*app).showCommand,
		"device":  (*app).deviceCommand,
	}
	tests := []struct {
		golden string
		cmd    string
		args   []string
	}{
		{"history.txt", "history", nil},
		{"history.json", "history", []string{"-o", "json"}},
		{"history.csv", "history", []string{"-o", "csv"}},
		{"show.txt", "show", []string{seedRunA}},
		{"show.json", "show", []string{seedRunA, "-o", "json"}},
		{"show.csv", "show", []string{"-o", "csv", seedRunA}},
		{"show_failed.txt", "show", []string{seedRunA, "-state", "failed"}},
		{"device.txt", "device", []string{"press-01"}},
		{"device.json", "device", []string{"press-01", "-o", "json"}},
		{"device.csv", "device", []string{"press-02", "-o", "csv"}},
		{"device_skipped.txt", "device", []string{"press-04"}},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			res := runHistoryCLI(t, nil, cmds[tt.cmd], append([]string{"-db", path}, tt.args...)...)
			if res.err != nil {
				t.Fatalf("%s %v: %v\n%s", tt.cmd, tt.args, res.err, res.stderr)
			}
			if strings.HasSuffix(tt.golden, ".json") && !json.Valid([]byte(res.stdout)) {
				t.Errorf("output is not valid JSON:\n%s", res.stdout)
			}
			golden(t, tt.golden, res.stdout)
		})
	}
}

func TestHistoryCommand_Filters(t *testing.T) {
	path := seedHistory(t)
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"all", nil, []string{seedRunB, seedRunA}},
		{"job", []string{"-job", "reboot"}, []string{seedRunB}},
		{"status", []string{"-status", "aborted"}, []string{seedRunA}},
		{"since date", []string{"-since", "2025-11-22"}, []string{seedRunB}},
		{"until RFC 3339", []string{"-until", "2025-11-21T12:00:00Z"}, []string{seedRunA}},
		{"since duration", []string{"-since", "1h"}, nil},
		{"device", []string{"-device", "press-05"}, []string{seedRunB}},
		{"limit", []string{"-limit", "1"}, []string{seedRunB}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := runHistoryCLI(t, []string{"HUBFLOW_DB=" + path}, (*app).historyCommand, append(tt.args, "-o", "json")...)
			if res.err != nil {
				t.Fatalf("history: %v", res.err)
			}
			var runs []struct {
				ID string `json:"id"`
			}
			if err := json.Unmarshal([]byte(res.stdout), &runs); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range runs {
				got = append(got, r.ID)
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestHistoryCommands_Errors(t *testing.T) {
	seeded := seedHistory(t)
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.db")
	notDB := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notDB, bytes.Repeat([]byte("not a database\n"), 100), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		mk   func(*app) *ffcli.Command
		args []string
		code int
		want string
	}{
		{"history without database", (*app).historyCommand, []string{"-db", missing}, exitHubError,
			"no history database at " + missing + " (run a job first, or pass -db)"},
		{"show without database", (*app).showCommand, []string{"-db", missing, "r"}, exitHubError, "no history database at"},
		{"device without database", (*app).deviceCommand, []string{"-db", missing, "d"}, exitHubError, "no history database at"},
		{"prune without database", (*app).pruneCommand, []string{"-db", missing, "-older-than", "90d"}, exitHubError, "no history database at"},
		{"not a database", (*app).historyCommand, []string{"-db", notDB}, exitHubError, "not a hubflow history database"},
		{"bad output", (*app).historyCommand, []string{"-db", seeded, "-o", "yaml"}, exitBadInput, "-o must be table, json or csv"},
		{"bad status", (*app).historyCommand, []string{"-db", seeded, "-status", "done"}, exitBadInput, "unknown run state"},
		{"bad since", (*app).historyCommand, []string{"-db", seeded, "-since", "yesterday"}, exitBadInput, "-since"},
		{"history argument", (*app).historyCommand, []string{"-db", seeded, "extra"}, exitBadInput, "no arguments"},
		{"unknown run", (*app).showCommand, []string{"-db", seeded, "nope"}, exitBadInput, `no run "nope"`},
		{"show without run", (*app).showCommand, []string{"-db", seeded}, exitBadInput, "one run id"},
		{"bad device state", (*app).showCommand, []string{"-db", seeded, seedRunA, "-state", "broken"}, exitBadInput, "unknown device state"},
		{"unknown device", (*app).deviceCommand, []string{"-db", seeded, "ghost"}, exitBadInput, `no history for device "ghost"`},
		{"prune without age", (*app).pruneCommand, []string{"-db", seeded}, exitBadInput, "needs -older-than"},
		{"prune bad age", (*app).pruneCommand, []string{"-db", seeded, "-older-than", "-3d"}, exitBadInput, "positive duration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := runHistoryCLI(t, nil, tt.mk, tt.args...)
			if res.err == nil {
				t.Fatalf("got no error, want exit %d", tt.code)
			}
			if res.code != tt.code {
				t.Errorf("exit code: got %d, want %d (%v)", res.code, tt.code, res.err)
			}
			if !strings.Contains(res.err.Error(), tt.want) {
				t.Errorf("error: got %q, want it to contain %q", res.err, tt.want)
			}
		})
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("a read command created %s", missing)
	}
}

func TestPruneCommand(t *testing.T) {
	path := seedHistory(t)
	res := runHistoryCLI(t, nil, (*app).pruneCommand, "-db", path, "-older-than", "1h", "-dry-run")
	if res.err != nil {
		t.Fatal(res.err)
	}
	if want := "would remove 1 runs that ended before"; !strings.HasPrefix(res.stdout, want) ||
		!strings.HasSuffix(res.stdout, ": 4 devices, 6 executions, 18 events\n") {
		t.Errorf("dry run: got %q, want %q… with 4 devices, 8 executions, 19 events", res.stdout, want)
	}
	res = runHistoryCLI(t, nil, (*app).pruneCommand, "-db", path, "-older-than", "1h")
	if res.err != nil || !strings.HasPrefix(res.stdout, "removed 1 runs") {
		t.Fatalf("prune: got %q (%v), want \"removed 1 runs…\"", res.stdout, res.err)
	}
	res = runHistoryCLI(t, nil, (*app).historyCommand, "-db", path, "-o", "csv")
	if strings.Contains(res.stdout, seedRunA) || !strings.Contains(res.stdout, seedRunB) {
		t.Errorf("history after prune: got\n%s\nwant only %s, which has not ended", res.stdout, seedRunB)
	}
}
