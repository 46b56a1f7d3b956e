package bench

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hubflow/hubflow/iothub"
	"github.com/hubflow/hubflow/iothub/service"
	"github.com/hubflow/hubflow/jobs"
	"github.com/hubflow/hubflow/runner"
	"github.com/hubflow/hubflow/state"
)

// Defaults applied by Run to zero Config fields.
const (
	DefaultConcurrency   = 512
	DefaultStage         = 100 * time.Millisecond
	DefaultSample        = 5
	DefaultLimitDuration = 3 * time.Second
)

// Config says what to measure and where.
type Config struct {
	// Sizes are the fleet sizes to measure, in order; each gets a fresh hub
	// and fleet. Required.
	Sizes []int
	// Workflow is the job's steps: WorkflowFirmware (one firmwareUpdate
	// step), WorkflowReboot (one rebootDevice step) or WorkflowTwoStep
	// (firmwareUpdate, then rebootDevice). Each step a device goes through
	// is one device execution. Default WorkflowTwoStep.
	Workflow string
	// Stage is how long each stage of a simulated device takes (firmware
	// download, firmware apply, reboot). Default DefaultStage.
	Stage time.Duration
	// Concurrency is the job's rollout concurrency, and the number of
	// callers measuring the limit. Default DefaultConcurrency.
	Concurrency int
	// Rate is the job's rollout rate, in new method invocations (device
	// executions started, retries included) per second. Zero chooses it: with a tier whose quotas bind first on what the devices
	// do (their reported patches and twin reads, which the runner cannot
	// see), just below what those quotas allow; otherwise none. Negative
	// means none; positive is used as given.
	Rate float64
	// Tier and Units turn on a hub tier's quotas: the emulator enforces
	// them and the runner keeps to them. "" measures without quotas.
	Tier  string
	Units int
	// Topology is TopologyAuto (the default), TopologyInProcess or
	// TopologyChildren. It is ignored when Hub is set.
	Topology string
	// Executable is the hubflow program whose emulator and simulate
	// commands the children topology starts (normally os.Executable()).
	Executable string
	// Hub, when set, is the service connection string (with registry write
	// access) of a hub to measure instead of starting an emulator; Roots
	// trust its certificate (nil: the system roots), CAFile is the same CA
	// as a file for a child fleet, Gateway the host:port devices dial.
	Hub     *iothub.ConnectionString
	Roots   *x509.CertPool
	CAFile  string
	Gateway string
	// NewHub adapts a REST client to the runner's Hub. Required.
	NewHub func(*service.Client) runner.Hub
	// Sample is how many devices the baseline runs on. Default
	// DefaultSample.
	Sample int
	// Poll is how often the baseline reads a device's twin. Default: Stage
	// (see Report.BaselinePollMS).
	Poll time.Duration
	// LimitDuration is how long the limit is measured. Default
	// DefaultLimitDuration.
	LimitDuration time.Duration
	// Dir is where databases, fleet files and child logs go; "" uses a
	// temporary directory that Run removes.
	Dir string
	// Command is the command line, for the report.
	Command string
	// CPUProfile, when set, is a file to write a CPU profile of each run
	// to (pprof format); with several sizes, the size is added before the
	// extension.
	CPUProfile string
	// Logger receives progress at Info. Nil discards.
	Logger *slog.Logger

	// settle overrides quotaSettle, for tests.
	settle time.Duration
}

// quotaSettle is how long to wait after the fleet reconnected to a hub with
// quotas, for the buckets the reconnection drained to fill again: the query
// bucket (20 a minute on S1, a burst of a few) is the slowest.
const quotaSettle = 10 * time.Second

