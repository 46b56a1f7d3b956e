package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/hubflow/hubflow/runner"
	"github.com/hubflow/hubflow/scheduler"
)

// serveDeps are what tests of `hubflow serve` swap in.
type serveDeps struct {
	// clock is the time schedules follow; nil means the system clock.
	clock runner.Clock
	// reload asks for the job directory to be read again; nil means
	// SIGHUP does.
	reload <-chan struct{}
}

// serveFlags are the flags of `hubflow serve`.
type serveFlags struct {
	vars      *jobVarFlags
	hub       *hubFlags
	db        *string
	logFormat string
	logLevel  string
}

// serveCommand is `hubflow serve`.
func (a *app) serveCommand() *ffcli.Command {
	return a.serveCommandWith(serveDeps{})
}

func (a *app) serveCommandWith(deps serveDeps) *ffcli.Command {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(a.stderr)
	f := &serveFlags{vars: addJobVarFlags(fs), hub: addHubFlags(fs), db: a.dbFlag(fs)}
	fs.StringVar(&f.logFormat, "log-format", "text", "log format on stderr: text or json")
	fs.StringVar(&f.logLevel, "log-level", "info", "least severe log records written: debug, info, warn or error")
	return &ffcli.Command{
		Name:       "serve",
		ShortUsage: "hubflow serve DIR [-var NAME=VALUE]... [-hub CS] [-db PATH] [-log-format json] [flags]",
		ShortHelp:  "Create runs of the jobs in a directory on their schedules.",
		LongHelp: strings.TrimSpace(`
Runs until stopped, creating a run of each job in DIR at every slot of its
schedule: every match of its cron spec (in its CRON_TZ zone, following the
daylight-saving rules of the job-file contract), or once at its at time. An
at time that has already passed when serve starts gets its one run then,
unless the history holds it already. Jobs without a schedule are loaded and
left to hubflow run; files without a job block (fleet and var files) are
skipped. -var, -var-file and HUBFLOW_VAR_name apply to every file.

A run is named after its job and slot (JOB-20261122T010000Z), so a restarted
serve never launches a slot twice. Unless a job sets prohibit_overlap =
false, a slot that comes while the job's previous run is unfinished is
skipped and logged, not queued. Slots that pass while serve is not running
(or the clock jumps) are not caught up; only the latest is launched.

At start, serve carries on the unfinished runs that a schedule created,
with their job from the current files; a run whose job changed or is gone
is logged and left as it is. Runs started by hubflow run are left to
hubflow run -resume.

SIGHUP reloads DIR: new jobs are scheduled, removed jobs get no new runs
(runs in flight finish), and a file that no longer validates is reported
with file:line:col and keeps its previous version. SIGTERM or SIGINT stops
creating runs and drains the runs in flight (no new device starts, the
devices in flight finish), then exits 0; a second signal leaves them
unfinished, to be carried on at the next start (exit 130).

Logs go to stderr as text or JSON, with the keys job, run and slot. All
runs share one hub connection and one quota budget (-hub-tier, -hub-units).

Examples:
  hubflow serve /etc/hubflow/jobs -db /var/lib/hubflow/hubflow.db -hub-tier S1
  hubflow serve examples -log-format json -log-level debug`),
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			pos, err := parseArgs(fs, args)
			if err != nil {
				return err
			}
			if len(pos) != 1 {
				return usageErrorf("serve takes one directory of job files, got %d arguments", len(pos))
			}
			return a.serve(ctx, pos[0], f, deps)
		},
	}
}

func (a *app) serve(ctx context.Context, dir string, f *serveFlags, deps serveDeps) error {
	logger, err := newServeLogger(a.stderr, f.logFormat, f.logLevel)
	if err != nil {
		return err
	}
	if st, err := os.Stat(dir); err != nil {
		return usageErrorf("job directory: %v", err)
	} else if !st.IsDir() {
		return usageErrorf("%s is not a directory; serve takes the directory that holds the job files", dir)
	}
	// SIGHUP would end the process until it is caught; catch it from
	// the start and deliver it once the scheduler runs.
	reload := deps.reload
	hup := make(chan os.Signal, 1)
	if reload == nil {
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
	}
	// The helpers shared with run log through the app; give them the
	// serve logger, and in JSON mode turn their plain lines into records
	// so that stderr stays one JSON object per line.
	sa := *a
	sa.logger = logger
	if f.logFormat == "json" {
		sa.stderr = &lineLogger{log: logger}
	}
	// The hub first: a hub that cannot be used leaves no database behind.
	hc, err := sa.connectHub(ctx, f.hub, filepath.Join(dir, defaultFleetFile))
	if err != nil {
		return err
	}
	defer hc.Close()
	store, err := sa.openStoreRW(ctx, *f.db)
	if err != nil {
		return err
	}
	defer store.Close()
	r, err := runner.New(runner.Config{Hub: hc.hub, Recorder: store, Budget: hc.budget, Logger: logger})
	if err != nil {
		return err
	}
	sched, err := scheduler.New(scheduler.Config{
		Dir:      dir,
		Vars:     slices.Clone(f.vars.vars),
		VarFiles: slices.Clone(f.vars.varFiles),
		Env:      a.env,
		Runner:   r,
		History:  store,
		Clock:    deps.clock,
		Logger:   logger,
	})
	if err != nil {
		return err
	}
	logger.Info("serving", slog.String("dir", dir), slog.String("hub", hc.describe()), slog.String("db", *f.db))

	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			select {
			case <-done:
				return
			case <-reload:
				sched.Reload()
			case <-hup:
				sched.Reload()
			}
		}
	}()
	// main's context ends at the first SIGINT or SIGTERM, which drains the
	// runs; a second one stops them where they are.
	var interrupted atomic.Bool
	go func() {
		select {
		case <-done:
			return
		case <-ctx.Done():
		}
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		defer signal.Stop(sig)
		select {
		case <-done:
		case <-sig:
			interrupted.Store(true)
			sched.Interrupt()
		}
	}()

	if err := sched.Run(ctx); err != nil {
		return withCode(exitHubError, err)
	}
	if interrupted.Load() {
		return silentExit(exitInterrupt)
	}
	return nil
}

// newServeLogger returns the logger of serve: text or JSON records on w,
// from level up.
func newServeLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, usageErrorf("-log-level must be debug, info, warn or error, got %q", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usageErrorf("-log-format must be text or json, got %q", format)
}

// lineLogger logs each line written to it as an Info record.
type lineLogger struct {
	log *slog.Logger
}

func (l *lineLogger) Write(p []byte) (int, error) {
	for line := range bytes.Lines(p) {
		if s := strings.TrimSpace(string(line)); s != "" {
			l.log.Info(s)
		}
	}
	return len(p), nil
}

var _ io.Writer = (*lineLogger)(nil)
