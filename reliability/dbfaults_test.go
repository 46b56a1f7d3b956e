package reliability_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hubflow/hubflow/state"
)

// dbFault breaks the history database of a running hubflow process and
// returns the function that repairs it.
type dbFault struct {
	name, site string
	// inject breaks the database at path under the running process c.
	inject func(t *testing.T, c *child, path string) (clear func())
	// hold is how long the fault lasts (at most: a process that stops ends
	// it).
	hold time.Duration
	// cause must appear in the error hubflow reports, with the path.
	cause *regexp.Regexp
	// refused means the fault meets a starting process, which must refuse
	// to go on (exit 3) rather than pause.
	refused bool
}

// dbFleet is one group of devices per database fault; stages are slow
// enough that a run lasts a few seconds.
const dbFleet = `
defaults {
  reported = { fwVersion = "2.0.0" }
  reboot { duration = "100ms..300ms" }
  firmware {
    downloading = "100ms..300ms"
    applying    = "100ms..300ms"
  }
}
group "locked" {
  count = 150
  id    = "locked-%03d"
  tags  = { site = "locked" }
}
group "full" {
  count = 150
  id    = "full-%03d"
  tags  = { site = "full" }
}
group "readonly" {
  count = 150
  id    = "readonly-%03d"
  tags  = { site = "readonly" }
}
`

// TestDatabaseFaults breaks the history database under a running `hubflow
// run`: another process holds its write lock longer than hubflow waits for
// it, or the file may not grow (a file-size limit on the process, as a
// full disk), or it becomes read-only between a crash and the restart.
// hubflow must report the fault clearly (the database path and the cause),
// send no call it could not record first, lose nothing it recorded before,
// and finish the run once the fault clears. A run that stops instead of
// pausing through the fault fails.
func TestDatabaseFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped with -short: breaks the database under three runs")
	}
	hubflowBinary(t)
	h := startHub(t, dbFleet, hubOptions{seed: 5})
	faults := []dbFault{
		{
			name: "locked by another writer", site: "locked", hold: 8 * time.Second,
			cause:  regexp.MustCompile(`(?i)locked by another|database is locked`),
			inject: holdWriteLock,
		},
		{
			name: "disk full", site: "full", hold: 3 * time.Second,
			cause:  regexp.MustCompile(`(?i)disk|full|I/O`),
			inject: limitFileSize,
		},
		{
			name: "read-only", site: "readonly", hold: 15 * time.Second, refused: true,
			cause:  regexp.MustCompile(`(?i)read-?only|permission|readonly`),
			inject: makeReadOnly,
		},
	}
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) { runDBFault(t, h, f) })
	}
}

