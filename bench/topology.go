package bench

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/hubflow/hubflow/emulator"
	"github.com/hubflow/hubflow/iothub"
	"github.com/hubflow/hubflow/iothub/service"
	"github.com/hubflow/hubflow/simulator"
)

// Topology names, as -topology takes them and the results report them.
const (
	// TopologyAuto picks in-process when the fleet fits the file limit,
	// children otherwise.
	TopologyAuto = "auto"
	// TopologyInProcess runs emulator, simulated fleet and runner in this
	// process.
	TopologyInProcess = "in-process"
	// TopologyChildren runs the emulator and the fleet in two child
	// processes; this process holds only the runner (and the limit's and
	// baseline's clients).
	TopologyChildren = "children"
	// TopologyExternal uses the hub of Config.Hub; the fleet runs in this
	// process or in a child process.
	TopologyExternal = "external-hub"
)

// fleetSeed fixes the fleet's draws.
const fleetSeed = 1

// connectConcurrency is how many devices the simulator registers and
// connects at once: more than its default, to set large fleets up sooner.
const connectConcurrency = 64

// fdMargin covers the descriptors a process holds besides connections:
// listeners, SQLite, log files, the runtime.
const fdMargin = 1000

// descriptorsInProcess is how many file descriptors one process needs to
// hold hub, devices and runner: every device and every REST connection
// counts twice (both ends), the limit's clients once more.
func descriptorsInProcess(devices, concurrency int) uint64 {
	return uint64(2*devices + 4*concurrency + fdMargin)
}

// pickTopology decides where hub and fleet run.
func pickTopology(want string, external bool, devices, concurrency int, limit uint64) (string, error) {
	if external {
		return TopologyExternal, nil
	}
	switch want {
	case TopologyInProcess, TopologyChildren:
		return want, nil
	case "", TopologyAuto:
		if limit == 0 || descriptorsInProcess(devices, concurrency) <= limit {
			return TopologyInProcess, nil
		}
		if uint64(devices+fdMargin) > limit {
			return "", fmt.Errorf("%d devices need more than the %d open files one process may hold, even with hub and fleet in separate processes", devices, limit)
		}
		return TopologyChildren, nil
	}
	return "", fmt.Errorf("unknown topology %q: want auto, in-process or children", want)
}

// hubSide is the hub and the simulated fleet of one fleet size, wherever
// they run.
type hubSide interface {
	// service is the hub's owner connection string and the roots that
	// trust its certificate.
	service() (*iothub.ConnectionString, *x509.CertPool)
	// stats are the hub's counters; ok is false when the hub is not in
	// this process.
	stats() (st emulator.Stats, ok bool)
	// applyQuota restarts the hub with a tier's quotas on, keeping its
	// addresses, registry and twins, and returns once the fleet is
	// connected again.
	applyQuota(ctx context.Context, tier string, units int) error
	// watch delivers the fleet's reported patches.
	watch() *reportWatch
	// usage is the CPU time and peak memory of the child processes, when
	// there are any.
	usage() childUsage
	// describe says where hub and fleet run, for the report.
	describe() string
	close() error
}

// childUsage is what the hub's and fleet's processes used; zero when they
// run in this process.
type childUsage struct {
	hubCPU, devicesCPU time.Duration
	hubRSS, devicesRSS int64
}

// sideConfig is what starting a hub side needs.
type sideConfig struct {
	topology   string
	dir        string // working directory of this fleet size
	fleetFile  string // the fleet file, written in dir
	fleetSrc   []byte
	devices    int // devices in the fleet file, sample included
	executable string
	hub        *iothub.ConnectionString // external hub, or nil
	roots      *x509.CertPool           // roots for the external hub
	caFile     string                   // CA file of the external hub, for a child fleet
	gateway    string                   // MQTT host:port of the external hub, or ""
	limit      uint64                   // file limit
	// persist keeps the emulator's registry on disk in dir, for a hub that
	// is restarted with quotas on. Otherwise the hub keeps it in memory
	// only, as a hub's storage is not part of what is measured, and its
	// periodic snapshots of every twin would be.
	persist bool
	log     *slog.Logger
}

