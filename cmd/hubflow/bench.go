package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/hubflow/hubflow/bench"
	"github.com/hubflow/hubflow/internal/hubadapter"
	"github.com/hubflow/hubflow/iothub"
	"github.com/hubflow/hubflow/jobs"
)

// benchFlags are the flags of `hubflow bench`.
type benchFlags struct {
	devices     string
	workflow    string
	stage       time.Duration
	tier        string
	units       int
	output      string
	hub         string
	ca          string
	gateway     string
	chart       string
	concurrency int
	rate        string
	topology    string
	sample      int
	poll        time.Duration
	limitFor    time.Duration
	dir         string
	cpuProfile  string
}

// benchCommand is `hubflow bench`.
func (a *app) benchCommand() *ffcli.Command {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	f := &benchFlags{}
	fs.StringVar(&f.devices, "devices", "1000", "fleet sizes to measure, comma-separated")
	fs.StringVar(&f.workflow, "workflow", bench.WorkflowTwoStep, "the job's steps (each one device execution per device): "+strings.Join(bench.Workflows(), ", "))
	fs.DurationVar(&f.stage, "stage", bench.DefaultStage, "duration of each simulated device stage (firmware download, apply, reboot)")
	fs.StringVar(&f.tier, "tier", "", "hub tier whose quotas the emulator enforces and the runner keeps to: F1, S1, S2 or S3 (default: none)")
	fs.IntVar(&f.units, "units", 1, "hub units, with -tier")
	fs.StringVar(&f.output, "o", "table", "output format: table or json")
	fs.StringVar(&f.hub, "hub", "", "measure this hub (service connection string with registry write access) instead of starting an emulator")
	fs.StringVar(&f.ca, "ca", "", "PEM file of a CA to trust besides the system roots, with -hub (a standalone emulator's ca.pem)")
	fs.StringVar(&f.gateway, "gateway", "", "host:port the simulated devices dial for MQTT, with -hub (default the hub's host, port 8883)")
	fs.StringVar(&f.chart, "chart", "", "also write an SVG chart of device executions per second by fleet size to this file")
	fs.IntVar(&f.concurrency, "concurrency", bench.DefaultConcurrency, "the job's rollout concurrency, and the callers measuring the limit")
	fs.StringVar(&f.rate, "rate", "auto", `the job's rollout rate in method invocations (device executions started) per second: a rate such as "30/s", "none", or "auto" (with -tier, just below what the devices' own quota use allows when that binds first; otherwise none)`)
	fs.StringVar(&f.topology, "topology", bench.TopologyAuto, "where hub and fleet run: auto, in-process or children (child processes, for fleets beyond the open-file limit)")
	fs.IntVar(&f.sample, "sample", bench.DefaultSample, "devices the baseline runs on")
	fs.DurationVar(&f.poll, "poll", 0, "how often the baseline reads a twin (default: the stage duration)")
	fs.DurationVar(&f.limitFor, "limit-duration", bench.DefaultLimitDuration, "how long the limit is measured")
	fs.StringVar(&f.dir, "dir", "", "keep databases, fleet files and child logs in this directory (default: a temporary directory, removed)")
	fs.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile (pprof) of each run to this file")
	return &ffcli.Command{
		Name:       "bench",
		ShortUsage: "hubflow bench [-devices 1000,10000] [-workflow firmware|reboot|two-step] [-stage 100ms] [-tier S1 -units 1] [-o table|json] [-chart FILE.svg] [flags]",
		ShortHelp:  "Measure hubflow's throughput and cost end to end.",
		LongHelp: strings.TrimSpace(`
For each fleet size, starts the emulator and a simulated fleet, runs a job
(the workflow on every device) through the runner and a SQLite history, and
prints per size figures in device executions: one device's execution of
one step, as the history records it (two-step makes two per device).

  exec/s            device executions per second: executions that ended /
                    wall time of the run
  devices/s         devices carried through the whole workflow per second
  limit exec/s      direct-method round trips per second through the same hub
                    and devices with no runner (a method the devices answer
                    404 at once); each execution is one method call; with
                    -tier, the executions per second the quotas allow
  runner/limit      exec/s over limit exec/s
  wf limit exec/s   the same workflow driven by bare callers that learn of
                    each device's completion from the fleet itself: what hub
                    and devices sustain at this concurrency when the back end
                    costs nothing (not measured with -tier)
  baseline exec/s   the tutorial back-end app's pace (one device at a time:
                    invoke, then read the twin every -poll until done) on
                    -sample devices, extrapolated to the fleet
  CPU s/1k exec     this process's CPU seconds per 1,000 executions
  peak RSS          this process's peak resident memory
  DB B/exec         history database bytes per execution

With -tier the emulator enforces the tier's quotas (the fleet is set up
first, then the hub restarts with quotas on) and the table adds the share
of the allowed rate reached and the 429 answers. When the devices' own
reported patches bind before the method quota, the job gets a rollout rate
(method invocations, so executions started, per second) just below what
they allow.

Hub, devices and runner share this process while the open-file limit
allows (two descriptors per device); larger fleets run the emulator and the
fleet as child hubflow processes, and this process holds only the runner.
The notes under the table say which, and what the CPU figure covers.

Examples:
  hubflow bench
  hubflow bench -devices 1000,10000 -workflow two-step -stage 100ms -chart docs/bench.svg
  hubflow bench -devices 2000 -workflow firmware -tier S1 -units 1
  hubflow bench -devices 500 -o json`),
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			if len(args) > 0 {
				return usageErrorf("bench takes no arguments; got %q", args[0])
			}
			return a.bench(ctx, f, benchCommandLine(fs))
		},
	}
}

