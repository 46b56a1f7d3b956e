package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hubflow/hubflow/emulator"
	"github.com/hubflow/hubflow/examples"
	"github.com/hubflow/hubflow/internal/hubadapter"
	"github.com/hubflow/hubflow/iothub"
	"github.com/hubflow/hubflow/iothub/service"
	"github.com/hubflow/hubflow/runner"
	"github.com/hubflow/hubflow/simulator"
	"github.com/hubflow/hubflow/state"
)

// defaultFleetFile is the fleet of the embedded hub, looked up next to the
// job file and under the working directory.
const defaultFleetFile = "fleet.hcl"

// builtinFleet names the fleet built into hubflow, in messages.
const builtinFleet = "built-in " + examples.FleetName

// fleetSeed makes the embedded fleet the same on every run.
const fleetSeed = 1

// hubFlags are the flags that choose the hub a command talks to.
type hubFlags struct {
	hub   string
	ca    string
	fleet string
	tier  string
	units int
	// conns bounds the connections to the hub; 0 means defaultConns.
	// Not a flag: run sets it from the job's concurrency.
	conns int
}

// defaultConns is the connection pool of the hub client when the caller
// has no better idea; every direct method in flight holds one connection
// until the device answers.
const defaultConns = 256

func (f *hubFlags) maxConns() int {
	if f.conns > 0 {
		return f.conns
	}
	return defaultConns
}

func addHubFlags(fs *flag.FlagSet) *hubFlags {
	f := &hubFlags{}
	fs.StringVar(&f.hub, "hub", "", "service connection string of the hub (default $IOTHUB_CONNECTION_STRING; none: the embedded emulator and fleet)")
	fs.StringVar(&f.ca, "ca", "", "PEM file of a CA to trust besides the system roots (a standalone emulator's ca.pem)")
	fs.StringVar(&f.fleet, "fleet", "", "fleet file of the embedded emulator (default fleet.hcl next to the job file, else examples/fleet.hcl, else the built-in copy of it)")
	fs.StringVar(&f.tier, "hub-tier", "", "the hub's tier (F1, S1, S2, S3) whose quotas hubflow keeps to; the embedded emulator enforces them too (default none)")
	fs.IntVar(&f.units, "hub-units", 1, "the hub's units, with -hub-tier")
	return f
}

// hubConn is the hub a command talks to: a real one named by a connection
// string, or the embedded emulator with its simulated fleet.
type hubConn struct {
	hub    runner.Hub
	client *service.Client
	// host is the hub's host name, for messages (never the key).
	host   string
	emu    *emulator.Hub
	sim    *simulator.Sim
	fleet  string
	budget *runner.Budget
}

// Close stops what the connection started.
func (h *hubConn) Close() {
	if h.sim != nil {
		h.sim.Close()
	}
	h.client.Close()
	if h.emu != nil {
		h.emu.Close()
	}
}

// describe says which hub is used, for the operator.
func (h *hubConn) describe() string {
	if h.emu != nil {
		return fmt.Sprintf("embedded emulator at %s with the simulated fleet of %s", h.host, h.fleet)
	}
	return "hub " + h.host
}

// connectHub returns the hub a command uses: the --hub connection string,
// else $IOTHUB_CONNECTION_STRING, else an embedded emulator with the fleet
// findFleet picks.
func (a *app) connectHub(ctx context.Context, f *hubFlags, jobFile string) (*hubConn, error) {
	budget, err := runner.NewBudget(f.tier, f.units)
	if err != nil {
		return nil, usageErrorf("%v", err)
	}
	raw := f.hub
	if raw == "" {
		raw = a.getenv("IOTHUB_CONNECTION_STRING")
	}
	var roots *x509.CertPool
	if f.ca != "" {
		if roots, err = loadCAFile(f.ca); err != nil {
			return nil, withCode(exitBadInput, err)
		}
	}
	if raw != "" {
		cs, err := iothub.ParseConnectionString(raw)
		if err != nil {
			return nil, withCode(exitBadInput, fmt.Errorf("hub connection string: %w", err))
		}
		if cs.IsDevice() {
			return nil, usageErrorf("hub connection string: this is a device's connection string; hubflow needs a service policy's (SharedAccessKeyName=service or iothubowner)")
		}
		c, err := service.New(service.Config{ConnectionString: cs, RootCAs: roots, MaxConns: f.maxConns(), Logger: a.logger})
		if err != nil {
			return nil, withCode(exitBadInput, err)
		}
		return &hubConn{hub: hubadapter.New(c), client: c, host: cs.HostName, budget: budget}, nil
	}
	return a.embeddedHub(ctx, f, jobFile, budget)
}