func startHubSide(ctx context.Context, c sideConfig) (hubSide, error) {
	if err := os.WriteFile(c.fleetFile, c.fleetSrc, 0o600); err != nil {
		return nil, fmt.Errorf("write fleet file: %w", err)
	}
	switch c.topology {
	case TopologyInProcess:
		return startInProcess(ctx, c)
	case TopologyChildren:
		return startChildren(ctx, c)
	case TopologyExternal:
		return startExternal(ctx, c)
	}
	return nil, fmt.Errorf("unknown topology %q", c.topology)
}

// inProcess runs the emulator and the fleet in this process.
type inProcess struct {
	reports *reportWatch
	emu     *emulator.Hub
	sim     *simulator.Sim
	cs      *iothub.ConnectionString
	data    string
	log     *slog.Logger
}

func startInProcess(ctx context.Context, c sideConfig) (*inProcess, error) {
	fleet, err := loadFleet(c.fleetFile, c.fleetSrc)
	if err != nil {
		return nil, err
	}
	data := ""
	if c.persist {
		data = filepath.Join(c.dir, "emulator")
	}
	emu, err := emulator.Start(ctx, emulator.Options{DataDir: data, Logger: c.log, WitnessLimit: witnessLimit})
	if err != nil {
		return nil, fmt.Errorf("start emulator: %w", err)
	}
	p := &inProcess{emu: emu, data: data, log: c.log, reports: newReportWatch()}
	if p.cs, err = iothub.ParseConnectionString(emu.ServiceConnectionString()); err != nil {
		emu.Close()
		return nil, fmt.Errorf("start emulator: %w", err)
	}
	p.sim, err = simulator.Start(ctx, fleet, simulator.Config{
		Hub: p.cs, RootCAs: emu.CAPool(), DeviceConnectionString: emu.DeviceConnectionString,
		Seed: fleetSeed, ConnectConcurrency: connectConcurrency, Logger: c.log,
		OnReport: p.reports.onReport,
	})
	if err != nil {
		emu.Close()
		return nil, fmt.Errorf("start simulated fleet: %w", err)
	}
	return p, nil
}

// witnessLimit keeps the emulator's log of method calls, which the
// benchmark does not read, from growing with the fleet.
const witnessLimit = 1000

func loadFleet(path string, src []byte) (*simulator.Fleet, error) {
	fleet, diags := simulator.LoadFleet(path, src)
	if diags.HasErrors() {
		return nil, fmt.Errorf("fleet file: %w", diags)
	}
	return fleet, nil
}

func (p *inProcess) service() (*iothub.ConnectionString, *x509.CertPool) {
	return p.cs, p.emu.CAPool()
}

func (p *inProcess) stats() (emulator.Stats, bool) { return p.emu.Stats(), true }

func (p *inProcess) watch() *reportWatch { return p.reports }

func (p *inProcess) applyQuota(ctx context.Context, tier string, units int) error {
	httpsAddr, mqttAddr := p.emu.HTTPSAddr(), p.emu.MQTTAddr()
	if err := p.emu.Close(); err != nil {
		return fmt.Errorf("stop emulator: %w", err)
	}
	emu, err := emulator.Start(ctx, emulator.Options{
		HTTPSAddr: httpsAddr, MQTTAddr: mqttAddr, DataDir: p.data,
		Tier: tier, Units: units, Logger: p.log, WitnessLimit: witnessLimit,
	})
	if err != nil {
		return fmt.Errorf("restart emulator with quotas: %w", err)
	}
	p.emu = emu
	want := int64(p.sim.Stats().Devices - p.sim.Stats().Offline)
	err = waitFor(ctx, 2*time.Minute, 100*time.Millisecond, func() (bool, error) {
		return p.emu.Stats().ConnectedDevices >= want, nil
	})
	if err != nil {
		return fmt.Errorf("wait for the fleet to reconnect: %w", err)
	}
	return nil
}