// benchCommandLine is the command as the flags given spell it, for the
// report: what is measured first, in usage order, then the rest by name. A
// hub connection string is never part of it.
func benchCommandLine(fs *flag.FlagSet) string {
	first := []string{"devices", "workflow", "stage", "tier", "units"}
	set := map[string]string{}
	fs.Visit(func(fl *flag.Flag) {
		set[fl.Name] = fl.Value.String()
		if fl.Name == "hub" {
			set[fl.Name] = "CS"
		}
	})
	parts := []string{"hubflow bench"}
	for _, name := range first {
		if v, ok := set[name]; ok {
			parts = append(parts, "-"+name, v)
			delete(set, name)
		}
	}
	fs.Visit(func(fl *flag.Flag) {
		if v, ok := set[fl.Name]; ok {
			parts = append(parts, "-"+fl.Name, v)
		}
	})
	return strings.Join(parts, " ")
}

// parseSizes reads a comma-separated list of fleet sizes.
func parseSizes(s string) ([]int, error) {
	var sizes []int
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		n, err := strconv.Atoi(strings.ReplaceAll(part, "_", ""))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-devices: %q is not a number of devices", part)
		}
		sizes = append(sizes, n)
	}
	if len(sizes) == 0 {
		return nil, fmt.Errorf("-devices: no fleet size given")
	}
	return sizes, nil
}

// parseBenchRate reads -rate: "auto" is 0, "none" is -1 (bench.Config.Rate).
func parseBenchRate(s string) (float64, error) {
	switch s {
	case "", "auto":
		return 0, nil
	case "none":
		return -1, nil
	}
	r, err := jobs.ParseRate(s)
	if err != nil {
		return 0, fmt.Errorf("-rate: %w, or auto or none", err)
	}
	return r, nil
}

func (a *app) bench(ctx context.Context, f *benchFlags, command string) error {
	sizes, err := parseSizes(f.devices)
	if err != nil {
		return usageErrorf("%v", err)
	}
	if f.output != "table" && f.output != "json" {
		return usageErrorf("-o %q: want table or json", f.output)
	}
	if f.stage <= 0 {
		return usageErrorf("-stage %s: want a positive duration", f.stage)
	}
	rate, err := parseBenchRate(f.rate)
	if err != nil {
		return usageErrorf("%v", err)
	}
	cfg := bench.Config{
		Sizes: sizes, Workflow: f.workflow, Stage: f.stage, Concurrency: f.concurrency, Rate: rate,
		Topology: f.topology, Sample: f.sample, Poll: f.poll, LimitDuration: f.limitFor,
		Dir: f.dir, Command: command, CPUProfile: f.cpuProfile, Logger: a.logger,
		NewHub: hubadapter.New,
	}
	if f.tier != "" {
		cfg.Tier, cfg.Units = f.tier, f.units
	}
	if f.hub != "" {
		cs, err := iothub.ParseConnectionString(f.hub)
		if err != nil {
			return withCode(exitBadInput, fmt.Errorf("hub connection string: %w", err))
		}
		if cs.IsDevice() {
			return usageErrorf("hub connection string: this is a device's connection string; bench needs a service policy's with registry write access (iothubowner)")
		}
		cfg.Hub, cfg.Gateway = cs, f.gateway
		if f.ca != "" {
			if cfg.Roots, err = loadCAFile(f.ca); err != nil {
				return withCode(exitBadInput, err)
			}
			cfg.CAFile = f.ca
		}
	} else if f.ca != "" || f.gateway != "" {
		return usageErrorf("-ca and -gateway go with -hub")
	}
	if cfg.Executable, err = os.Executable(); err != nil {
		a.logger.Warn("cannot find the hubflow executable; large fleets will not run", "err", err)
	}
	if _, err := bench.RaiseFileLimit(); err != nil {
		a.logger.Warn("open-file limit", "err", err)
	}

	rep, runErr := bench.Run(ctx, cfg)
	if rep == nil {
		return usageErrorf("%v", runErr)
	}
	if len(rep.Results) > 0 {
		if err := a.writeBench(rep, f); err != nil {
			return withCode(exitHubError, err)
		}
	}
	if runErr != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return withCode(exitHubError, runErr)
	}
	return nil
}

func (a *app) writeBench(rep *bench.Report, f *benchFlags) error {
	var err error
	if f.output == "json" {
		err = bench.WriteJSON(a.stdout, rep)
	} else {
		err = bench.WriteTable(a.stdout, rep)
	}
	if err != nil || f.chart == "" {
		return err
	}
	out, err := os.Create(f.chart)
	if err != nil {
		return fmt.Errorf("write chart: %w", err)
	}
	if err := bench.WriteSVG(out, rep); err != nil {
		out.Close()
		return fmt.Errorf("write chart: %w", err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("write chart: %w", err)
	}
	fmt.Fprintf(a.stderr, "chart written to %s\n", f.chart)
	return nil
}
