package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"
	"golang.org/x/term"

	"github.com/hubflow/hubflow/jobs"
	"github.com/hubflow/hubflow/runner"
	"github.com/hubflow/hubflow/state"
)

// runFlags are the flags of `hubflow run`.
type runFlags struct {
	vars          *jobVarFlags
	hub           *hubFlags
	db            *string
	resume        string
	ignoreWindows bool
	planHash      string
	job           string
}

func (a *app) runCommand() *ffcli.Command {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	f := &runFlags{vars: addJobVarFlags(fs), hub: addHubFlags(fs), db: a.dbFlag(fs)}
	fs.StringVar(&f.resume, "resume", "", "carry on the unfinished run RUN of this job instead of starting a new one")
	fs.BoolVar(&f.ignoreWindows, "ignore-windows", false, "start devices whatever the job's maintenance windows say")
	fs.StringVar(&f.planHash, "plan-hash", "", "refuse to start unless the plan hash is still H (from hubflow plan)")
	fs.StringVar(&f.job, "job", "", "the job to run, when the file has several")
	return &ffcli.Command{
		Name:       "run",
		ShortUsage: "hubflow run FILE [-var NAME=VALUE]... [-hub CS] [-db PATH] [-resume RUN] [flags]",
		ShortHelp:  "Run a job now and follow it to the end.",
		LongHelp: strings.TrimSpace(`
Resolves the job's target devices, records a new run in the history database
and carries it out: devices start as the rollout allows (concurrency, rate,
canary wave, abort rule) inside the job's maintenance windows, each is
invoked (or its desired properties patched) and followed through its
reported properties until the step's success or failure condition holds or
its timeout passes. The job's schedule is ignored: run starts one run now.

With no hub connection string (-hub or IOTHUB_CONNECTION_STRING) the job runs
on an embedded emulator with a simulated fleet: the one -fleet names, else
fleet.hcl next to the job file, else examples/fleet.hcl or fleet.hcl in the
working directory, else the copy of examples/fleet.hcl built into hubflow.
A run that cannot start leaves no new history database behind.

If the history database stops taking writes mid-run (locked by another
process, disk full), no device starts and no call goes out until it takes
them again; the run then carries on by itself, losing nothing.

Progress is shown live when stdout is a terminal, as log lines otherwise.
Ctrl-C stops starting devices and waits for those in flight; a second Ctrl-C
leaves them as they are. Either way the run can be carried on with -resume.
Another process can cancel the run with hubflow cancel, or resume it when the
abort rule paused it with hubflow resume.

Exit status: 0 the run succeeded, 1 it failed, was aborted or cancelled,
2 bad job file or flags (or the plan hash changed), 3 hub or database error,
130 interrupted.

Examples:
  hubflow run examples/firmware-update.hcl
  hubflow run examples/reboot.hcl -hub "$IOTHUB_CONNECTION_STRING" -hub-tier S1
  hubflow run examples/firmware-update.hcl -var version=2.1.1 -plan-hash 3f9a0c1d2e4b5a69
  hubflow run examples/firmware-update.hcl -resume firmware-update-20261122T010000Z`),
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			pos, err := parseArgs(fs, args)
			if err != nil {
				return err
			}
			if len(pos) != 1 {
				return usageErrorf("run takes one job file, got %d arguments", len(pos))
			}
			return a.run(ctx, pos[0], f)
		},
	}
}

// loadOneJob loads file and picks the job to work on: the only one, or the
// one -job names.
func (a *app) loadOneJob(file string, vars *jobVarFlags, name string) (*jobs.Job, *jobs.Config, error) {
	cfg, diags := jobs.Load(vars.loadConfig(a, file))
	if diags.HasErrors() {
		writeJobDiags(a.stderr, file, diags)
		return nil, nil, silentExit(exitBadInput)
	}
	writeJobDiags(a.stderr, file, diags)
	if name != "" {
		j := cfg.Job(name)
		if j == nil {
			return nil, nil, usageErrorf("%s has no job %q (it has %s)", file, name, jobNames(cfg))
		}
		return j, cfg, nil
	}
	if len(cfg.Jobs) != 1 {
		return nil, nil, usageErrorf("%s has %d jobs (%s); choose one with -job NAME", file, len(cfg.Jobs), jobNames(cfg))
	}
	return cfg.Jobs[0], cfg, nil
}

func jobNames(cfg *jobs.Config) string {
	names := make([]string, len(cfg.Jobs))
	for i, j := range cfg.Jobs {
		names[i] = j.Name
	}
	return strings.Join(names, ", ")
}