func (p *inProcess) usage() childUsage { return childUsage{} }

func (p *inProcess) describe() string {
	return "emulator, simulated fleet and runner in one process"
}

func (p *inProcess) close() error {
	return errors.Join(p.sim.Close(), p.emu.Close())
}

// external is a hub given by connection string, with the fleet in this
// process or in a child.
type external struct {
	reports *reportWatch
	cs      *iothub.ConnectionString
	roots   *x509.CertPool
	sim     *simulator.Sim
	child   *child
	where   string
}

func startExternal(ctx context.Context, c sideConfig) (*external, error) {
	e := &external{cs: c.hub, roots: c.roots, reports: newReportWatch()}
	if c.limit == 0 || uint64(c.devices+4*fdMargin) <= c.limit {
		fleet, err := loadFleet(c.fleetFile, c.fleetSrc)
		if err != nil {
			return nil, err
		}
		e.sim, err = simulator.Start(ctx, fleet, simulator.Config{
			Hub: c.hub, RootCAs: c.roots, GatewayHostName: c.gateway,
			Seed: fleetSeed, ConnectConcurrency: connectConcurrency, Logger: c.log,
			OnReport: e.reports.onReport,
		})
		if err != nil {
			return nil, fmt.Errorf("start simulated fleet: %w", err)
		}
		e.where = "given hub; simulated fleet and runner in this process"
		return e, nil
	}
	if c.executable == "" {
		return nil, errors.New("start simulated fleet: the fleet needs a child process, and no executable to start was given")
	}
	ch, err := startSimulatorChild(ctx, c, c.hub, c.caFile, c.gateway, e.reports)
	if err != nil {
		return nil, err
	}
	e.child = ch
	e.where = "given hub; simulated fleet in a child process; runner in this process"
	return e, nil
}

func (e *external) service() (*iothub.ConnectionString, *x509.CertPool) { return e.cs, e.roots }

func (e *external) stats() (emulator.Stats, bool) { return emulator.Stats{}, false }

func (e *external) watch() *reportWatch { return e.reports }

func (e *external) applyQuota(context.Context, string, int) error {
	// A given hub enforces its own tier; the runner is only told of it.
	return nil
}

func (e *external) usage() childUsage {
	if e.child == nil {
		return childUsage{}
	}
	cpu, _ := childCPU(e.child.pid())
	rss, _ := peakRSS(e.child.pid())
	return childUsage{devicesCPU: cpu, devicesRSS: rss}
}

func (e *external) describe() string { return e.where }

func (e *external) close() error {
	if e.sim != nil {
		return e.sim.Close()
	}
	return e.child.stop()
}

// countConnected asks the hub how many devices are connected: the way to
// know when the hub runs in another process.
func countConnected(ctx context.Context, c *service.Client) (int, error) {
	it := c.Query(ctx, "SELECT COUNT() AS n FROM devices WHERE connectionState = 'Connected'", 0)
	page, err := it.Next(ctx)
	if err != nil {
		return 0, err
	}
	if len(page) != 1 {
		return 0, fmt.Errorf("count connected devices: got %d rows, want 1", len(page))
	}
	var row struct {
		N int `json:"n"`
	}
	if err := json.Unmarshal(page[0], &row); err != nil {
		return 0, fmt.Errorf("count connected devices: %w", err)
	}
	return row.N, nil
}

// waitFor polls cond every interval until it holds, fails, or timeout
// passes.
func waitFor(ctx context.Context, timeout, interval time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not done after %s", timeout)
		}
		if err := sleep(ctx, interval); err != nil {
			return err
		}
	}
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
