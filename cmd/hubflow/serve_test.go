package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hubflow/hubflow/runner"
	"github.com/hubflow/hubflow/state"
)

// serveClock is a clock that moves only when a test advances it.
type serveClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*serveTimer
	added  chan struct{} // signalled when a timer is added
}

type serveTimer struct {
	clock *serveClock
	at    time.Time
	c     chan time.Time
}

func newServeClock(now time.Time) *serveClock {
	return &serveClock{now: now, added: make(chan struct{}, 1)}
}

func (c *serveClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *serveClock) NewTimer(d time.Duration) runner.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &serveTimer{clock: c, at: c.now.Add(d), c: make(chan time.Time, 1)}
	if d <= 0 {
		t.c <- c.now
		return t
	}
	c.timers = append(c.timers, t)
	select {
	case c.added <- struct{}{}:
	default:
	}
	return t
}

func (t *serveTimer) C() <-chan time.Time { return t.c }

func (t *serveTimer) Stop() bool {
	c := t.clock
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.timers)
	c.timers = slices.DeleteFunc(c.timers, func(x *serveTimer) bool { return x == t })
	return len(c.timers) < n
}

// advanceTo sets the time and fires the timers due by then.
func (c *serveClock) advanceTo(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = now
	c.timers = slices.DeleteFunc(c.timers, func(t *serveTimer) bool {
		if t.at.After(now) {
			return false
		}
		t.c <- now
		return true
	})
}

// waitTimer waits until a timer is pending that fires by at.
func (c *serveClock) waitTimer(tb testing.TB, at time.Time) {
	tb.Helper()
	deadline := time.After(20 * time.Second)
	for {
		c.mu.Lock()
		ok := slices.ContainsFunc(c.timers, func(t *serveTimer) bool { return !t.at.After(at) })
		c.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-c.added:
		case <-deadline:
			tb.Fatalf("no timer pending for %s", at)
		}
	}
}

var _ runner.Clock = (*serveClock)(nil)

// serveLogs is a stderr that parses each line as a JSON log record.
type serveLogs struct {
	mu      sync.Mutex
	partial []byte
	recs    []map[string]any
	bad     []string
	changed chan struct{}
}

func newServeLogs() *serveLogs { return &serveLogs{changed: make(chan struct{}, 1)} }

func (l *serveLogs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		line := l.partial[:i]
		var rec map[string]any
		if err := json.Unmarshal(line, &rec); err != nil {
			l.bad = append(l.bad, string(line))
		} else {
			l.recs = append(l.recs, rec)
		}
		l.partial = l.partial[i+1:]
	}
	select {
	case l.changed <- struct{}{}:
	default:
	}
	return len(p), nil
}

// count returns how many records have msg and every key=value of kv.
func (l *serveLogs) count(msg string, kv ...string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
next:
	for _, r := range l.recs {
		if r["msg"] != msg {
			continue
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if s, _ := r[kv[i]].(string); s != kv[i+1] {
				continue next
			}
		}
		n++
	}
	return n
}

// waitFor waits until count(msg, kv...) reaches n.
func (l *serveLogs) waitFor(tb testing.TB, n int, msg string, kv ...string) {
	tb.Helper()
	deadline := time.After(30 * time.Second)
	for l.count(msg, kv...) < n {
		select {
		case <-l.changed:
		case <-deadline:
			tb.Fatalf("waited for %d %q records with %v, got %d; log:\n%s", n, msg, kv, l.count(msg, kv...), l.dump())
		}
	}
}

func (l *serveLogs) dump() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, r := range l.recs {
		if r["level"] == "DEBUG" && r["component"] != "scheduler" {
			continue
		}
		j, _ := json.Marshal(r)
		b.Write(j)
		b.WriteByte('\n')
	}
	return b.String()
}

const serveFleet = `
defaults {
  reboot { duration = "20ms..50ms" }
}
group "a" {
  count = 2
  id    = "a-%03d"
}
group "b" {
  count = 2
  id    = "b-%03d"
  tags  = { site = "b" }
}
group "c" {
  count = 1
  id    = "c-%03d"
}
`

// serveJob is a reboot job on target, every minute.
func serveJob(name, target string) string {
	return `job "` + name + `" {
  target {
    ` + target + `
  }
  schedule {
    cron = "CRON_TZ=UTC * * * * *"
  }
  step "reboot" {
    method  = "rebootDevice"
    success = try(timecmp(reported.rebootTime, step.started_at) > 0, false)
    timeout = "1m"
  }
}
`
}

func writeServeFile(tb testing.TB, dir, name, content string) {
	tb.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
		tb.Fatal(err)
	}
}

