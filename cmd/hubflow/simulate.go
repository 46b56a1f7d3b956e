package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/hubflow/hubflow/emulator"
	"github.com/hubflow/hubflow/iothub"
	"github.com/hubflow/hubflow/simulator"
)

// simulateCommand runs a simulated device fleet against a hub until
// interrupted.
func (a *app) simulateCommand() *ffcli.Command {
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	var (
		fleetPath   = fs.String("fleet", "", "fleet file (HCL) describing the devices; required")
		hub         = fs.String("hub", "", "service connection string with registry write access (default $IOTHUB_CONNECTION_STRING)")
		caFile      = fs.String("ca", "", "PEM file of a CA to trust besides the system roots (the emulator's ca.pem)")
		gateway     = fs.String("gateway", "", "host[:port] devices dial for MQTT (default the hub's host, port 8883)")
		seed        = fs.Int64("seed", 1, "seed of the fleet's draws; the same seed gives the same fleet")
		concurrency = fs.Int("concurrency", simulator.DefaultConnectConcurrency, "devices registered or connected at once")
		reports     = fs.Bool("reports", false, "print every reported-property patch to stdout as one JSON line")
		every       = fs.Duration("stats", 0, "print the fleet's counters to stderr at this interval (0: at start and stop only)")
	)
	return &ffcli.Command{
		Name:       "simulate",
		ShortUsage: "hubflow simulate -fleet FILE [-hub CS] [-ca FILE] [-gateway HOST:PORT] [flags]",
		ShortHelp:  "Run a simulated device fleet against a hub.",
		LongHelp: strings.TrimSpace(`
Registers the devices a fleet file describes (creating those that do not
exist), sets their tags, connects them over MQTT and keeps them running until
interrupted. The devices answer rebootDevice and firmwareUpdate as the Azure
IoT Hub device-management tutorials do, report their progress in reported
properties, and acknowledge a maintenanceWindow desired property. The fleet
file says how long each step takes, how often it fails, and which devices are
offline, flaky or slow.

The connection string needs registry write access (iothubowner, or
registryReadWrite with serviceConnect). Against the emulator, pass its CA
with -ca; devices dial the hub's host on port 8883 unless -gateway says
otherwise.

Examples:
  hubflow simulate -fleet examples/fleet.hcl -hub "$IOTHUB_CONNECTION_STRING"
  hubflow simulate -fleet examples/fleet.hcl -ca ~/.hubflow/emulator/ca.pem -reports
  hubflow simulate -fleet big.hcl -concurrency 64 -stats 10s`),
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			if len(args) > 0 {
				return usageErrorf("simulate takes no arguments; name the fleet file with -fleet")
			}
			if *fleetPath == "" {
				return usageErrorf("simulate needs -fleet FILE (for example -fleet examples/fleet.hcl)")
			}
			src, err := os.ReadFile(*fleetPath)
			if err != nil {
				return withCode(exitBadInput, fmt.Errorf("read fleet file: %w", err))
			}
			fleet, diags := simulator.LoadFleet(*fleetPath, src)
			writeJobDiags(a.stderr, *fleetPath, diags)
			if diags.HasErrors() {
				return silentExit(exitBadInput)
			}
			cfg := simulator.Config{
				GatewayHostName:    *gateway,
				Logger:             a.logger,
				Seed:               *seed,
				ConnectConcurrency: *concurrency,
			}
			if cfg.Hub, err = simulateHub(*hub, a.getenv("IOTHUB_CONNECTION_STRING")); err != nil {
				return err
			}
			if *caFile != "" {
				if cfg.RootCAs, err = loadCAFile(*caFile); err != nil {
					return withCode(exitBadInput, err)
				}
			}
			if *reports {
				cfg.OnReport = reportPrinter(a.stdout)
			}
			return a.simulate(ctx, fleet, cfg, *every)
		},
	}
}

