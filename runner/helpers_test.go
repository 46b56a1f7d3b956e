package runner_test

import (
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hubflow/hubflow/emulator"
	"github.com/hubflow/hubflow/internal/hubadapter"
	"github.com/hubflow/hubflow/iothub"
	"github.com/hubflow/hubflow/iothub/service"
	"github.com/hubflow/hubflow/jobs"
	"github.com/hubflow/hubflow/runner"
	"github.com/hubflow/hubflow/simulator"
	"github.com/hubflow/hubflow/state"
)

// fixture is an emulator with a simulated fleet and a history store.
type fixture struct {
	hub   *emulator.Hub
	sim   *simulator.Sim
	svc   *service.Client
	store *state.Store
	db    string
}

type fixtureOptions struct {
	tier  string
	units int
	// seed of the simulated fleet.
	seed int64
}

// startFixture starts an emulator on loopback, the fleet described by
// fleetHCL, and a fresh history database.
func startFixture(t testing.TB, fleetHCL string, o fixtureOptions) *fixture {
	t.Helper()
	ctx := context.Background()
	hub, err := emulator.Start(ctx, emulator.Options{Tier: o.tier, Units: o.units, DataDir: t.TempDir()})
	if err != nil {
		t.Fatalf("start emulator: %v", err)
	}
	t.Cleanup(func() { hub.Close() })
	cs, err := iothub.ParseConnectionString(hub.ServiceConnectionString())
	if err != nil {
		t.Fatal(err)
	}
	svc, err := service.New(service.Config{ConnectionString: cs, RootCAs: hub.CAPool(), MaxConns: 256})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	f := &fixture{hub: hub, svc: svc}
	if fleetHCL != "" {
		fleet, diags := simulator.LoadFleet("fleet.hcl", []byte(fleetHCL))
		if diags.HasErrors() {
			t.Fatalf("load fleet: %v", diags)
		}
		sim, err := simulator.Start(ctx, fleet, simulator.Config{
			Hub: cs, RootCAs: hub.CAPool(), DeviceConnectionString: hub.DeviceConnectionString,
			Seed: o.seed, ConnectConcurrency: 64,
		})
		if err != nil {
			t.Fatalf("start fleet: %v", err)
		}
		t.Cleanup(func() { sim.Close() })
		f.sim = sim
	}
	f.db = filepath.Join(t.TempDir(), "history.db")
	f.store = openStore(t, f.db)
	return f
}

