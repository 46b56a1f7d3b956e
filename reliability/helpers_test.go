package reliability_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" driver, to read the history file as SQL

	"github.com/hubflow/hubflow/emulator"
	"github.com/hubflow/hubflow/internal/hubadapter"
	"github.com/hubflow/hubflow/iothub"
	"github.com/hubflow/hubflow/iothub/service"
	"github.com/hubflow/hubflow/jobs"
	"github.com/hubflow/hubflow/runner"
	"github.com/hubflow/hubflow/simulator"
	"github.com/hubflow/hubflow/state"
)

// envBinary names a prebuilt hubflow binary to use instead of building one,
// for running the compiled test binary where no Go toolchain is at hand
// (for example as an unprivileged user, so that permissions apply).
const envBinary = "HUBFLOW_RELIABILITY_BIN"

// built is the hubflow binary, built once per test process.
var built struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// hubflowBinary returns the path of a hubflow binary built from cmd/hubflow
// without the race detector, as the tests' child processes.
func hubflowBinary(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv(envBinary); p != "" {
		return p
	}
	if testing.Short() {
		tb.Skip("skipped with -short: builds the hubflow binary")
	}
	built.once.Do(func() {
		dir, err := os.MkdirTemp("", "hubflow-reliability-")
		if err != nil {
			built.err = err
			return
		}
		built.dir = dir
		built.path = filepath.Join(dir, "hubflow")
		// CGO_ENABLED=0 as the repository's other builds of the binary, so
		// that they share the build cache.
		cmd := exec.Command("go", "build", "-o", built.path, "../cmd/hubflow")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build ../cmd/hubflow: %v\n%s", err, out)
		}
	})
	if built.err != nil {
		tb.Fatal(built.err)
	}
	return built.path
}

// childEnv is the environment of a hubflow child process: the test's,
// without hub and history settings a developer may have exported.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "HUBFLOW_") || strings.HasPrefix(kv, "IOTHUB_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// result is how a hubflow child process ended.
type result struct {
	code           int
	stdout, stderr string
}

// runHubflow runs hubflow with args to its end, within timeout.
func runHubflow(tb testing.TB, timeout time.Duration, env []string, args ...string) result {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, hubflowBinary(tb), args...)
	cmd.Env = env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	res := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	default:
		tb.Fatalf("hubflow %s: %v", strings.Join(args, " "), err)
	}
	if ctx.Err() != nil {
		tb.Fatalf("hubflow %s: still running after %s\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), timeout, res.stdout, res.stderr)
	}
	return res
}

// child is a hubflow child process.
type child struct {
	cmd     *exec.Cmd
	out     *lockedBuffer
	done    chan struct{}
	started time.Time
}

// startHubflow starts hubflow with args; the process is killed when the
// test ends if it is still running.
func startHubflow(tb testing.TB, env []string, args ...string) *child {
	tb.Helper()
	return startHubflowAs(tb, nil, env, args...)
}

// startHubflowAs is startHubflow as the user cred (nil: this process's).
func startHubflowAs(tb testing.TB, cred *syscall.Credential, env []string, args ...string) *child {
	tb.Helper()
	cmd := exec.Command(hubflowBinary(tb), args...)
	cmd.Env = env
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	c := &child{cmd: cmd, out: &lockedBuffer{}, done: make(chan struct{}), started: time.Now()}
	cmd.Stdout, cmd.Stderr = c.out, c.out
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() { _ = cmd.Wait(); close(c.done) }()
	tb.Cleanup(func() { c.kill() })
	return c
}

// kill ends the process with SIGKILL and waits for it.
func (c *child) kill() {
	select {
	case <-c.done:
	default:
		_ = c.cmd.Process.Signal(syscall.SIGKILL)
		<-c.done
	}
}

// exited reports whether the process has ended.
func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// wait waits up to d for the process to end and returns its exit code, or
// -1 if it is still running.
func (c *child) wait(d time.Duration) int {
	select {
	case <-c.done:
		return c.cmd.ProcessState.ExitCode()
	case <-time.After(d):
		return -1
	}
}

// lockedBuffer is a bytes.Buffer safe for a process to write while the
// test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// hubEnv is an emulator on loopback with a simulated fleet connected to it.
type hubEnv struct {
	hub *emulator.Hub
	sim *simulator.Sim
	svc *service.Client
	// cs is the hub's iothubowner connection string.
	cs string
}

