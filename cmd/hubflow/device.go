package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"flag"
	"io"
	"strconv"
	"strings"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/hubflow/hubflow/state"
)

func (a *app) deviceCommand() *ffcli.Command {
	fs := flag.NewFlagSet("device", flag.ContinueOnError)
	fs.SetOutput(a.stderr)
	db := a.dbFlag(fs)
	runs := fs.Int("runs", 20, "look at the device's last N runs (0: all)")
	out := outputFlag(fs)
	return &ffcli.Command{
		Name:       "device",
		ShortUsage: "hubflow device ID [-runs N] [-o table|json|csv]",
		ShortHelp:  "Show one device's timeline across runs.",
		LongHelp: strings.TrimSpace(`
Show what happened to one device across runs, oldest first.

Every state change of each step it ran (with the attempt and the method's
status), every change of its progress value, and every note, each with the
time it was observed (UTC).

Examples:
  hubflow device press-01
  hubflow device press-01 -runs 1
  hubflow device press-01 -o json | jq '.[] | select(.state == "failed")'`),
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			args, err := parseArgs(fs, args)
			if err != nil {
				return err
			}
			if len(args) != 1 {
				return usageErrorf("device takes one device id, got %d arguments", len(args))
			}
			if err := out.check(); err != nil {
				return err
			}
			if *runs < 0 {
				return usageErrorf("-runs must be 0 or more, got %d", *runs)
			}
			s, err := a.openHistory(ctx, *db)
			if err != nil {
				return err
			}
			defer s.Close()
			tl, err := s.DeviceTimeline(ctx, args[0], *runs)
			if err != nil {
				return withCode(exitHubError, err)
			}
			if len(tl) == 0 {
				return usageErrorf("no history for device %q in %s", args[0], *db)
			}
			return writeTimeline(a.stdout, out.format, tl)
		},
	}
}

// executionView is the JSON shape of one entry of `hubflow device`.
type executionView struct {
	RunID        string          `json:"run_id"`
	Job          string          `json:"job"`
	Step         string          `json:"step"`
	StepIndex    int             `json:"step_index"`
	State        string          `json:"state"`
	Attempts     int             `json:"attempts"`
	MethodStatus *int            `json:"method_status"`
	Response     json.RawMessage `json:"response"`
	Progress     json.RawMessage `json:"progress"`
	Error        string          `json:"error"`
	StartedAt    *string         `json:"started_at"`
	EndedAt      *string         `json:"ended_at"`
	DurationMS   *int64          `json:"duration_ms"`
	Events       []eventView     `json:"events"`
}

type eventView struct {
	Time         string          `json:"time"`
	Kind         string          `json:"kind"`
	State        string          `json:"state"`
	Attempt      int             `json:"attempt"`
	Progress     json.RawMessage `json:"progress"`
	MethodStatus *int            `json:"method_status"`
	Detail       string          `json:"detail"`
	Error        string          `json:"error"`
}

func writeTimeline(w io.Writer, format string, tl []state.TimelineEntry) error {
	switch format {
	case "json":
		views := make([]executionView, 0, len(tl))
		for _, e := range tl {
			x := e.Execution
			v := executionView{RunID: x.RunID, Job: e.Job, Step: x.Step, StepIndex: x.StepIndex, State: string(x.State),
				Attempts: x.Attempt, MethodStatus: x.MethodStatus, Response: rawOrNull(x.Response), Progress: rawOrNull(x.Progress),
				Error: x.Error, StartedAt: jsonTimePtr(x.StartedAt), EndedAt: jsonTimePtr(x.EndedAt),
				DurationMS: durationMS(x.Duration()), Events: []eventView{}}
			for _, ev := range e.Events {
				v.Events = append(v.Events, eventView{Time: jsonTime(ev.ObservedAt), Kind: string(ev.Kind), State: string(ev.State),
					Attempt: ev.Attempt, Progress: rawOrNull(ev.Progress), MethodStatus: ev.MethodStatus, Detail: ev.Detail, Error: ev.Error})
			}
			views = append(views, v)
		}
		return writeJSON(w, views)
	case "csv":
		cw := csv.NewWriter(w)
		cw.Write([]string{"time", "run_id", "job", "step", "kind", "state", "attempt", "progress", "method_status", "detail", "error"})
		for _, e := range tl {
			for _, ev := range e.Events {
				cw.Write([]string{jsonTime(ev.ObservedAt), e.Execution.RunID, e.Job, ev.Step, string(ev.Kind), string(ev.State),
					attemptText(ev.Attempt), progressText(ev.Progress), statusText(ev.MethodStatus), ev.Detail, ev.Error})
			}
		}
		cw.Flush()
		return cw.Error()
	}
	tw := newTable(w)
	tw.row("TIME\tRUN\tSTEP\tEVENT\tSTATE\tATTEMPT\tSTATUS\tPROGRESS\tDETAIL")
	for _, e := range tl {
		for _, ev := range e.Events {
			detail := ev.Error
			if ev.Detail != "" {
				detail = strings.TrimSpace(ev.Detail + " " + detail)
			}
			tw.row("%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s", tableTime(ev.ObservedAt), e.Execution.RunID, dash(ev.Step), ev.Kind,
				dash(string(ev.State)), dash(attemptText(ev.Attempt)), dash(statusText(ev.MethodStatus)),
				dash(progressText(ev.Progress)), oneLine(detail))
		}
	}
	return tw.flush()
}

func attemptText(n int) string {
	if n == 0 {
		return ""
	}
	return strconv.Itoa(n)
}

func statusText(s *int) string {
	if s == nil {
		return ""
	}
	return strconv.Itoa(*s)
}