// embeddedHub starts the emulator and the simulated fleet.
func (a *app) embeddedHub(ctx context.Context, f *hubFlags, jobFile string, budget *runner.Budget) (*hubConn, error) {
	fleetPath, src, err := findFleet(f.fleet, jobFile)
	if err != nil {
		return nil, err
	}
	fleet, diags := simulator.LoadFleet(fleetPath, src)
	if diags.HasErrors() {
		writeJobDiags(a.stderr, fleetPath, diags)
		return nil, silentExit(exitBadInput)
	}
	emu, err := emulator.Start(ctx, emulator.Options{Tier: f.tier, Units: f.units, Logger: a.logger})
	if err != nil {
		return nil, withCode(exitHubError, fmt.Errorf("start the embedded emulator: %w", err))
	}
	cs, err := iothub.ParseConnectionString(emu.ServiceConnectionString())
	if err != nil {
		emu.Close()
		return nil, withCode(exitHubError, err)
	}
	c, err := service.New(service.Config{ConnectionString: cs, RootCAs: emu.CAPool(), MaxConns: f.maxConns(), Logger: a.logger})
	if err != nil {
		emu.Close()
		return nil, withCode(exitHubError, err)
	}
	began := time.Now()
	sim, err := simulator.Start(ctx, fleet, simulator.Config{
		Hub: cs, RootCAs: emu.CAPool(), DeviceConnectionString: emu.DeviceConnectionString,
		Seed: fleetSeed, Logger: a.logger,
	})
	if err != nil {
		c.Close()
		emu.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, withCode(exitHubError, fmt.Errorf("start the simulated fleet: %w", err))
	}
	st := sim.Stats()
	fmt.Fprintf(a.stderr, "embedded emulator on %s: %d simulated devices from %s (%d offline) ready in %s\n",
		cs.HostName, st.Devices, fleetPath, st.Offline, time.Since(began).Round(time.Millisecond))
	return &hubConn{hub: hubadapter.New(c), client: c, host: cs.HostName, emu: emu, sim: sim, fleet: fleetPath, budget: budget}, nil
}

// findFleet returns the name and source of the fleet: the file given, else
// fleet.hcl next to the job file, else examples/fleet.hcl or fleet.hcl under
// the working directory, else the copy of examples/fleet.hcl built into
// hubflow, so that the embedded hub works from any directory.
func findFleet(given, jobFile string) (string, []byte, error) {
	if given != "" {
		src, err := os.ReadFile(given)
		if err != nil {
			return "", nil, withCode(exitBadInput, fmt.Errorf("read fleet file: %w", err))
		}
		return given, src, nil
	}
	candidates := []string{filepath.Join(filepath.Dir(jobFile), defaultFleetFile), filepath.Join("examples", defaultFleetFile), defaultFleetFile}
	for _, c := range candidates {
		src, err := os.ReadFile(c)
		if err == nil {
			return c, src, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", nil, withCode(exitBadInput, fmt.Errorf("read fleet file: %w", err))
		}
	}
	return builtinFleet, examples.Fleet(), nil
}

// hubError marks an error talking to the hub: exit 3, naming the host. A
// query the hub refused as invalid is the job's fault: exit 2.
func hubError(host string, err error) error {
	if err == nil {
		return nil
	}
	var pm *runner.PlanMismatchError
	if errors.As(err, &pm) {
		return withCode(exitBadInput, err)
	}
	if iothub.KindOf(err) == iothub.KindBadRequest {
		return withCode(exitBadInput, fmt.Errorf("hub %s refused the job: %w", host, err))
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	return withCode(exitHubError, fmt.Errorf("hub %s: %w", host, err))
}

// openStoreRW opens the history database for writing. Opening can be
// refused with "database is locked" while another process commits, so it
// is tried again for a few seconds.
func (a *app) openStoreRW(ctx context.Context, path string) (*state.Store, error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := state.Open(ctx, path, state.Options{Logger: a.logger})
		if err == nil {
			return st, nil
		}
		if !strings.Contains(err.Error(), "locked") || time.Now().After(deadline) {
			return nil, withCode(exitHubError, err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(25 * time.Millisecond):
		}
	}
}