func runDBFault(t *testing.T, h *hubEnv, f dbFault) {
	site := f.site
	dir := t.TempDir()
	jobFile := writeFile(t, dir, "job.hcl", jobSpec{name: site, site: site, concurrency: 30}.hcl())
	db := filepath.Join(dir, "history.db")
	env := childEnv("IOTHUB_CONNECTION_STRING=" + h.cs)
	args := []string{"run", jobFile, "-ca", h.hub.CAFile(), "-db", db}

	sent0 := h.hub.Stats().MethodsInvoked
	c := startHubflow(t, env, args...)
	for h.hub.Stats().MethodsInvoked-sent0 < 40 {
		if c.exited() {
			t.Fatalf("hubflow ended before the fault:\n%s", c.out)
		}
		time.Sleep(2 * time.Millisecond)
	}
	runID := onlyRunID(t, db)
	before := readEvents(t, db)
	calls0 := len(h.hub.Invocations())
	clear := f.inject(t, c, db)
	t.Logf("fault injected with %d events recorded", len(before))
	during := c.wait(f.hold)
	clear()
	if f.refused {
		// Calls of the killed process still on their way may land after
		// it died; the restarted one must send none.
		n := 0
		for _, inv := range h.hub.Invocations() {
			if inv.Sent.After(c.started) {
				n++
			}
		}
		if n > 0 {
			t.Errorf("hubflow on a read-only history sent %d calls, want none", n)
		}
	}
	// A process that gave up on the history may still be waiting for the
	// devices in flight; it ends on its own.
	code := during
	if code < 0 {
		code = c.wait(2 * time.Minute)
	}
	stopped := code == 3
	if out := c.out.String(); code == 0 && f.cause.MatchString(out) {
		t.Logf("hubflow saw the fault and carried on:\n%s", lastLines(out, 6))
	}
	switch {
	case code == 0:
	case code == -1:
		t.Fatalf("the run did not finish within 2 minutes of the fault clearing:\n%s", lastLines(c.out.String(), 10))
	case stopped:
		out := c.out.String()
		when := "after"
		if during >= 0 {
			when = "during"
		}
		t.Logf("hubflow exited 3 (%s the fault); its last words:\n%s", when, lastLines(out, 6))
		if !strings.Contains(out, db) || !f.cause.MatchString(out) {
			t.Errorf("hubflow's error does not name the database %s and a cause matching %v:\n%s", db, f.cause, lastLines(out, 10))
		}
		if runID == "" {
			t.Fatal("no run was recorded before the fault")
		}
		c = startHubflow(t, env, append(args, "-resume", runID)...)
		switch code := c.wait(2 * time.Minute); code {
		case 0:
		case -1:
			t.Fatalf("the resumed run did not finish within 2 minutes:\n%s", lastLines(c.out.String(), 10))
		default:
			t.Fatalf("hubflow -resume exited %d after the fault cleared, want 0:\n%s", code, lastLines(c.out.String(), 10))
		}
	default:
		t.Fatalf("hubflow exited %d, want 0, or 3 for a history it could not write:\n%s", code, lastLines(c.out.String(), 10))
	}

	after := readEvents(t, db)
	if lost := lostEvents(before, after); len(lost) > 0 {
		t.Errorf("%d of the %d events recorded before the fault are lost or changed, the first: %+v", len(lost), len(before), lost[0])
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
	if run.State != state.RunSucceeded || run.Counts.Succeeded != 150 {
		t.Errorf("run %s: got %s %+v (%s), want all 150 succeeded", runID, run.State, run.Counts, run.Reason)
	}
	rep := compareWithWitness(t, h.hub, db, executionsByKey(t, store, runID), devicesOf(h, site), witnessOptions{stepTimeout: 2 * time.Minute})
	t.Logf("witness: %s; %d calls during and after the fault", rep, len(h.hub.Invocations())-calls0)
	failOnIssues(t, rep)
	if f.refused && !stopped {
		t.Error("hubflow went on with a history it cannot write, want exit 3")
	}
	if stopped && !f.refused {
		t.Error("hubflow stopped on a history fault that cleared, want the run to wait for it and carry on")
	}
}

// devicesOf returns the fleet's devices of a site (their ids start with it).
func devicesOf(h *hubEnv, site string) []string {
	var ids []string
	for _, id := range h.sim.Devices() {
		if strings.HasPrefix(id, site+"-") {
			ids = append(ids, id)
		}
	}
	return ids
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// holdWriteLock takes the database's write lock from another connection,
// as another process committing a long transaction would.
func holdWriteLock(t *testing.T, _ *child, path string) func() {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatalf("take the write lock: %v", err)
	}
	return func() {
		_, _ = conn.ExecContext(ctx, "ROLLBACK")
		conn.Close()
		db.Close()
	}
}

// limitFileSize stops the process's files from growing, as a full disk
// would: its file-size limit drops to one byte, so a write past the end of
// the database or its write-ahead log fails.
func limitFileSize(t *testing.T, c *child, _ string) func() {
	pid := c.cmd.Process.Pid
	var old unix.Rlimit
	if err := unix.Prlimit(pid, unix.RLIMIT_FSIZE, &unix.Rlimit{Cur: 1, Max: unix.RLIM_INFINITY}, &old); err != nil {
		t.Skipf("cannot limit the file size of process %d: %v", pid, err)
	}
	return func() {
		if err := unix.Prlimit(pid, unix.RLIMIT_FSIZE, &old, nil); err != nil && !errors.Is(err, unix.ESRCH) {
			t.Errorf("restore the file-size limit: %v", err)
		}
	}
}

// makeReadOnly kills the process (a file's mode does not bind descriptors
// already open), makes the database and its directory read-only and starts
// hubflow again on it, which must refuse to go on without writing anything
// or calling any device. File modes do not bind root: running as root, the
// restarted process runs as the unprivileged user nobody, with what it
// must read made readable to it.
func makeReadOnly(t *testing.T, c *child, path string) func() {
	c.kill()
	// Let the calls the killed process had on their way reach the
	// devices before the restart, so that they are not mistaken for its.
	time.Sleep(500 * time.Millisecond)
	runID := onlyRunID(t, path)
	dir := filepath.Dir(path)
	files, _ := filepath.Glob(path + "*")
	for _, f := range files {
		if err := os.Chmod(f, 0o444); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	restore := func() {
		_ = os.Chmod(dir, 0o700)
		for _, f := range files {
			_ = os.Chmod(f, 0o600)
		}
	}
	t.Cleanup(restore)
	args := append(c.cmd.Args[1:], "-resume", runID)
	// The restarted process takes c's place, so that the caller sees it
	// stop.
	if os.Geteuid() != 0 {
		*c = *startHubflow(t, c.cmd.Env, args...)
		return restore
	}
	// The binary, the job file (args[1]) and the hub's CA (after -ca).
	readable := []string{hubflowBinary(t), args[1]}
	for i := 1; i < len(args); i++ {
		if args[i-1] == "-ca" {
			readable = append(readable, args[i])
		}
	}
	for _, p := range readable {
		letNobodyRead(t, p)
	}
	for _, f := range files {
		letNobodyRead(t, f)
	}
	*c = *startHubflowAs(t, nobody, c.cmd.Env, args...)
	return restore
}

// nobody is the unprivileged user the read-only case runs hubflow as.
var nobody = &syscall.Credential{Uid: 65534, Gid: 65534}

// letNobodyRead makes path readable, and the directories above it
// traversable, to other users until the test ends, without giving
// anyone write access.
func letNobodyRead(t *testing.T, path string) {
	t.Helper()
	abs, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	for p := abs; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		mode := fi.Mode().Perm()
		add := os.FileMode(0o005)
		if !fi.IsDir() {
			add = 0o004 | mode&0o100>>6
		}
		if mode&add != add {
			if err := os.Chmod(p, mode|add); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = os.Chmod(p, mode) })
		}
		if p == filepath.Dir(p) {
			return
		}
	}
}