// hubOptions shape startHub.
type hubOptions struct {
	// dataDir, httpsAddr and mqttAddr are the emulator's; empty means a
	// temporary directory and free ports.
	dataDir, httpsAddr, mqttAddr string
	// seed of the fleet's draws.
	seed int64
	// logger and fleetLogger receive the emulator's and the fleet's logs;
	// nil discards them.
	logger, fleetLogger *slog.Logger
}

// startHub starts an emulator and the fleet described by fleetHCL, both
// stopped when the test ends.
func startHub(tb testing.TB, fleetHCL string, o hubOptions) *hubEnv {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	hub, err := emulator.Start(ctx, emulator.Options{DataDir: o.dataDir, HTTPSAddr: o.httpsAddr, MQTTAddr: o.mqttAddr, Logger: o.logger})
	if err != nil {
		tb.Fatalf("start emulator: %v", err)
	}
	tb.Cleanup(func() { hub.Close() })
	e := &hubEnv{hub: hub, cs: hub.ServiceConnectionString()}
	cs, err := iothub.ParseConnectionString(e.cs)
	if err != nil {
		tb.Fatal(err)
	}
	e.svc, err = service.New(service.Config{ConnectionString: cs, RootCAs: hub.CAPool(), MaxConns: 256})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(e.svc.Close)
	if fleetHCL == "" {
		return e
	}
	fleet, diags := simulator.LoadFleet("fleet.hcl", []byte(fleetHCL))
	if diags.HasErrors() {
		tb.Fatalf("load fleet: %v", diags)
	}
	e.sim, err = simulator.Start(ctx, fleet, simulator.Config{
		Hub: cs, RootCAs: hub.CAPool(), DeviceConnectionString: hub.DeviceConnectionString,
		Seed: o.seed, ConnectConcurrency: 64, Logger: o.fleetLogger,
	})
	if err != nil {
		tb.Fatalf("start fleet: %v", err)
	}
	tb.Cleanup(func() { e.sim.Close() })
	return e
}