func (c *Config) defaults() error {
	if len(c.Sizes) == 0 {
		return errors.New("no fleet sizes")
	}
	for _, n := range c.Sizes {
		if n < 1 || n > 99999 {
			return fmt.Errorf("fleet size %d: want 1 to 99999 devices", n)
		}
	}
	if c.NewHub == nil {
		return errors.New("Config.NewHub is required")
	}
	if c.Workflow == "" {
		c.Workflow = WorkflowTwoStep
	}
	if c.Stage == 0 {
		c.Stage = DefaultStage
	}
	if c.Stage < time.Millisecond {
		return fmt.Errorf("stage %s: want at least 1ms", c.Stage)
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.Concurrency < 1 || c.Concurrency > 100000 {
		return fmt.Errorf("concurrency %d: want 1 to 100000", c.Concurrency)
	}
	if c.Sample == 0 {
		c.Sample = DefaultSample
	}
	if c.Sample < 1 || c.Sample > 99 {
		return fmt.Errorf("baseline sample %d: want 1 to 99 devices", c.Sample)
	}
	if c.Poll == 0 {
		c.Poll = c.Stage
	}
	if c.Poll < time.Millisecond {
		return fmt.Errorf("baseline poll interval %s: want at least 1ms", c.Poll)
	}
	if c.LimitDuration == 0 {
		c.LimitDuration = DefaultLimitDuration
	}
	switch c.Topology {
	case "", TopologyAuto, TopologyInProcess, TopologyChildren:
	default:
		return fmt.Errorf("unknown topology %q: want auto, in-process or children", c.Topology)
	}
	if c.Tier != "" && c.Units == 0 {
		c.Units = 1
	}
	if _, err := runner.TierQuota(c.Tier, c.Units); err != nil {
		return err
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Run measures every fleet size of cfg in turn and returns the report. It
// stops at the first size that cannot be measured and returns the report of
// the sizes before it with the error.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.defaults(); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	wf, err := lookupWorkflow(cfg.Workflow)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	dir := cfg.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "hubflow-bench-"); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		defer os.RemoveAll(dir)
	}
	quota := allowedRate(cfg.Tier, cfg.Units, wf)
	rate := jobRate(cfg.Rate, quota)
	rep := &Report{
		Machine:        machine(),
		Command:        cfg.Command,
		Workflow:       wf.name,
		StageMS:        ms(cfg.Stage),
		Concurrency:    cfg.Concurrency,
		Tier:           strings.ToUpper(cfg.Tier),
		Units:          cfg.Units,
		StepsPerDevice: len(wf.steps),
		RolloutRate:    rate,
		BaselineSample: cfg.Sample,
		BaselinePollMS: ms(cfg.Poll),
		Started:        time.Now().UTC().Truncate(time.Second),
	}
	if cfg.Tier == "" {
		rep.Units = 0
	}
	for _, n := range cfg.Sizes {
		res, err := runSize(ctx, &cfg, wf, quota, rate, n, filepath.Join(dir, fmt.Sprintf("devices-%d", n)))
		if err != nil {
			return rep, fmt.Errorf("bench %d devices: %w", n, err)
		}
		rep.Results = append(rep.Results, res)
	}
	return rep, nil
}

func machine() Machine {
	return Machine{
		CPU: cpuModel(), Cores: runtime.NumCPU(), Go: runtime.Version(),
		OS: runtime.GOOS + "/" + runtime.GOARCH, FileLimit: fileLimit(),
	}
}

// runSize measures one fleet size: hub and fleet up, limit, baseline, then
// the run.
func runSize(ctx context.Context, cfg *Config, wf workflow, quota *Quota, rate float64, n int, dir string) (Result, error) {
	log := cfg.Logger.With("devices", n)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Result{}, err
	}
	topology, err := pickTopology(cfg.Topology, cfg.Hub != nil, n+cfg.Sample, cfg.Concurrency, fileLimit())
	if err != nil {
		return Result{}, err
	}
	// Each size reports its own peak memory, not what the one before left.
	debug.FreeOSMemory()
	rssReset := resetPeakRSS() == nil

	log.Info("starting hub and fleet", "topology", topology)
	began := time.Now()
	side, err := startHubSide(ctx, sideConfig{
		topology: topology, dir: dir, fleetFile: filepath.Join(dir, "fleet.hcl"),
		fleetSrc: []byte(fleetHCL(n, cfg.Sample, cfg.Stage)), devices: n + cfg.Sample,
		executable: cfg.Executable, hub: cfg.Hub, roots: cfg.Roots, caFile: cfg.CAFile, gateway: cfg.Gateway,
		limit: fileLimit(), persist: cfg.Tier != "", log: cfg.Logger,
	})
	if err != nil {
		return Result{}, err
	}
	defer func() {
		if err := side.close(); err != nil {
			log.Warn("stop hub and fleet", "err", err)
		}
	}()
	if cfg.Tier != "" && topology != TopologyExternal {
		log.Info("restarting the hub with quotas on", "tier", cfg.Tier, "units", cfg.Units)
		if err := side.applyQuota(ctx, cfg.Tier, cfg.Units); err != nil {
			return Result{}, err
		}
		settle := cfg.settle
		if settle == 0 {
			settle = quotaSettle
		}
		if err := sleep(ctx, settle); err != nil {
			return Result{}, err
		}
	}
	res := Result{Devices: n, Topology: topology, TopologyDetail: side.describe(), SetupSeconds: secs(time.Since(began))}
	log.Info("hub and fleet ready", "elapsed", time.Since(began).Round(time.Millisecond))

	cs, roots := side.service()
	probe, err := service.New(service.Config{ConnectionString: cs, RootCAs: roots, MaxConns: cfg.Concurrency})
	if err != nil {
		return Result{}, err
	}
	if quota == nil {
		lim, err := measureLimit(ctx, probe, deviceIDs(fleetIDPattern, n), cfg.Concurrency, cfg.LimitDuration)
		if err != nil {
			probe.Close()
			return Result{}, err
		}
		res.Limit = measuredLimit(lim, cfg.Concurrency)
		log.Info("limit measured", "round_trips_per_s", round(lim.perSecond(), 1))
	} else {
		res.Limit = Limit{Source: "quota", ExecutionsPerSecond: quota.AllowedExecutionsPerSecond}
	}
	base, err := measureBaseline(ctx, probe, deviceIDs(sampleIDPattern, cfg.Sample), wf.baselineCalls(), cfg.Poll)
	probe.Close()
	if err != nil {
		return Result{}, err
	}
	res.Baseline = baselineFigures(base, cfg.Poll, n)
	log.Info("baseline measured", "seconds_per_device", round(res.Baseline.SecondsPerDevice, 3))

	if err := runJob(ctx, cfg, wf, n, dir, side, quota, rate, &res); err != nil {
		return Result{}, err
	}
	// The peak is read before the workflow limit, which runs on the same
	// process without the runner.
	if rss, err := peakRSS(0); err == nil && rssReset {
		res.PeakRSSBytes = rss
	}
	if quota == nil {
		driver, err := service.New(service.Config{ConnectionString: cs, RootCAs: roots, MaxConns: cfg.Concurrency})
		if err != nil {
			return Result{}, err
		}
		wl, err := measureWorkflowLimit(ctx, driver, side.watch(), deviceIDs(fleetIDPattern, n), wf.driverCalls(), cfg.Concurrency)
		driver.Close()
		if err != nil {
			return Result{}, err
		}
		if wl.failed > 0 {
			log.Warn("workflow limit: devices not carried through", "failed", wl.failed, "first_error", wl.firstErr)
		}
		res.WorkflowLimit = workflowLimitFigures(wl, cfg.Concurrency)
		res.RunnerToWorkflowLimit = ratio(res.ExecutionsPerSecond, res.WorkflowLimit.ExecutionsPerSecond)
		log.Info("workflow limit measured", "executions_per_s", round(res.WorkflowLimit.ExecutionsPerSecond, 1))
	}
	return res, nil
}

