package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/hubflow/hubflow/state"
)

func (a *app) cancelCommand() *ffcli.Command {
	fs := flag.NewFlagSet("cancel", flag.ContinueOnError)
	db := a.dbFlag(fs)
	return &ffcli.Command{
		Name:       "cancel",
		ShortUsage: "hubflow cancel RUN [-db PATH]",
		ShortHelp:  "Ask the process running a run to cancel it.",
		LongHelp: strings.TrimSpace(`
Records a cancel request for RUN in the history database. The process
carrying the run out (hubflow run or hubflow serve, on this machine or any
other sharing the file) reads it within a second: it starts no further
device, lets the devices in flight finish, records the rest as skipped and
ends the run as cancelled. A paused run is cancelled at once.

A run whose process is gone is cancelled when it is carried on again
(hubflow run FILE -resume RUN, or hubflow serve at start-up).

Exit status: 0 the request was recorded, 2 no such run or it already ended,
3 the database cannot be written.

Examples:
  hubflow cancel firmware-update-20261122T010000Z
  hubflow cancel reboot-20261122T093000Z -db /var/lib/hubflow/hubflow.db`),
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			pos, err := parseArgs(fs, args)
			if err != nil {
				return err
			}
			if len(pos) != 1 {
				return usageErrorf("cancel takes one run id, got %d arguments", len(pos))
			}
			return a.control(ctx, *db, pos[0], true)
		},
	}
}

// control records a cancel (or resume) request for a run.
func (a *app) control(ctx context.Context, db, runID string, cancel bool) error {
	// Opening for writing would create the file.
	if _, err := os.Stat(db); errors.Is(err, fs.ErrNotExist) {
		return usageErrorf("no run %s: there is no history database at %s (see hubflow history, or pass -db)", runID, db)
	}
	st, err := a.openStoreRW(ctx, db)
	if err != nil {
		return err
	}
	defer st.Close()
	run, err := st.LoadRun(ctx, runID)
	if errors.Is(err, state.ErrRunNotFound) {
		return usageErrorf("no run %s in %s (see hubflow history)", runID, db)
	}
	if err != nil {
		return withCode(exitHubError, err)
	}
	if run.State.Finished() {
		return usageErrorf("run %s already ended %s; there is nothing to %s", runID, run.State, map[bool]string{true: "cancel", false: "resume"}[cancel])
	}
	if cancel {
		err = st.RequestCancel(ctx, runID)
	} else {
		err = st.RequestResume(ctx, runID)
	}
	switch {
	case errors.Is(err, state.ErrRunFinished):
		return usageErrorf("run %s has just ended", runID)
	case err != nil:
		return withCode(exitHubError, err)
	}
	if cancel {
		fmt.Fprintf(a.stdout, "cancel of run %s requested; its process stops starting devices and ends the run once those in flight finish\n", runID)
	} else {
		fmt.Fprintf(a.stdout, "resume of run %s requested; its process starts devices again within a second\n", runID)
	}
	return nil
}
