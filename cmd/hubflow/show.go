package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/hubflow/hubflow/state"
)

func (a *app) showCommand() *ffcli.Command {
	fs := flag.NewFlagSet("show", flag.ContinueOnError)
	fs.SetOutput(a.stderr)
	db := a.dbFlag(fs)
	devState := fs.String("state", "", "only devices in this state (pending, invoking, in_progress, succeeded, failed, timed_out, skipped)")
	limit := fs.Int("limit", 0, "show at most this many devices (0: all)")
	out := outputFlag(fs)
	return &ffcli.Command{
		Name:       "show",
		ShortUsage: "hubflow show RUN [-state S] [-o table|json|csv]",
		ShortHelp:  "Show one run: its summary and its devices.",
		LongHelp: strings.TrimSpace(`
Show one recorded run: its summary, then its devices.

The summary has the run's state and abort reason, its window, its devices
per state, and for each step how many devices finished it in each way and
the p50/p95 duration over those that succeeded. Each device then shows its state, current step, attempts, the
step's last progress value, duration and error. With -o csv only the device
list is written. Times are UTC.

Examples:
  hubflow show firmware-2-1-0-20261122T010000Z
  hubflow show firmware-2-1-0-20261122T010000Z -state failed
  hubflow show firmware-2-1-0-20261122T010000Z -o json | jq '.devices[] | select(.state == "timed_out")'`),
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			args, err := parseArgs(fs, args)
			if err != nil {
				return err
			}
			if len(args) != 1 {
				return usageErrorf("show takes one run id (see 'hubflow history'), got %d arguments", len(args))
			}
			if err := out.check(); err != nil {
				return err
			}
			var f state.DeviceFilter
			if *devState != "" {
				if f.State, err = state.ParseExecState(*devState); err != nil {
					return usageErrorf("-state: %v", err)
				}
			}
			if *limit < 0 {
				return usageErrorf("-limit must be 0 or more, got %d", *limit)
			}
			f.Limit = *limit
			s, err := a.openHistory(ctx, *db)
			if err != nil {
				return err
			}
			defer s.Close()
			sum, err := s.RunSummary(ctx, args[0])
			if errors.Is(err, state.ErrRunNotFound) {
				return usageErrorf("no run %q in %s; list runs with 'hubflow history'", args[0], *db)
			}
			if err != nil {
				return withCode(exitHubError, err)
			}
			devices, err := s.RunDevices(ctx, args[0], f)
			if err != nil {
				return withCode(exitHubError, err)
			}
			return writeShow(a.stdout, out.format, sum, devices)
		},
	}
}

// showView is the JSON shape of `hubflow show`.
type showView struct {
	Run     runView      `json:"run"`
	Steps   []stepView   `json:"steps"`
	Devices []deviceView `json:"devices"`
}

type stepView struct {
	Name   string         `json:"name"`
	Index  int            `json:"index"`
	States map[string]int `json:"states"`
	P50MS  *int64         `json:"p50_ms"`
	P95MS  *int64         `json:"p95_ms"`
}

type deviceView struct {
	DeviceID   string          `json:"device_id"`
	State      string          `json:"state"`
	Step       string          `json:"step"`
	Attempts   int             `json:"attempts"`
	Progress   json.RawMessage `json:"progress"`
	Error      string          `json:"error"`
	SkipReason string          `json:"skip_reason"`
	StartedAt  *string         `json:"started_at"`
	EndedAt    *string         `json:"ended_at"`
	DurationMS *int64          `json:"duration_ms"`
}

func newDeviceView(d state.Device) deviceView {
	return deviceView{
		DeviceID: d.DeviceID, State: string(d.State), Step: d.Step, Attempts: d.Attempt, Progress: rawOrNull(d.Progress),
		Error: d.Error, SkipReason: d.SkipReason, StartedAt: jsonTimePtr(d.StartedAt), EndedAt: jsonTimePtr(d.EndedAt),
		DurationMS: durationMS(d.Duration()),
	}
}

func writeShow(w io.Writer, format string, sum state.Summary, devices []state.Device) error {
	switch format {
	case "json":
		v := showView{Run: newRunView(sum.Run), Steps: []stepView{}, Devices: []deviceView{}}
		for _, st := range sum.Steps {
			states := map[string]int{}
			for k, n := range st.States {
				states[string(k)] = n
			}
			v.Steps = append(v.Steps, stepView{Name: st.Name, Index: st.Index, States: states,
				P50MS: durationMS(st.P50), P95MS: durationMS(st.P95)})
		}
		for _, d := range devices {
			v.Devices = append(v.Devices, newDeviceView(d))
		}
		return writeJSON(w, v)
	case "csv":
		cw := csv.NewWriter(w)
		cw.Write([]string{"device_id", "state", "step", "attempts", "progress", "error", "skip_reason", "started_at", "ended_at", "duration_ms"})
		for _, d := range devices {
			v := newDeviceView(d)
			cw.Write([]string{v.DeviceID, v.State, v.Step, itoa(v.Attempts), progressText(d.Progress), v.Error, v.SkipReason,
				deref(v.StartedAt), deref(v.EndedAt), derefInt(v.DurationMS)})
		}
		cw.Flush()
		return cw.Error()
	}

	r := sum.Run
	tw := newTable(w)
	st := string(r.State)
	if r.Reason != "" {
		st += ": " + oneLine(r.Reason)
	}
	c := r.Counts
	window := r.Window
	if window == "" {
		window = "-"
	}
	for _, kv := range [][2]string{
		{"Run", r.ID},
		{"Job", r.Job},
		{"State", st},
		{"Trigger", string(r.Trigger)},
		{"Window", window},
		{"Created", tableTime(r.CreatedAt)},
		{"Started", tableTime(r.StartedAt)},
		{"Ended", tableTime(r.EndedAt)},
		{"Duration", tableDuration(runDuration(r))},
		{"Devices", fmt.Sprintf("%d: %d succeeded, %d failed, %d timed_out, %d skipped, %d running, %d pending",
			c.Devices(), c.Succeeded, c.Failed, c.TimedOut, c.Skipped, c.Running, c.Pending)},
	} {
		tw.row("%s:\t%s", kv[0], kv[1])
	}
	if err := tw.flush(); err != nil {
		return err
	}

	if len(sum.Steps) > 0 {
		fmt.Fprintln(w)
		tw.row("STEP\tSUCCEEDED\tFAILED\tTIMED_OUT\tSKIPPED\tP50\tP95")
		for _, s := range sum.Steps {
			n := s.States
			tw.row("%s\t%d\t%d\t%d\t%d\t%s\t%s", s.Name, n[state.ExecSucceeded], n[state.ExecFailed],
				n[state.ExecTimedOut], n[state.ExecSkipped], tableDuration(s.P50), tableDuration(s.P95))
		}
		if err := tw.flush(); err != nil {
			return err
		}
	}

	fmt.Fprintln(w)
	tw.row("DEVICE\tSTATE\tSTEP\tATTEMPTS\tPROGRESS\tDURATION\tERROR")
	for _, d := range devices {
		msg := d.Error
		if msg == "" {
			msg = d.SkipReason
		}
		step := d.Step
		if step == "" {
			step = "-"
		}
		tw.row("%s\t%s\t%s\t%d\t%s\t%s\t%s", d.DeviceID, d.State, step, d.Attempt, dash(progressText(d.Progress)),
			tableDuration(d.Duration()), oneLine(msg))
	}
	return tw.flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