func openStore(t testing.TB, path string) *state.Store {
	t.Helper()
	// A second handle opened while another one writes can be refused with
	// SQLITE_BUSY at once; try again for a while, as the CLI does.
	var st *state.Store
	var err error
	for try := 0; try < 100; try++ {
		if st, err = state.Open(context.Background(), path, state.Options{}); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func (f *fixture) hubAdapter() runner.Hub { return hubadapter.New(f.svc) }

// newRunner builds a runner on the fixture.
func (f *fixture) newRunner(t testing.TB, cfg runner.Config) *runner.Runner {
	t.Helper()
	if cfg.Hub == nil {
		cfg.Hub = f.hubAdapter()
	}
	if cfg.Recorder == nil {
		cfg.Recorder = f.store
	}
	if cfg.ControlInterval == 0 {
		cfg.ControlInterval = 50 * time.Millisecond
	}
	r, err := runner.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// loadJob loads the only job of an inline job file.
func loadJob(t testing.TB, src string, vars ...string) *jobs.Job {
	t.Helper()
	cfg, diags := jobs.Load(jobs.LoadConfig{Sources: []jobs.Source{{Name: "job.hcl", Bytes: []byte(src)}}, Vars: vars})
	if diags.HasErrors() {
		t.Fatalf("load job: %v", diags)
	}
	if len(cfg.Jobs) != 1 {
		t.Fatalf("got %d jobs, want 1", len(cfg.Jobs))
	}
	return cfg.Jobs[0]
}

// runJob runs job to its end and fails the test on an error.
func runJob(t testing.TB, r *runner.Runner, req runner.Request) *runner.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := r.Run(ctx, req)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return res
}

// executions returns the run's executions keyed "device/step".
func executions(t testing.TB, st *state.Store, runID string) map[string]state.Execution {
	t.Helper()
	xs, err := st.Executions(context.Background(), runID)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]state.Execution{}
	for _, x := range xs {
		out[x.DeviceID+"/"+x.Step] = x
	}
	return out
}

// invocationCounts counts the methods the emulator delivered to devices,
// keyed "device/method".
func invocationCounts(h *emulator.Hub) map[string]int {
	out := map[string]int{}
	for _, inv := range h.Invocations() {
		if !inv.Sent.IsZero() {
			out[inv.DeviceID+"/"+inv.Method]++
		}
	}
	return out
}

func stateCounts(xs map[string]state.Execution, step string) map[state.ExecState]int {
	out := map[state.ExecState]int{}
	for k, x := range xs {
		if strings.HasSuffix(k, "/"+step) {
			out[x.State]++
		}
	}
	return out
}

func fmtCounts(m map[state.ExecState]int) string {
	var keys []string
	for k := range m {
		keys = append(keys, string(k))
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%d ", k, m[state.ExecState(k)])
	}
	return strings.TrimSpace(b.String())
}

// snapshots collects progress snapshots.
type snapshots struct {
	mu  sync.Mutex
	all []runner.Snapshot
}

func (s *snapshots) add(sn runner.Snapshot) {
	s.mu.Lock()
	s.all = append(s.all, sn)
	s.mu.Unlock()
}

func (s *snapshots) states() []state.RunState {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []state.RunState
	for _, sn := range s.all {
		if len(out) == 0 || out[len(out)-1] != sn.State {
			out = append(out, sn.State)
		}
	}
	return out
}

// logTimeline logs a device's recorded history and its invocations, to
// explain a failure.
func logTimeline(t testing.TB, f *fixture, id string) {
	t.Helper()
	tl, err := f.store.DeviceTimeline(context.Background(), id, 0)
	if err != nil {
		t.Logf("timeline of %s: %v", id, err)
		return
	}
	for _, e := range tl {
		for _, ev := range e.Events {
			t.Logf("%s %s %s %s attempt=%d progress=%s err=%q detail=%q at %s", id, ev.Step, ev.Kind, ev.State, ev.Attempt, ev.Progress, ev.Error, ev.Detail, ev.ObservedAt.Format("15:04:05.000"))
		}
	}
	for _, inv := range f.hub.Invocations() {
		if inv.DeviceID == id {
			t.Logf("%s invoked %s sent %s outcome %s status %d", id, inv.Method, inv.Sent.Format("15:04:05.000"), inv.Outcome, inv.Status)
		}
	}
}

// jobsLoad loads the only job of src, for the crash test's child.
func jobsLoad(src string) (*jobs.Job, error) {
	cfg, diags := jobs.Load(jobs.LoadConfig{Sources: []jobs.Source{{Name: "job.hcl", Bytes: []byte(src)}}})
	if diags.HasErrors() {
		return nil, diags
	}
	return cfg.Jobs[0], nil
}

// loadCA reads a PEM CA file into a pool.
func loadCA(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no certificate in %s", path)
	}
	return pool, nil
}

// newRemoteFixture is a fixture for a hub in another process: only the
// service client and the store are set.
func newRemoteFixture(t testing.TB, connStr, caFile string) *fixture {
	t.Helper()
	cs, err := iothub.ParseConnectionString(connStr)
	if err != nil {
		t.Fatal(err)
	}
	roots, err := loadCA(caFile)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := service.New(service.Config{ConnectionString: cs, RootCAs: roots, MaxConns: 512})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	f := &fixture{svc: svc, db: filepath.Join(t.TempDir(), "history.db")}
	f.store = openStore(t, f.db)
	return f
}
