package state_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hubflow/hubflow/state"
)

// crashChildEnv names the database a re-executed test binary writes to
// until it is killed.
const crashChildEnv = "HUBFLOW_STATE_CRASH_CHILD"

// TestStore_SurvivesKill re-runs this test binary as a child that commits
// events with AppendSync and reports each commit on stdout; the child is
// killed with SIGKILL mid-stream, and every commit it reported must be in
// the database.
func TestStore_SurvivesKill(t *testing.T) {
	if path := os.Getenv(crashChildEnv); path != "" {
		crashChild(path)
		return
	}
	path := filepath.Join(t.TempDir(), "h.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestStore_SurvivesKill$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	committed := -1
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		n, ok := strings.CutPrefix(sc.Text(), "committed ")
		if !ok {
			continue
		}
		if committed, err = strconv.Atoi(n); err != nil {
			t.Fatal(err)
		}
		if committed >= 50 {
			break
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if committed < 50 {
		t.Fatalf("child reported %d commits before it ended, want 50", committed)
	}

	s, err := state.Open(context.Background(), path, state.Options{})
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer s.Close()
	xs, err := s.Executions(context.Background(), "crash")
	if err != nil {
		t.Fatal(err)
	}
	if len(xs) < committed+1 {
		t.Errorf("executions after kill: got %d, want at least the %d reported committed", len(xs), committed+1)
	}
	for _, x := range xs {
		if x.State != state.ExecInvoking || x.Attempt != 1 {
			t.Errorf("execution %s: got %s attempt %d, want invoking attempt 1", x.DeviceID, x.State, x.Attempt)
		}
	}
}

func crashChild(path string) {
	ctx := context.Background()
	s, err := state.Open(ctx, path, state.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := s.CreateRun(ctx, state.NewRun{ID: "crash", Job: "crash", Trigger: state.TriggerManual, Steps: []string{"update"}}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for i := 0; ; i++ {
		// Asynchronous progress that may or may not make it, then the
		// synchronous commit that must.
		d := fmt.Sprintf("d%05d", i)
		if i > 0 {
			s.Append(ctx, progressEv("crash", fmt.Sprintf("d%05d", i-1), "update", 0, `"x"`, time.Now()))
		}
		err := s.AppendSync(ctx, state.Event{RunID: "crash", DeviceID: d, Step: "update", Kind: state.KindState,
			State: state.ExecInvoking, Attempt: 1})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Printf("committed %d\n", i)
	}
}
