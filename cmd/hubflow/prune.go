package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/hubflow/hubflow/state"
)

func (a *app) pruneCommand() *ffcli.Command {
	flags := flag.NewFlagSet("prune", flag.ContinueOnError)
	flags.SetOutput(a.stderr)
	db := a.dbFlag(flags)
	olderThan := flags.String("older-than", "", "remove runs that ended longer ago than this (90d, 12w, 720h); required")
	dryRun := flags.Bool("dry-run", false, "only count what would be removed")
	return &ffcli.Command{
		Name:       "prune",
		ShortUsage: "hubflow prune -older-than D [-dry-run]",
		ShortHelp:  "Delete old runs from the history.",
		LongHelp: strings.TrimSpace(`
Delete the runs that ended longer ago than -older-than.

Each run goes with its devices, executions and events, and prune says how
much it removed. Runs that have not ended are kept however old they are.
The freed space is returned to the file system.

Examples:
  hubflow prune -older-than 90d -dry-run
  hubflow prune -older-than 90d
  HUBFLOW_DB=/var/lib/hubflow/hubflow.db hubflow prune -older-than 26w`),
		FlagSet: flags,
		Exec: func(ctx context.Context, args []string) error {
			if len(args) > 0 {
				return usageErrorf("prune takes no arguments, got %q", args[0])
			}
			if *olderThan == "" {
				return usageErrorf("prune needs -older-than, for example -older-than 90d")
			}
			age, err := parseAge(*olderThan)
			if err != nil {
				return usageErrorf("-older-than: %v", err)
			}
			// Check first: opening for writing would create the file.
			if _, err := os.Stat(*db); errors.Is(err, fs.ErrNotExist) {
				return withCode(exitHubError, fmt.Errorf("no history database at %s (run a job first, or pass -db)", *db))
			}
			var s *state.Store
			if *dryRun {
				s, err = a.openHistory(ctx, *db)
			} else {
				s, err = state.Open(ctx, *db, state.Options{Logger: a.logger})
				err = withCode(exitHubError, err)
			}
			if err != nil {
				return err
			}
			defer s.Close()
			cutoff := time.Now().Add(-age)
			res, err := s.Prune(ctx, cutoff, *dryRun)
			if err != nil {
				return withCode(exitHubError, err)
			}
			verb := "removed"
			if *dryRun {
				verb = "would remove"
			}
			fmt.Fprintf(a.stdout, "%s %d runs that ended before %s: %d devices, %d executions, %d events\n",
				verb, res.Runs, tableTime(cutoff), res.Devices, res.Executions, res.Events)
			if err := s.Close(); err != nil {
				return withCode(exitHubError, err)
			}
			return nil
		},
	}
}
