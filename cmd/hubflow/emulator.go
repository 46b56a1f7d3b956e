package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strings"
	"text/tabwriter"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/hubflow/hubflow/emulator"
)

// fleetStarter registers and connects the simulated fleet described in
// file against hub. The fleet runs until ctx ends; wait returns once it has
// stopped.
type fleetStarter func(ctx context.Context, hub *emulator.Hub, file string) (wait func() error, err error)

// emulatorDeps are what the emulator command needs from packages that the
// command wiring provides.
type emulatorDeps struct {
	// startFleet backs -fleet; nil makes -fleet an error.
	startFleet fleetStarter
}

// emulatorCommand is `hubflow emulator`.
func (a *app) emulatorCommand() *ffcli.Command {
	return a.emulatorCommandWith(emulatorDeps{startFleet: a.startEmulatorFleet})
}

func (a *app) emulatorCommandWith(deps emulatorDeps) *ffcli.Command {
	fs := flag.NewFlagSet("emulator", flag.ContinueOnError)
	fs.SetOutput(a.stderr)
	var (
		httpsAddr   = fs.String("https", "127.0.0.1:8443", "listen address of the REST front end (HTTPS); port 0 picks a free port")
		mqttAddr    = fs.String("mqtt", "127.0.0.1:8883", "listen address of the device front end (MQTT over TLS); port 0 picks a free port")
		dataDir     = fs.String("data", "", "directory for the CA, certificates and registry snapshot, reused across starts (default: a temporary directory removed on exit)")
		fleet       = fs.String("fleet", "", "register and run the simulated fleet described in this file")
		tier        = fs.String("tier", "", "enforce a hub tier's throttling limits: F1, S1, S2 or S3 (default: no limits)")
		units       = fs.Int("units", 1, "number of units of -tier")
		allowRemote = fs.Bool("allow-remote", false, "allow listening on non-loopback addresses")
		latency     = fs.Duration("method-latency", 0, "fault: delay every direct method by this long")
		drop        = fs.Float64("drop-methods", 0, "fault: fraction (0 to 1) of direct methods never delivered (callers get 504)")
	)
	return &ffcli.Command{
		Name:       "emulator",
		ShortUsage: "hubflow emulator [flags]",
		ShortHelp:  "Run a local IoT Hub (HTTPS REST and MQTT over TLS).",
		LongHelp: strings.TrimSpace(`
Runs a local Azure IoT Hub until interrupted. Back-end applications use the
REST front end with the printed service connection string; devices connect
over MQTT with their device connection strings. Clients must trust the
printed CA file (for Node.js SDKs: NODE_EXTRA_CA_CERTS=<file>).

With -data the CA, the device keys and the twins survive restarts, so
connection strings stay valid. Listening on 127.0.0.1:443 and
127.0.0.1:8883 lets unmodified SDKs use HostName=localhost.

Examples:
  hubflow emulator
  hubflow emulator -data ~/.hubflow/emulator -tier S1 -units 1
  hubflow emulator -https 127.0.0.1:0 -mqtt 127.0.0.1:0 -method-latency 200ms`),
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			if len(args) > 0 {
				return usageErrorf("emulator takes no arguments; got %q", args[0])
			}
			switch strings.ToUpper(*tier) {
			case "", "F1", "S1", "S2", "S3":
			default:
				return usageErrorf("-tier %q is not a hub tier; use F1, S1, S2 or S3", *tier)
			}
			if *units < 1 || *units > 200 || (strings.EqualFold(*tier, "F1") && *units != 1) {
				return usageErrorf("-units %d is out of range (F1 has 1 unit, other tiers 1 to 200)", *units)
			}
			if *drop < 0 || *drop > 1 {
				return usageErrorf("-drop-methods %v is not a fraction from 0 to 1", *drop)
			}
			if *latency < 0 {
				return usageErrorf("-method-latency cannot be negative")
			}
			for _, f := range []struct{ name, addr string }{{"https", *httpsAddr}, {"mqtt", *mqttAddr}} {
				if _, _, err := net.SplitHostPort(f.addr); err != nil {
					return usageErrorf("-%s %q is not host:port", f.name, f.addr)
				}
				if !*allowRemote && !loopbackAddr(f.addr) {
					return usageErrorf("-%s %s is not a loopback address; add -allow-remote to listen there (every key is then reachable over the network)", f.name, f.addr)
				}
			}
			if *fleet != "" && deps.startFleet == nil {
				return usageErrorf("-fleet needs the device simulator, which this build of hubflow does not include")
			}

			hub, err := emulator.Start(ctx, emulator.Options{
				HTTPSAddr:   *httpsAddr,
				MQTTAddr:    *mqttAddr,
				AllowRemote: *allowRemote,
				DataDir:     *dataDir,
				Tier:        *tier,
				Units:       *units,
				Logger:      a.logger,
			})
			if err != nil {
				var le *emulator.ListenError
				if errors.As(err, &le) {
					return withCode(exitHubError, fmt.Errorf("%w (flag -%s)", err, le.Which))
				}
				return withCode(exitHubError, err)
			}
			defer hub.Close()
			hub.Faults().MethodLatency(*latency)
			hub.Faults().DropMethods(*drop)

			var waitFleet func() error
			if *fleet != "" {
				fleetCtx, stopFleet := context.WithCancel(ctx)
				defer stopFleet()
				waitFleet, err = deps.startFleet(fleetCtx, hub, *fleet)
				if err != nil {
					return withCode(exitBadInput, fmt.Errorf("start fleet: %w", err))
				}
			}
			if err := printEmulator(a.stdout, hub, *dataDir == ""); err != nil {
				return err
			}
			<-ctx.Done()
			fmt.Fprintln(a.stderr, "hubflow: stopping the emulator")
			if waitFleet != nil {
				if err := waitFleet(); err != nil && !errors.Is(err, context.Canceled) {
					a.logger.Error("simulated fleet stopped with an error", "error", err)
				}
			}
			if err := hub.Close(); err != nil {
				return withCode(exitHubError, err)
			}
			return nil
		},
	}
}

// loopbackAddr reports whether addr's host is a loopback name or address.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// printEmulator writes the addresses, the CA file and the connection strings
// an operator needs to point applications at the hub.
func printEmulator(w io.Writer, hub *emulator.Hub, temporary bool) error {
	dataNote := ""
	if temporary {
		dataNote = " (temporary, removed on exit)"
	}
	tw := tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
	fmt.Fprintf(tw, "hubflow IoT Hub emulator is running (Ctrl-C stops it)\n")
	fmt.Fprintf(tw, "  REST (HTTPS):\t%s\n", hub.HTTPSAddr())
	fmt.Fprintf(tw, "  MQTT (TLS):\t%s\n", hub.MQTTAddr())
	fmt.Fprintf(tw, "  CA file:\t%s\n", hub.CAFile())
	fmt.Fprintf(tw, "  Data dir:\t%s%s\n", hub.DataDir(), dataNote)
	fmt.Fprintf(tw, "\nService connection string (iothubowner):\n  %s\n", hub.ServiceConnectionString())
	ids := hub.DeviceIDs()
	if len(ids) == 0 {
		fmt.Fprintf(tw, "\nNo devices are registered yet; create them with the service connection string.\n")
	} else {
		fmt.Fprintf(tw, "\nDevice connection strings:\n")
		for _, id := range ids {
			cs, err := hub.DeviceConnectionString(id)
			if err != nil {
				continue // deleted since listing
			}
			fmt.Fprintf(tw, "  %s\t%s\n", id, cs)
		}
	}
	return tw.Flush()
}