// runJob carries out the job through the runner and fills in the run's
// figures.
func runJob(ctx context.Context, cfg *Config, wf workflow, n int, dir string, side hubSide, quota *Quota, rate float64, res *Result) error {
	log := cfg.Logger.With("devices", n)
	cs, roots := side.service()
	client, err := service.New(service.Config{ConnectionString: cs, RootCAs: roots, MaxConns: cfg.Concurrency + 32})
	if err != nil {
		return err
	}
	defer client.Close()
	hub := &countingHub{hub: cfg.NewHub(client)}
	dbPath := filepath.Join(dir, "hubflow.db")
	store, err := state.Open(ctx, dbPath, state.Options{Logger: cfg.Logger})
	if err != nil {
		return err
	}
	defer store.Close()
	budget, err := runner.NewBudget(cfg.Tier, max(cfg.Units, 1))
	if err != nil {
		return err
	}
	r, err := runner.New(runner.Config{Hub: hub, Recorder: store, Budget: budget, Logger: cfg.Logger})
	if err != nil {
		return err
	}
	src := jobHCL(wf, n, cfg.Concurrency, rate)
	jc, diags := jobs.Load(jobs.LoadConfig{Sources: []jobs.Source{{Name: "bench.hcl", Bytes: []byte(src)}}})
	if diags.HasErrors() {
		return fmt.Errorf("load the benchmark job: %w", diags)
	}
	prog := &progress{}
	stopProgress := prog.log(log)

	res.LoadBefore = loadAverage()
	hubBefore, inProc := side.stats()
	useBefore := side.usage()
	stopProfile, err := startProfile(cfg.CPUProfile, n, len(cfg.Sizes) > 1)
	if err != nil {
		return err
	}
	cpuBefore := processCPU()
	busyBefore, busyErr := machineBusy()
	start := time.Now()
	run, err := r.Run(ctx, runner.Request{Job: jc.Jobs[0], Progress: prog.set})
	wall := time.Since(start)
	cpu := processCPU() - cpuBefore
	busyAfter, busyErr2 := machineBusy()
	if perr := stopProfile(); perr != nil {
		log.Warn("write cpu profile", "err", perr)
	}
	useAfter := side.usage()
	hubAfter, _ := side.stats()
	stopProgress()
	if err != nil {
		return fmt.Errorf("run the benchmark job: %w", err)
	}
	c := run.Counts
	log.Info("run finished", "state", run.State, "succeeded", c.Succeeded, "wall", wall.Round(time.Millisecond))
	res.RunID, res.RunState = run.RunID, string(run.State)
	xs, err := store.Executions(ctx, run.RunID)
	if err != nil {
		log.Warn("read the run's executions; counting every step of each finished device", "err", err)
		xs = nil
	}
	tally(res, c, xs, len(wf.steps), wall)
	res.RunnerToLimit = ratio(res.ExecutionsPerSecond, res.Limit.ExecutionsPerSecond)
	res.HubflowToBaseline = ratio(res.ExecutionsPerSecond, res.Baseline.ExecutionsPerSecond)
	res.CPUSeconds = secs(cpu)
	if res.Executions > 0 {
		res.CPUSecondsPer1000 = res.CPUSeconds * 1000 / float64(res.Executions)
	}
	res.HubCPUSeconds = secs(useAfter.hubCPU - useBefore.hubCPU)
	res.DevicesCPUSeconds = secs(useAfter.devicesCPU - useBefore.devicesCPU)
	res.HubPeakRSSBytes, res.DevicesPeakRSSBytes = useAfter.hubRSS, useAfter.devicesRSS
	res.CPUScope = cpuScope(res.Topology, side)
	if busyErr == nil && busyErr2 == nil {
		// Clock-tick rounding can make this slightly negative.
		other := busyAfter - busyBefore - cpu - (useAfter.hubCPU - useBefore.hubCPU) - (useAfter.devicesCPU - useBefore.devicesCPU)
		res.OtherCPUSeconds = max(0, secs(other))
	}
	res.RunnerCalls = Calls{
		Methods: hub.methods.Load(), TwinReads: hub.reads.Load(), QueryPages: hub.pages.Load(),
		DesiredPatches: hub.patches.Load(), Throttled: hub.throttled.Load(),
		MethodMS: meanMS(&hub.methodTime, &hub.methods), TwinReadMS: meanMS(&hub.readTime, &hub.reads),
		QueryPageMS: meanMS(&hub.pageTime, &hub.pages),
	}
	if inProc {
		res.HubOps = &HubOps{
			Methods:     hubAfter.MethodsInvoked - hubBefore.MethodsInvoked,
			TwinReads:   hubAfter.TwinReads - hubBefore.TwinReads,
			TwinUpdates: hubAfter.TwinUpdates - hubBefore.TwinUpdates,
			Queries:     hubAfter.Queries - hubBefore.Queries,
			Throttled:   hubAfter.Throttled - hubBefore.Throttled,
		}
	}
	if quota != nil {
		q := *quota
		q.MethodsPerSecond = perSecond(int(hub.answered.Load()), wall)
		q.MethodShare = ratio(q.MethodsPerSecond, q.MethodRate)
		q.AllowedShare = ratio(res.ExecutionsPerSecond, q.AllowedExecutionsPerSecond)
		if res.HubOps != nil {
			o := res.HubOps
			q.Throttled = o.Throttled
			q.ThrottledShare = ratio(float64(o.Throttled), float64(o.Methods+o.TwinReads+o.TwinUpdates+o.Queries+o.Throttled))
			q.ThrottledScope = "every metered hub operation, runner's and devices'"
		} else {
			q.Throttled = hub.throttled.Load()
			q.ThrottledShare = ratio(float64(q.Throttled), float64(hub.calls()))
			q.ThrottledScope = "the runner's calls"
		}
		res.Quota = &q
	}
	if err := store.Close(); err != nil {
		return fmt.Errorf("close the run history: %w", err)
	}
	res.DBBytes = fileSize(dbPath) + fileSize(dbPath+"-wal")
	if res.Executions > 0 {
		res.DBBytesPerExecution = float64(res.DBBytes) / float64(res.Executions)
	}
	return nil
}

