package reliability_test

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hubflow/hubflow/state"
)

// Environment of the kill matrix.
const (
	// envSoak turns on the longer matrix: twice the devices, slower, and
	// kill points until the run ends.
	envSoak = "HUBFLOW_SOAK"
	// envKillSeed replays the kill points of one seed.
	envKillSeed = "HUBFLOW_KILL_SEED"
)

// minKills is the fewest kill points a run of the matrix may take.
const minKills = 20

// killPlan is the kill matrix's shape.
type killPlan struct {
	devices, concurrency int
	kills                int
	stage                string
	seed                 uint64
}

func planKills(tb testing.TB) killPlan {
	tb.Helper()
	p := killPlan{devices: 1000, concurrency: 100, kills: 24, stage: "50ms..150ms", seed: uint64(time.Now().UnixNano() % 1_000_000)}
	if os.Getenv(envSoak) != "" {
		// Twice the devices, slower, fewer at once: a run of a few
		// minutes, killed every half second or so until it ends.
		p.devices, p.concurrency, p.kills, p.stage = 2000, 50, 1000, "200ms..600ms"
	}
	if s := os.Getenv(envKillSeed); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			tb.Fatalf("%s=%q: %v", envKillSeed, s, err)
		}
		p.seed = seed
	}
	return p
}

// killPoint is one moment to kill the runner at: a delay after the process
// started, or the moment the hub has written so many more method calls to
// devices (a kill between sending a call and recording its answer).
type killPoint struct {
	after time.Duration
	calls int64
}

func (k killPoint) String() string {
	if k.calls > 0 {
		return "after " + strconv.FormatInt(k.calls, 10) + " more calls delivered"
	}
	return "after " + k.after.String()
}

