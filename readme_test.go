package hubflow_test

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hubflow/hubflow/state"
)

// quickStart returns the shell commands of the README's "Quick start"
// section, one per fenced sh block, in order.
func quickStart(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("README.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cmds []string
	in, fenced := false, false
	var block []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "## "):
			in = strings.TrimSpace(strings.TrimPrefix(line, "## ")) == "Quick start"
		case in && !fenced && line == "```sh":
			fenced, block = true, nil
		case in && fenced && line == "```":
			fenced = false
			cmds = append(cmds, strings.TrimSpace(strings.Join(block, "\n")))
		case in && fenced:
			block = append(block, line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return cmds
}

// TestREADME_QuickStart holds the README to its promise: exactly two
// commands, the second is what CI runs, and the first, run exactly as
// written, finishes a run of the example job on the embedded emulator and
// records it.
func TestREADME_QuickStart(t *testing.T) {
	cmds := quickStart(t)
	if len(cmds) != 2 {
		t.Fatalf("README quick start: got %d commands %q, want 2 (run the example; run the tests)", len(cmds), cmds)
	}
	ci, err := os.ReadFile(".ci/run")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(ci), "\n"+cmds[1]+"\n") {
		t.Errorf(".ci/run does not run the README's test command %q", cmds[1])
	}
	if testing.Short() {
		t.Skip("the example run is skipped with -short")
	}
	if !strings.HasPrefix(cmds[0], "go run ./cmd/hubflow run ") {
		t.Fatalf("first quick-start command %q does not run the example job", cmds[0])
	}

	db := filepath.Join(t.TempDir(), "quickstart.db")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", cmds[0])
	cmd.Env = append(os.Environ(), "HUBFLOW_DB="+db, "IOTHUB_CONNECTION_STRING=")
	// go run leaves the built binary as a grandchild: stop the whole group.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	// The example fleet has devices that fail or stay offline, so the run
	// ends failed (exit 1) as often as succeeded; anything else is a fault.
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 1) {
		t.Fatalf("%s: %v\n%s", cmds[0], err, out)
	}
	st, err := state.OpenReadOnly(ctx, db, state.Options{})
	if err != nil {
		t.Fatalf("the quick start recorded no history: %v\n%s", err, out)
	}
	defer st.Close()
	runs, err := st.ListRuns(ctx, state.RunFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1 || !runs[0].State.Finished() {
		t.Fatalf("got runs %+v, want one finished run\n%s", runs, out)
	}
	if runs[0].Counts.Succeeded == 0 {
		t.Errorf("no device succeeded in the example run: %+v\n%s", runs[0].Counts, out)
	}
}