// simulate runs the fleet until ctx ends.
func (a *app) simulate(ctx context.Context, fleet *simulator.Fleet, cfg simulator.Config, every time.Duration) error {
	began := time.Now()
	sim, err := simulator.Start(ctx, fleet, cfg)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return withCode(exitHubError, err)
	}
	st := sim.Stats()
	fmt.Fprintf(a.stderr, "simulating %d devices on %s (%d connected, %d offline, %d newly registered) after %s; interrupt to stop\n",
		st.Devices, cfg.Hub.HostName, st.Connected, st.Offline, st.Registered, time.Since(began).Round(time.Millisecond))
	var tick <-chan time.Time
	if every > 0 {
		t := time.NewTicker(every)
		defer t.Stop()
		tick = t.C
	}
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-tick:
			fmt.Fprintln(a.stderr, formatSimStats(sim.Stats()))
		}
	}
	st = sim.Stats()
	err = sim.Close()
	fmt.Fprintln(a.stderr, "stopped: "+formatSimStats(st))
	return err
}

// simulateHub parses the service connection string from the flag or the
// environment.
func simulateHub(flagValue, envValue string) (*iothub.ConnectionString, error) {
	s := flagValue
	if s == "" {
		s = envValue
	}
	if s == "" {
		return nil, usageErrorf("simulate needs a hub: pass -hub or set IOTHUB_CONNECTION_STRING to a service connection string with registry write access")
	}
	cs, err := iothub.ParseConnectionString(s)
	if err != nil {
		return nil, withCode(exitBadInput, fmt.Errorf("hub connection string: %w", err))
	}
	if cs.IsDevice() {
		return nil, usageErrorf("hub connection string: this is a device's connection string; simulate needs a service policy's (SharedAccessKeyName=iothubowner, …)")
	}
	return cs, nil
}

// loadCAFile returns the system roots plus the certificates in path.
func loadCAFile(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read CA file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("read CA file %s: no PEM certificate in it", path)
	}
	return pool, nil
}

// reportPrinter writes each reported patch as one JSON line.
func reportPrinter(w io.Writer) func(string, map[string]any) {
	var mu sync.Mutex
	return func(id string, patch map[string]any) {
		line, err := json.Marshal(struct {
			Device   string         `json:"device"`
			Reported map[string]any `json:"reported"`
		}{id, patch})
		if err != nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(w, "%s\n", line)
	}
}

func formatSimStats(st simulator.Stats) string {
	return fmt.Sprintf("devices=%d connected=%d offline=%d methods=%d reboots=%d firmware_started=%d firmware_completed=%d firmware_failed=%d windows_accepted=%d windows_rejected=%d disconnects=%d reports_deferred=%d",
		st.Devices, st.Connected, st.Offline, st.Methods, st.Reboots, st.FirmwareStarted, st.FirmwareCompleted,
		st.FirmwareFailed, st.WindowsAccepted, st.WindowsRejected, st.Disconnects, st.ReportsDeferred)
}

// startEmulatorFleet registers and runs the fleet in file against an
// in-process emulator (`hubflow emulator -fleet FILE`) until ctx ends; the
// returned wait blocks until the devices have disconnected. Diagnostics of
// the fleet file are printed to stderr.
func (a *app) startEmulatorFleet(ctx context.Context, hub *emulator.Hub, file string) (wait func() error, err error) {
	src, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read fleet file: %w", err)
	}
	fleet, diags := simulator.LoadFleet(file, src)
	writeJobDiags(a.stderr, file, diags)
	if diags.HasErrors() {
		return nil, fmt.Errorf("fleet file %s has errors", file)
	}
	cs, err := iothub.ParseConnectionString(hub.ServiceConnectionString())
	if err != nil {
		return nil, err
	}
	sim, err := simulator.Start(ctx, fleet, simulator.Config{
		Hub: cs, DeviceConnectionString: hub.DeviceConnectionString, RootCAs: hub.CAPool(),
		Seed: 1, Logger: a.logger,
	})
	if err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() {
		<-ctx.Done()
		done <- sim.Close()
	}()
	return func() error { return <-done }, nil
}