// TestServe_CronJobsEndToEnd serves two job files on a per-minute cron
// against the embedded emulator and simulated fleet, with the real runner
// and history database, crossing two slots on a manual clock; a third job
// file is added and picked up by a reload in between.
func TestServe_CronJobsEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped with -short: starts the emulator and a fleet")
	}
	dir := t.TempDir()
	writeServeFile(t, dir, "fleet.hcl", serveFleet)
	writeServeFile(t, dir, "reboot-a.hcl", serveJob("reboot-a", `devices = ["a-001", "a-002"]`))
	writeServeFile(t, dir, "reboot-b.hcl", serveJob("reboot-b", `query = "tags.site = 'b'"`))
	db := filepath.Join(t.TempDir(), "history.db")

	clock := newServeClock(time.Date(2026, 3, 1, 10, 0, 30, 0, time.UTC))
	reload := make(chan struct{})
	logs := newServeLogs()
	var stdout bytes.Buffer
	a := &app{stdin: strings.NewReader(""), stdout: &stdout, stderr: logs}
	cmd := a.serveCommandWith(serveDeps{clock: clock, reload: reload})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		errc <- cmd.ParseAndRun(ctx, []string{"-db", db, "-log-format", "json", "-log-level", "debug", dir})
	}()

	slot1 := time.Date(2026, 3, 1, 10, 1, 0, 0, time.UTC)
	clock.waitTimer(t, slot1)
	clock.advanceTo(slot1)
	logs.waitFor(t, 1, "run returned", "component", "scheduler", "run", "reboot-a-20260301T100100Z", "state", "succeeded")
	logs.waitFor(t, 1, "run returned", "component", "scheduler", "run", "reboot-b-20260301T100100Z", "state", "succeeded")

	writeServeFile(t, dir, "reboot-c.hcl", serveJob("reboot-c", `devices = ["c-001"]`))
	reload <- struct{}{}
	logs.waitFor(t, 1, "job scheduled", "job", "reboot-c")

	slot2 := slot1.Add(time.Minute)
	clock.waitTimer(t, slot2)
	clock.advanceTo(slot2)
	for _, job := range []string{"reboot-a", "reboot-b", "reboot-c"} {
		logs.waitFor(t, 1, "run returned", "component", "scheduler", "run", job+"-20260301T100200Z", "state", "succeeded")
	}
	cancel()
	select {
	case err := <-errc:
		if code := exitCodeOf(err); err != nil {
			t.Fatalf("serve: got %v (exit %d), want a clean stop", err, code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}

	if n := logs.count("run launched", "job", "reboot-a", "run", "reboot-a-20260301T100100Z", "slot", "2026-03-01T10:01:00Z"); n != 1 {
		t.Errorf("got %d 'run launched' records with job, run and slot keys, want 1", n)
	}
	if n := logs.count("not a job file (no job block); skipped", "file", filepath.Join(dir, "fleet.hcl")); n == 0 {
		t.Error("fleet.hcl was not reported as skipped")
	}
	if logs.count("scheduler stopped") != 1 {
		t.Error("no record of the scheduler stopping")
	}
	logs.mu.Lock()
	if len(logs.bad) > 0 {
		t.Errorf("stderr has lines that are not JSON records: %q", logs.bad)
	}
	logs.mu.Unlock()

	st, err := state.OpenReadOnly(context.Background(), db, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	runs, err := st.ListRuns(context.Background(), state.RunFilter{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]state.Run{}
	for _, r := range runs {
		got[r.ID] = r
	}
	for id, devices := range map[string]int{
		"reboot-a-20260301T100100Z": 2, "reboot-b-20260301T100100Z": 2,
		"reboot-a-20260301T100200Z": 2, "reboot-b-20260301T100200Z": 2, "reboot-c-20260301T100200Z": 1,
	} {
		r, ok := got[id]
		switch {
		case !ok:
			t.Errorf("run %s not recorded; runs: %v", id, slices.Collect(func(yield func(string) bool) {
				for id := range got {
					if !yield(id) {
						return
					}
				}
			}))
		case r.State != state.RunSucceeded || r.Trigger != state.TriggerSchedule || r.Counts.Succeeded != devices:
			t.Errorf("run %s: got state %s, trigger %s, %d succeeded; want succeeded, schedule, %d", id, r.State, r.Trigger, r.Counts.Succeeded, devices)
		}
	}
	if len(runs) != 5 {
		t.Errorf("got %d runs, want 5", len(runs))
	}
}

func TestServe_BadInput(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "job.hcl")
	writeServeFile(t, dir, "job.hcl", serveJob("j", `devices = ["d"]`))
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no directory", nil, "one directory"},
		{"two directories", []string{dir, dir}, "one directory"},
		{"missing directory", []string{filepath.Join(dir, "nope")}, "job directory"},
		{"a file", []string{file}, "not a directory"},
		{"log format", []string{"-log-format", "xml", dir}, "-log-format must be text or json"},
		{"log level", []string{"-log-level", "loud", dir}, "-log-level must be"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			a := &app{stdin: strings.NewReader(""), stdout: &bytes.Buffer{}, stderr: &stderr}
			err := a.serveCommandWith(serveDeps{}).ParseAndRun(context.Background(), append([]string{"-db", filepath.Join(t.TempDir(), "h.db")}, tc.args...))
			if code := exitCodeOf(err); code != exitBadInput || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got exit %d, %v; want exit %d and an error with %q", code, err, exitBadInput, tc.want)
			}
		})
	}
}

func TestServe_LogLines(t *testing.T) {
	logs := newServeLogs()
	l, err := newServeLogger(logs, "json", "info")
	if err != nil {
		t.Fatal(err)
	}
	w := &lineLogger{log: l}
	if _, err := w.Write([]byte("embedded emulator on 127.0.0.1:1\n\n  second line\n")); err != nil {
		t.Fatal(err)
	}
	if n := logs.count("embedded emulator on 127.0.0.1:1"); n != 1 {
		t.Errorf("got %d records of the first line, want 1", n)
	}
	if n := logs.count("second line"); n != 1 {
		t.Errorf("got %d records of the second line, want 1", n)
	}
	if len(logs.recs) != 2 {
		t.Errorf("got %d records, want 2 (blank lines dropped)", len(logs.recs))
	}
}

func TestServe_Help(t *testing.T) {
	a := &app{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}
	help := usageFunc(a.serveCommand())
	for _, want := range []string{"USAGE", "hubflow serve DIR", "Example", "SIGHUP", "-log-format", "-hub-tier", "-var-file"} {
		if !strings.Contains(help, want) {
			t.Errorf("help lacks %q:\n%s", want, help)
		}
	}
}