func (a *app) run(ctx context.Context, file string, f *runFlags) error {
	job, cfg, err := a.loadOneJob(file, f.vars, f.job)
	if err != nil {
		return err
	}
	vars, err := json.Marshal(cfg.RedactedVariables())
	if err != nil {
		return withCode(exitBadInput, fmt.Errorf("record variables: %w", err))
	}
	if f.resume != "" {
		// Opening for writing would create the file, and starting the
		// hub would take a while, for a run that cannot be there.
		if _, err := os.Stat(*f.db); errors.Is(err, fs.ErrNotExist) {
			return usageErrorf("no run %s: there is no history database at %s (see hubflow history, or pass -db)", f.resume, *f.db)
		}
	}
	// One connection per execution in flight, and a few for the observer.
	f.hub.conns = max(defaultConns, min(job.Rollout.Concurrency+32, 4096))
	hc, err := a.connectHub(ctx, f.hub, file)
	if err != nil {
		return err
	}
	defer hc.Close()
	store, closeStore, err := a.openRunStore(ctx, *f.db)
	if err != nil {
		return err
	}
	defer closeStore()

	live := isTerminal(a.stdout)
	logger := a.logger
	if live {
		// The live line shows what Info records would say; interleaving
		// them would garble it.
		logger = slog.New(minLevel{logger.Handler(), slog.LevelWarn})
	}
	r, err := runner.New(runner.Config{Hub: hc.hub, Recorder: store, Budget: hc.budget, Logger: logger})
	if err != nil {
		return err
	}

	// The first interrupt (ctx) drains the run; a second one stops it
	// where it is. The run itself must outlive the first.
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	drain := make(chan struct{})
	view := newProgressView(a.stdout, live)
	go func() {
		select {
		case <-ctx.Done():
		case <-runCtx.Done():
			return
		}
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		defer signal.Stop(sig)
		close(drain)
		view.note("stopping: no new devices start; waiting for the devices in flight (interrupt again to leave them as they are)")
		select {
		case <-sig:
			view.note("leaving the devices in flight as they are")
			stop()
		case <-runCtx.Done():
		}
	}()

	req := runner.Request{
		Job: job, Vars: vars, PlanHash: f.planHash, IgnoreWindows: f.ignoreWindows,
		Progress: view.update, Drain: drain,
	}
	fmt.Fprintf(a.stderr, "running job %s on %s; history in %s\n", job.Name, hc.describe(), *f.db)
	var res *runner.Result
	if f.resume != "" {
		res, err = r.Resume(runCtx, f.resume, req)
	} else {
		res, err = r.Run(runCtx, req)
	}
	view.close()
	if err != nil {
		switch {
		case errors.Is(err, state.ErrRunNotFound):
			return usageErrorf("%v (see hubflow history)", err)
		case errors.Is(err, runner.ErrJobChanged):
			return withCode(exitBadInput, err)
		}
		if res == nil {
			return hubError(hc.host, err)
		}
		return withCode(exitHubError, err)
	}
	writeRunSummary(a.stdout, res, *f.db)
	if res.Interrupted {
		fmt.Fprintf(a.stderr, "run %s was interrupted; carry it on with:\n  hubflow run %s -resume %s%s\n", res.RunID, file, res.RunID, dbHint(*f.db))
		return silentExit(exitInterrupt)
	}
	if res.State != state.RunSucceeded {
		return silentExit(exitFailed)
	}
	return nil
}

// openRunStore opens the history database of a run, creating it when
// needed. The returned func closes it and removes a database this call
// created if no run got recorded in it: a run that could not start (an
// unreachable hub, a plan that changed) leaves no empty history behind.
func (a *app) openRunStore(ctx context.Context, path string) (*state.Store, func(), error) {
	_, err := os.Stat(path)
	created := errors.Is(err, fs.ErrNotExist)
	store, err := a.openStoreRW(ctx, path)
	if err != nil {
		return nil, nil, err
	}
	return store, func() {
		empty := false
		if created {
			runs, err := store.ListRuns(context.WithoutCancel(ctx), state.RunFilter{Limit: 1})
			empty = err == nil && len(runs) == 0
		}
		store.Close()
		if !empty {
			return
		}
		removed := true
		for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
			if err := os.Remove(path + suffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
				removed = false
				a.logger.Warn("remove the unused history database", slog.String("path", path+suffix), slog.Any("error", err))
			}
		}
		if removed {
			// The start line named it; say that it is gone again.
			fmt.Fprintf(a.stderr, "no run was created, so the new history database %s was removed\n", path)
		}
	}, nil
}

func dbHint(db string) string {
	if db == defaultDB {
		return ""
	}
	return " -db " + db
}

// writeRunSummary prints how the run ended.
func writeRunSummary(w io.Writer, res *runner.Result, db string) {
	c := res.Counts
	state := string(res.State)
	if res.Interrupted {
		state = "interrupted (" + state + ")"
	}
	fmt.Fprintf(w, "run %s %s: %s\n", res.RunID, state, countsText(c))
	if res.Reason != "" && !res.Interrupted {
		fmt.Fprintf(w, "  reason: %s\n", res.Reason)
	}
	fmt.Fprintf(w, "  details: hubflow show %s%s\n", res.RunID, dbHint(db))
}