// startProfile starts a CPU profile into path (with the fleet size added
// before the extension when several sizes are measured); the returned
// function stops it.
func startProfile(path string, n int, several bool) (stop func() error, err error) {
	if path == "" {
		return func() error { return nil }, nil
	}
	if several {
		ext := filepath.Ext(path)
		path = fmt.Sprintf("%s-%d%s", strings.TrimSuffix(path, ext), n, ext)
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() error {
		pprof.StopCPUProfile()
		return f.Close()
	}, nil
}

func cpuScope(topology string, side hubSide) string {
	switch topology {
	case TopologyInProcess:
		return "this process: runner, SQLite store, emulator and simulated fleet"
	case TopologyChildren:
		return "this process: runner and SQLite store (emulator and fleet in child processes, counted apart)"
	}
	if ext, ok := side.(*external); ok && ext.sim != nil {
		return "this process: runner, SQLite store and simulated fleet (the hub runs elsewhere)"
	}
	return "this process: runner and SQLite store (the hub runs elsewhere; the fleet in a child process)"
}

// allowedRate is the tier's allowance turned into device executions (one
// device through one step) per second, or nil without a tier. Besides the
// runner's method calls, the devices' own reported patches and twin reads
// count against the hub's twin quotas, and the runner must read each
// device's twin at least once. When a quota the runner cannot see binds
// first, JobRate is the rate that keeps within it, with the same headroom
// the runner's budget keeps: the job's rate counts method invocations,
// each of which starts an execution, so it is in the same unit.
func allowedRate(tier string, units int, wf workflow) *Quota {
	if tier == "" {
		return nil
	}
	q, err := runner.TierQuota(tier, units)
	if err != nil {
		return nil
	}
	type bound struct {
		name string
		rate float64
	}
	// The costs are a device's through the whole workflow; a device
	// makes one execution per step.
	steps := float64(len(wf.steps))
	bounds := []bound{{"direct methods", float64(q[runner.OpMethod]) * steps / float64(wf.methods())}}
	if p := wf.devicePatches(); p > 0 {
		bounds = append(bounds, bound{"twin updates (the devices' reported patches)", float64(q[runner.OpTwinUpdate]) * steps / float64(p)})
	}
	bounds = append(bounds, bound{"twin reads (the devices' and the runner's)", float64(q[runner.OpTwinRead]) * steps / float64(wf.deviceReads()+1)})
	b := slices.MinFunc(bounds, func(x, y bound) int {
		switch {
		case x.rate < y.rate:
			return -1
		case x.rate > y.rate:
			return 1
		}
		return 0
	})
	out := &Quota{
		Tier: strings.ToUpper(tier), Units: units,
		MethodRate:                 float64(q[runner.OpMethod]),
		AllowedExecutionsPerSecond: b.rate,
		AllowedDevicesPerSecond:    b.rate / steps,
		BoundBy:                    b.name,
	}
	if b.name != bounds[0].name {
		out.JobRate = math.Floor(b.rate*jobRateHeadroom*1000) / 1000
	}
	return out
}

// jobRate resolves Config.Rate against the quota's suggestion, and records
// the rate the job gets in the quota.
func jobRate(want float64, quota *Quota) float64 {
	rate := want
	switch {
	case rate < 0:
		rate = 0
	case rate == 0 && quota != nil:
		rate = quota.JobRate
	}
	if quota != nil {
		quota.JobRate = rate
	}
	return rate
}

// jobRateHeadroom keeps the job's rate below a device-side quota, as the
// runner's budget keeps below the quotas it meters.
const jobRateHeadroom = 0.95

// measuredLimit is the limit's figures from its measurement. Each device
// execution is one method call, so the round trips per second are the
// executions per second as they are.
func measuredLimit(lim limitResult, workers int) Limit {
	return Limit{
		Source: "measured", RoundTripsPerSecond: lim.perSecond(), Workers: workers,
		Seconds: secs(lim.elapsed), Errors: lim.errors,
		ExecutionsPerSecond: lim.perSecond(),
	}
}

// baselineFigures is the baseline's figures from its run on the sample,
// extrapolated to a fleet of n.
func baselineFigures(base baselineResult, poll time.Duration, n int) Baseline {
	b := Baseline{
		Devices: base.devices, PollMS: ms(poll),
		ExecutionsPerSecond: perSecond(base.executions, base.total),
		DevicesPerSecond:    perSecond(base.devices, base.total),
	}
	if base.devices > 0 {
		b.SecondsPerDevice = secs(base.total) / float64(base.devices)
		b.FleetSeconds = b.SecondsPerDevice * float64(n)
	}
	return b
}

func workflowLimitFigures(wl workflowLimitResult, workers int) *WorkflowLimit {
	return &WorkflowLimit{
		Workers: workers, Devices: wl.devices, Executions: wl.executions, Seconds: secs(wl.elapsed),
		ExecutionsPerSecond: perSecond(wl.executions, wl.elapsed),
		DevicesPerSecond:    perSecond(wl.devices, wl.elapsed),
	}
}

// tally fills in the run's counts and rates from its devices' counts and
// its history's executions (nil when they could not be read). The counts
// are the devices' states; the executions are the history's rows, one per
// device and step, of which a device that failed a step has none that
// ended for the steps after it. Without the history, every step of each
// finished device is counted.
func tally(res *Result, c state.Counts, xs []state.Execution, steps int, wall time.Duration) {
	res.Succeeded, res.Failed, res.TimedOut = c.Succeeded, c.Failed, c.TimedOut
	finished := c.Succeeded + c.Failed + c.TimedOut
	res.Executions = finished * steps
	if xs != nil {
		res.Executions = finishedExecutions(xs)
		res.MeanExecutionSeconds = meanExecutionTime(xs)
		res.MeanDeviceSeconds = meanDeviceTime(xs)
	}
	res.WallSeconds = secs(wall)
	res.ExecutionsPerSecond = perSecond(res.Executions, wall)
	res.DevicesPerSecond = perSecond(finished, wall)
}

// finishedExecutions is the number of executions that ended succeeded,
// failed or timed out: skipped ones never invoked anything.
func finishedExecutions(xs []state.Execution) int {
	n := 0
	for _, x := range xs {
		switch x.State {
		case state.ExecSucceeded, state.ExecFailed, state.ExecTimedOut:
			n++
		}
	}
	return n
}

// meanExecutionTime is the mean time from an execution's first invocation
// to its end, over the executions that ended.
func meanExecutionTime(xs []state.Execution) float64 {
	var total time.Duration
	n := 0
	for _, x := range xs {
		if d := x.Duration(); d > 0 {
			total += d
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return secs(total) / float64(n)
}

// meanDeviceTime is the mean time from a device's first invocation to the
// end of its last step.
func meanDeviceTime(xs []state.Execution) float64 {
	type span struct{ from, to time.Time }
	spans := map[string]*span{}
	for _, x := range xs {
		if x.StartedAt.IsZero() || x.EndedAt.IsZero() {
			continue
		}
		s := spans[x.DeviceID]
		if s == nil {
			spans[x.DeviceID] = &span{x.StartedAt, x.EndedAt}
			continue
		}
		if x.StartedAt.Before(s.from) {
			s.from = x.StartedAt
		}
		if x.EndedAt.After(s.to) {
			s.to = x.EndedAt
		}
	}
	if len(spans) == 0 {
		return 0
	}
	var total time.Duration
	for _, s := range spans {
		total += s.to.Sub(s.from)
	}
	return secs(total) / float64(len(spans))
}

// progress keeps the run's latest snapshot for a periodic log line.
type progress struct {
	mu   sync.Mutex
	last runner.Snapshot
	seen bool
}

func (p *progress) set(s runner.Snapshot) {
	p.mu.Lock()
	p.last, p.seen = s, true
	p.mu.Unlock()
}

// log writes the latest snapshot every five seconds until the returned
// function is called.
func (p *progress) log(log *slog.Logger) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			p.mu.Lock()
			s, seen := p.last, p.seen
			p.mu.Unlock()
			if seen {
				log.Info("run progress", "finished", s.Counts.Finished(), "of", s.Total, "running", s.Counts.Running,
					"rate_per_s", round(s.Rate, 1), "throttled", s.Throttled)
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

func deviceIDs(pattern string, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf(pattern, i+1)
	}
	return ids
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func secs(d time.Duration) float64 { return d.Seconds() }

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func perSecond(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func round(x float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(x*p) / p
}
