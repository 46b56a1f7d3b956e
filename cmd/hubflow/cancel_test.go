package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hubflow/hubflow/state"
)

func openTestStore(t testing.TB, path string) *state.Store {
	t.Helper()
	st, err := state.Open(context.Background(), path, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// seedRuns records a running, a paused and a finished run.
func seedRuns(t testing.TB) string {
	t.Helper()
	db := filepath.Join(t.TempDir(), "h.db")
	st := openTestStore(t, db)
	ctx := context.Background()
	for id, s := range map[string]state.RunState{"r-running": state.RunRunning, "r-paused": state.RunPaused, "r-done": state.RunSucceeded} {
		if err := st.CreateRun(ctx, state.NewRun{ID: id, Job: "j", Trigger: state.TriggerManual, Steps: []string{"s"}, State: s}); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	return db
}

func TestCancel(t *testing.T) {
	db := seedRuns(t)
	cases := []struct {
		run  string
		want int
		msg  string
	}{
		{"r-running", exitOK, "cancel of run r-running requested"},
		{"r-paused", exitOK, "requested"},
		{"r-done", exitBadInput, "already ended succeeded"},
		{"r-nope", exitBadInput, "no run r-nope"},
	}
	for _, tc := range cases {
		t.Run(tc.run, func(t *testing.T) {
			code, stdout, stderr := runCommands(t, nil, "cancel", tc.run, "-db", db)
			if code != tc.want || !strings.Contains(stdout+stderr, tc.msg) {
				t.Errorf("got exit %d, output %q; want %d and %q", code, stdout+stderr, tc.want, tc.msg)
			}
		})
	}
	st := openTestStore(t, db)
	ctl, err := st.ReadControl(context.Background(), "r-running")
	if err != nil {
		t.Fatal(err)
	}
	if !ctl.CancelRequested {
		t.Errorf("r-running: cancel not recorded")
	}
}

func TestResume(t *testing.T) {
	db := seedRuns(t)
	cases := []struct {
		run  string
		want int
		msg  string
	}{
		{"r-paused", exitOK, "resume of run r-paused requested"},
		{"r-running", exitBadInput, "hubflow run JOBFILE -resume r-running"},
		{"r-done", exitBadInput, "already ended"},
		{"r-nope", exitBadInput, "no run r-nope"},
	}
	for _, tc := range cases {
		t.Run(tc.run, func(t *testing.T) {
			code, stdout, stderr := runCommands(t, nil, "resume", tc.run, "-db", db)
			if code != tc.want || !strings.Contains(stdout+stderr, tc.msg) {
				t.Errorf("got exit %d, output %q; want %d and %q", code, stdout+stderr, tc.want, tc.msg)
			}
		})
	}
	st := openTestStore(t, db)
	ctl, err := st.ReadControl(context.Background(), "r-paused")
	if err != nil {
		t.Fatal(err)
	}
	if !ctl.ResumeRequested {
		t.Errorf("r-paused: resume not recorded")
	}
}

func TestCancel_NeedsOneRun(t *testing.T) {
	code, _, stderr := runCommands(t, nil, "cancel")
	if code != exitBadInput || !strings.Contains(stderr, "one run id") {
		t.Errorf("got %d %q", code, stderr)
	}
}