func countsText(c state.Counts) string {
	parts := []string{fmt.Sprintf("%d succeeded", c.Succeeded)}
	if c.Running > 0 {
		parts = append(parts, fmt.Sprintf("%d running", c.Running))
	}
	if c.Pending > 0 {
		parts = append(parts, fmt.Sprintf("%d pending", c.Pending))
	}
	parts = append(parts, fmt.Sprintf("%d failed", c.Failed), fmt.Sprintf("%d timed out", c.TimedOut), fmt.Sprintf("%d skipped", c.Skipped))
	return strings.Join(parts, ", ") + fmt.Sprintf(" (of %d)", c.Devices())
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// minLevel drops records below a level.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(as), h.min}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.Handler.WithGroup(name), h.min}
}

// progressView shows a run's snapshots: one line rewritten in place on a
// terminal, otherwise a line at each state change and every few seconds.
type progressView struct {
	w    io.Writer
	live bool

	mu         sync.Mutex
	last       runner.Snapshot
	shown      bool
	lastLine   time.Time
	lastCounts state.Counts
	width      int
}

// plainEvery is how often a non-terminal view prints progress while
// nothing changes; changes are printed at most once a second.
const plainEvery = 30 * time.Second

func newProgressView(w io.Writer, live bool) *progressView {
	return &progressView{w: w, live: live}
}

func (v *progressView) update(s runner.Snapshot) {
	v.mu.Lock()
	defer v.mu.Unlock()
	changed := !v.shown || s.State != v.last.State || s.Canary != v.last.Canary || s.Reason != v.last.Reason
	paused := s.State == state.RunPaused && (!v.shown || v.last.State != state.RunPaused)
	v.last, v.shown = s, true
	line := progressLine(s)
	if paused {
		// Said once on its own line: the operator has something to do.
		if v.live {
			fmt.Fprint(v.w, "\n")
		}
		fmt.Fprintf(v.w, "run %s paused: %s\n  continue with: hubflow resume %s   (or stop it: hubflow cancel %s)\n", s.RunID, s.Reason, s.RunID, s.RunID)
	}
	if v.live {
		pad := ""
		if n := len(line); n < v.width {
			pad = strings.Repeat(" ", v.width-n)
		}
		v.width = len(line)
		fmt.Fprintf(v.w, "\r%s%s", line, pad)
		return
	}
	counts := s.Counts != v.lastCounts
	since := time.Since(v.lastLine)
	if changed || s.Final || (counts && since >= time.Second) || since >= plainEvery {
		v.lastLine, v.lastCounts = time.Now(), s.Counts
		fmt.Fprintln(v.w, line)
	}
}

// note prints a message on its own line.
func (v *progressView) note(msg string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.live && v.shown {
		fmt.Fprint(v.w, "\n")
	}
	fmt.Fprintln(v.w, msg)
	v.width = 0
}

// close ends the live line.
func (v *progressView) close() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.live && v.shown {
		fmt.Fprintln(v.w)
	}
	v.shown = false
}

// progressLine renders a snapshot: state, counts, rate and ETA, window.
func progressLine(s runner.Snapshot) string {
	var b strings.Builder
	st := string(s.State)
	if s.Canary && s.State == state.RunRunning {
		st = "running canaries"
	}
	c := s.Counts
	fmt.Fprintf(&b, "%s %s: %d/%d succeeded, %d running, %d pending, %d failed, %d timed out, %d skipped",
		s.RunID, st, c.Succeeded, s.Total, c.Running, c.Pending, c.Failed, c.TimedOut, c.Skipped)
	if s.Rate > 0 {
		fmt.Fprintf(&b, " | %.1f/s", s.Rate)
		if s.ETA > 0 && !s.Final {
			fmt.Fprintf(&b, ", ETA %s", s.ETA.Round(time.Second))
		}
	}
	if s.Throttled > 0 {
		fmt.Fprintf(&b, " | %d throttled", s.Throttled)
	}
	if w := s.Window; w.Windows != "" && !s.Final {
		switch {
		case w.Open && !w.Closes.IsZero() && w.Closes.Sub(s.At) < 7*24*time.Hour:
			fmt.Fprintf(&b, " | window %s open until %s", w.Windows, w.Closes.UTC().Format("2006-01-02 15:04Z"))
		case w.Open:
			fmt.Fprintf(&b, " | window %s open", w.Windows)
		case !w.Next.IsZero():
			fmt.Fprintf(&b, " | window %s closed, opens %s", w.Windows, w.Next.UTC().Format("2006-01-02 15:04Z"))
		default:
			fmt.Fprintf(&b, " | window %s never opens again", w.Windows)
		}
	}
	if s.Reason != "" && (s.State == state.RunPaused || s.Final) {
		fmt.Fprintf(&b, " | %s", s.Reason)
	}
	return b.String()
}