// TestKillMatrix runs a two-step job (firmware update, then reboot) over a
// thousand simulated devices with `hubflow run`, kills the process with
// SIGKILL at seeded random moments and carries the run on with
// `hubflow run -resume` each time, until it ends. The emulator's logs are
// the witness: no device is sent a step it has already done, each device's
// recorded outcome is what it did, and every event recorded before a kill
// is still there, unchanged, at the end.
func TestKillMatrix(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped with -short: kills a thousand-device run two dozen times")
	}
	plan := planKills(t)
	t.Logf("kill seed %d (replay with %s=%d)", plan.seed, envKillSeed, plan.seed)
	rng := rand.New(rand.NewPCG(plan.seed, 0x6b696c6c))

	hubflowBinary(t) // built before the fleet starts, not while it waits
	h := startHub(t, fleetHCL(fleetSpec{count: plan.devices, site: "kill", stage: plan.stage, failDownloading: 0.01}), hubOptions{seed: int64(plan.seed)})
	ids := h.sim.Devices()
	dir := t.TempDir()
	jobFile := writeFile(t, dir, "kill.hcl", jobSpec{name: "kill", site: "kill", concurrency: plan.concurrency}.hcl())
	db := filepath.Join(dir, "history.db")
	env := childEnv("IOTHUB_CONNECTION_STRING=" + h.cs)

	var runID string
	var snapshots []map[int64]event
	start := func() *child {
		args := []string{"run", jobFile, "-ca", h.hub.CAFile(), "-db", db}
		if runID != "" {
			args = append(args, "-resume", runID)
		}
		return startHubflow(t, env, args...)
	}
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("kill seed %d: "+format, append([]any{plan.seed}, args...)...)
	}

	killed, finishedEarly := 0, false
	var points []string
	for round := 0; round < plan.kills && !finishedEarly; round++ {
		var k killPoint
		if rng.IntN(2) == 0 {
			k.after = time.Duration(30+rng.IntN(500)) * time.Millisecond
		} else {
			k.calls = int64(1 + rng.IntN(40))
		}
		began := time.Now()
		sent0 := h.hub.Stats().MethodsInvoked
		c := start()
		if k.calls > 0 && runID != "" {
			// The snapshot comes first so that the kill follows the
			// trigger at once, between a call and its answer.
			snapshots = append(snapshots, readEvents(t, db))
		}
		deadline := began.Add(20 * time.Second)
		for !c.exited() {
			time.Sleep(time.Millisecond)
			now := time.Now()
			if k.calls > 0 && (h.hub.Stats().MethodsInvoked-sent0 >= k.calls || now.After(deadline)) {
				break
			}
			if k.calls == 0 && now.Sub(began) >= k.after {
				if runID != "" {
					snapshots = append(snapshots, readEvents(t, db))
				}
				break
			}
		}
		if c.exited() {
			if code := c.cmd.ProcessState.ExitCode(); code != 0 && code != 1 {
				fail("round %d: hubflow exited %d before its kill point (%s), want 0 or 1\n%s", round, code, k, c.out)
			}
			finishedEarly = true
			t.Logf("round %d: the run finished before kill point %s", round, k)
			break
		}
		c.kill()
		killed++
		points = append(points, k.String())
		if runID == "" {
			runID = onlyRunID(t, db)
		}
	}
	t.Logf("%d kill points: %s", killed, strings.Join(points, "; "))
	if killed < minKills {
		t.Errorf("kill seed %d: the run finished after %d kill points, want at least %d: shorten the kill points", plan.seed, killed, minKills)
	}

	if !finishedEarly {
		if runID == "" {
			runID = onlyRunID(t, db)
		}
		c := start()
		switch code := c.wait(3 * time.Minute); code {
		case 0, 1:
		case -1:
			fail("final round: the run did not finish in 3 minutes\n%s", c.out)
		default:
			fail("final round: hubflow exited %d, want 0 or 1\n%s", code, c.out)
		}
	}

	store, err := state.OpenReadOnly(context.Background(), db, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	run, err := store.LoadRun(context.Background(), runID)
	if err != nil {
		t.Fatal(err)
	}
	if !run.State.Finished() || run.Counts.Devices() != plan.devices {
		fail("run %s: got %s with %+v, want finished with %d devices", runID, run.State, run.Counts, plan.devices)
	}
	if run.Counts.TimedOut > 0 || run.Counts.Skipped > 0 {
		t.Errorf("kill seed %d: got %+v, want no device timed out or skipped", plan.seed, run.Counts)
	}
	rep := compareWithWitness(t, h.hub, db, executionsByKey(t, store, runID), ids, witnessOptions{stepTimeout: 2 * time.Minute})
	final := readEvents(t, db)
	lost := 0
	for i, snap := range snapshots {
		for _, e := range lostEvents(snap, final) {
			lost++
			if lost <= 10 {
				t.Errorf("kill seed %d: event %d (%s/%s %s %s) recorded before kill %d is lost or changed", plan.seed, e.ID, e.Device, e.Step, e.Kind, e.State, i+1)
			}
		}
	}
	if t.Failed() {
		t.Logf("replay with %s=%d", envKillSeed, plan.seed)
	}
	t.Logf("run %s %s: %+v", runID, run.State, run.Counts)
	t.Logf("witness: %s", rep)
	t.Logf("hub: %s", invocationOutcomes(h.hub))
	t.Logf("events: %d at the end, %d snapshots compared, %d lost", len(final), len(snapshots), lost)
	failOnIssues(t, rep)
}

// onlyRunID returns the id of the only run in the history at path, or ""
// when none was recorded yet.
func onlyRunID(tb testing.TB, path string) string {
	tb.Helper()
	if _, err := os.Stat(path); os.IsNotExist(err) {
		return ""
	}
	st, err := state.OpenReadOnly(context.Background(), path, state.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	defer st.Close()
	runs, err := st.ListRuns(context.Background(), state.RunFilter{})
	if err != nil {
		tb.Fatal(err)
	}
	switch len(runs) {
	case 0:
		return ""
	case 1:
		return runs[0].ID
	}
	tb.Fatalf("got %d runs in %s, want one", len(runs), path)
	return ""
}
