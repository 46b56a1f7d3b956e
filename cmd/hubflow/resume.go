package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/hubflow/hubflow/state"
)

func (a *app) resumeCommand() *ffcli.Command {
	fs := flag.NewFlagSet("resume", flag.ContinueOnError)
	db := a.dbFlag(fs)
	return &ffcli.Command{
		Name:       "resume",
		ShortUsage: "hubflow resume RUN [-db PATH]",
		ShortHelp:  "Resume a run its abort rule paused.",
		LongHelp: strings.TrimSpace(`
Records a resume request for RUN, a run that its abort rule paused
(action = "pause"). The process holding the paused run reads it within a
second and starts devices again; the abort rule then counts only devices
that finish after the resume.

A run that is not paused but unfinished because its process was stopped or
crashed is not resumed by this command: carry it on with
  hubflow run FILE -resume RUN
with the same job file and variables, which reconciles the devices caught
mid-invocation from their twins before anything is sent again.

Exit status: 0 the request was recorded, 2 no such run, it already ended or
it is not paused, 3 the database cannot be written.

Examples:
  hubflow resume firmware-update-20261122T010000Z
  hubflow resume reboot-20261122T093000Z -db /var/lib/hubflow/hubflow.db`),
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			pos, err := parseArgs(fs, args)
			if err != nil {
				return err
			}
			if len(pos) != 1 {
				return usageErrorf("resume takes one run id, got %d arguments", len(pos))
			}
			return a.resume(ctx, *db, pos[0])
		},
	}
}

func (a *app) resume(ctx context.Context, db, runID string) error {
	st, err := a.openHistory(ctx, db)
	if err != nil {
		return err
	}
	run, err := st.LoadRun(ctx, runID)
	st.Close()
	if errors.Is(err, state.ErrRunNotFound) {
		return usageErrorf("no run %s in %s (see hubflow history)", runID, db)
	}
	if err != nil {
		return withCode(exitHubError, err)
	}
	if !run.State.Finished() && run.State != state.RunPaused {
		fmt.Fprintf(a.stderr, "run %s is %s, not paused. If the process that ran it is gone, carry it on with:\n  hubflow run JOBFILE -resume %s%s\n",
			runID, run.State, runID, dbHint(db))
		return silentExit(exitBadInput)
	}
	return a.control(ctx, db, runID, false)
}