// runner builds a runner on the hub, recording in store.
func (e *hubEnv) runner(tb testing.TB, store *state.Store) *runner.Runner {
	tb.Helper()
	r, err := runner.New(runner.Config{Hub: hubadapter.New(e.svc), Recorder: store, ControlInterval: 50 * time.Millisecond, Logger: testLogger(tb)})
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// envDebug, when set, sends the in-process runners' debug log to the test
// log.
const envDebug = "HUBFLOW_RELIABILITY_DEBUG"

// testLogger returns nil (discard) unless envDebug is set.
func testLogger(tb testing.TB) *slog.Logger {
	if os.Getenv(envDebug) == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(tbWriter{tb}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tbWriter struct{ tb testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// fleetSpec describes a generated fleet file.
type fleetSpec struct {
	count int
	site  string
	// stage is every reboot and firmware stage's duration range.
	stage string
	// failDownloading is the probability that a firmware download fails.
	failDownloading float64
	// extra is appended verbatim: more groups.
	extra string
}

// fleetHCL renders a fleet file of spec.count devices "<site>-NNNN".
func fleetHCL(spec fleetSpec) string {
	return fmt.Sprintf(`
defaults {
  reported = { fwVersion = "2.0.0" }
  reboot { duration = %[3]q }
  firmware {
    downloading      = %[3]q
    applying         = %[3]q
    fail_downloading = %[4]g
  }
}

group "main" {
  count = %[1]d
  id    = "%[2]s-%%04d"
  tags  = { site = %[2]q }
}
%[5]s`, spec.count, spec.site, spec.stage, spec.failDownloading, spec.extra)
}

// jobSpec describes a generated two-step job: a firmware update then a
// reboot of every device of a site, as the job-file contract's example has
// it, with short timeouts.
type jobSpec struct {
	name, site  string
	concurrency int
	// rate is the rollout's rate; "" means none.
	rate string
	// responseTimeout is the methods' response_timeout; default "10s".
	responseTimeout string
	// timeout is each step's timeout; default "2m".
	timeout string
	// attempts and backoff are each step's retry policy; default 5 and
	// "200ms".
	attempts int
	backoff  string
}

func (s jobSpec) hcl() string {
	def := func(v, d string) string {
		if v == "" {
			return d
		}
		return v
	}
	attempts := s.attempts
	if attempts == 0 {
		attempts = 5
	}
	rate := ""
	if s.rate != "" {
		rate = fmt.Sprintf("\n    rate        = %q", s.rate)
	}
	return fmt.Sprintf(`
job %[1]q {
  target { query = "tags.site = '%[2]s'" }
  rollout {
    concurrency = %[3]d%[8]s
  }

  step "update" {
    method           = "firmwareUpdate"
    payload          = { fwPackageUri = "https://firmware.example.com/edge-2.1.0.bin" }
    response_timeout = %[4]q
    progress = reported.firmwareStatus
    success  = reported.firmwareStatus == "completed" && reported.fwVersion == "2.1.0"
    failure  = reported.firmwareStatus == "failed"
    timeout  = %[5]q
    retry {
      attempts = %[6]d
      backoff  = %[7]q
    }
  }

  step "reboot" {
    method           = "rebootDevice"
    response_timeout = %[4]q
    success = try(timecmp(reported.rebootTime, step.started_at) > 0, false)
    timeout = %[5]q
    retry {
      attempts = %[6]d
      backoff  = %[7]q
    }
  }
}
`, s.name, s.site, max(s.concurrency, 1), def(s.responseTimeout, "10s"), def(s.timeout, "2m"), attempts, def(s.backoff, "200ms"), rate)
}

// loadJob loads the only job of an inline job file.
func loadJob(tb testing.TB, src string) *jobs.Job {
	tb.Helper()
	cfg, diags := jobs.Load(jobs.LoadConfig{Sources: []jobs.Source{{Name: "job.hcl", Bytes: []byte(src)}}})
	if diags.HasErrors() {
		tb.Fatalf("load job: %v", diags)
	}
	if len(cfg.Jobs) != 1 {
		tb.Fatalf("got %d jobs, want 1", len(cfg.Jobs))
	}
	return cfg.Jobs[0]
}

// writeFile writes content to name under dir and returns its path.
func writeFile(tb testing.TB, dir, name, content string) string {
	tb.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		tb.Fatal(err)
	}
	return p
}

// openStore opens the history database, trying again while another
// process holds it, as the CLI does.
func openStore(tb testing.TB, path string, opts state.Options) *state.Store {
	tb.Helper()
	var st *state.Store
	var err error
	for range 100 {
		if st, err = state.Open(context.Background(), path, opts); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		tb.Fatalf("open store: %v", err)
	}
	tb.Cleanup(func() { st.Close() })
	return st
}

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// event is one row of the events table, as compared across kills.
type event struct {
	ID       int64
	Device   string
	Step     string
	Kind     string
	State    string
	Attempt  int
	Progress string
	Error    string
	Detail   string
	Observed int64
}

// readEvents returns every recorded event, read through a read-only connection so that the
// process writing the file is not disturbed.
func readEvents(tb testing.TB, path string) map[int64]event {
	tb.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT id, device_id, step, kind, COALESCE(state, ''), COALESCE(attempt, 0),
		COALESCE(progress, ''), COALESCE(error, ''), COALESCE(detail, ''), observed_ms FROM events`)
	if err != nil {
		tb.Fatalf("read events of %s: %v", path, err)
	}
	defer rows.Close()
	out := map[int64]event{}
	for rows.Next() {
		var e event
		if err := rows.Scan(&e.ID, &e.Device, &e.Step, &e.Kind, &e.State, &e.Attempt, &e.Progress, &e.Error, &e.Detail, &e.Observed); err != nil {
			tb.Fatal(err)
		}
		out[e.ID] = e
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

// lostEvents returns the events of before that after lacks or holds
// changed, sorted by id.
func lostEvents(before, after map[int64]event) []event {
	var lost []event
	for id, e := range before {
		if got, ok := after[id]; !ok || got != e {
			lost = append(lost, e)
		}
	}
	sort.Slice(lost, func(i, j int) bool { return lost[i].ID < lost[j].ID })
	return lost
}

// executionsByKey returns the run's executions keyed "device/step".
func executionsByKey(tb testing.TB, st *state.Store, runID string) map[string]state.Execution {
	tb.Helper()
	xs, err := st.Executions(context.Background(), runID)
	if err != nil {
		tb.Fatal(err)
	}
	out := make(map[string]state.Execution, len(xs))
	for _, x := range xs {
		out[x.DeviceID+"/"+x.Step] = x
	}
	return out
}
