package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/hubflow/hubflow/runner"
)

// planShowDevices is how many device ids the human plan lists.
const planShowDevices = 5

type planFlags struct {
	vars          *jobVarFlags
	hub           *hubFlags
	job           string
	output        string
	detailed      bool
	ignoreWindows bool
}

func (a *app) planCommand() *ffcli.Command {
	fs := flag.NewFlagSet("plan", flag.ContinueOnError)
	f := &planFlags{vars: addJobVarFlags(fs), hub: addHubFlags(fs)}
	fs.StringVar(&f.job, "job", "", "the job to plan, when the file has several")
	fs.StringVar(&f.output, "o", "text", "output format: text or json")
	fs.BoolVar(&f.detailed, "detailed-exitcode", false, "exit 0 when there is nothing to do, 4 when there is work")
	fs.BoolVar(&f.ignoreWindows, "ignore-windows", false, "plan as run -ignore-windows would run")
	return &ffcli.Command{
		Name:       "plan",
		ShortUsage: "hubflow plan FILE [-var NAME=VALUE]... [-hub CS] [-o text|json] [-detailed-exitcode]",
		ShortHelp:  "Show what a run of a job would do, without doing it.",
		LongHelp: strings.TrimSpace(`
Resolves the job's target against the hub (the embedded emulator with the
simulated fleet when no hub is given) and prints the devices a run would
start (how many, and the first few), the devices it would skip and why, the
steps with their payloads, the next five openings of the maintenance windows
(per zone, with device counts, for device-local windows), the estimated
duration at the configured rate and concurrency, and the plan hash.

The plan hash covers the job's content, its variables and the resolved
device set; hubflow run -plan-hash H refuses to start when it changed. plan
sends only queries: it changes nothing on the hub and nothing in the history.

Exit status: 0 (with -detailed-exitcode: nothing to do), 4 with
-detailed-exitcode when there is work, 2 bad job file or flags, 3 the hub
cannot be reached.

Examples:
  hubflow plan examples/firmware-update.hcl
  hubflow plan examples/nightly-local.hcl -o json
  hubflow plan examples/reboot.hcl -hub "$IOTHUB_CONNECTION_STRING" -detailed-exitcode`),
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			pos, err := parseArgs(fs, args)
			if err != nil {
				return err
			}
			if len(pos) != 1 {
				return usageErrorf("plan takes one job file, got %d arguments", len(pos))
			}
			if f.output != "text" && f.output != "json" {
				return usageErrorf("-o must be text or json, got %q", f.output)
			}
			return a.plan(ctx, pos[0], f, time.Now())
		},
	}
}

func (a *app) plan(ctx context.Context, file string, f *planFlags, now time.Time) error {
	job, _, err := a.loadOneJob(file, f.vars, f.job)
	if err != nil {
		return err
	}
	hc, err := a.connectHub(ctx, f.hub, file)
	if err != nil {
		return err
	}
	defer hc.Close()
	r, err := runner.New(runner.Config{Hub: hc.hub, Budget: hc.budget, Logger: a.logger})
	if err != nil {
		return err
	}
	p, err := r.Plan(ctx, job, runner.PlanOptions{Now: now, IgnoreWindows: f.ignoreWindows})
	if err != nil {
		return hubError(hc.host, err)
	}
	if f.output == "json" {
		if err := writeJSON(a.stdout, planJSON(p, now)); err != nil {
			return err
		}
	} else {
		writePlan(a.stdout, p, file, now)
	}
	if f.detailed && len(p.Devices) > 0 {
		return silentExit(exitPlanWork)
	}
	return nil
}

// writePlan renders a plan for people.
func writePlan(w io.Writer, p *runner.Plan, file string, now time.Time) {
	fmt.Fprintf(w, "Job %s", p.Job)
	if p.Description != "" {
		fmt.Fprintf(w, ": %s", p.Description)
	}
	fmt.Fprintln(w)
	if p.Query != "" {
		fmt.Fprintf(w, "  target: %s", p.Query)
		if p.Follow {
			fmt.Fprint(w, " (re-run at each window opening)")
		}
		fmt.Fprintln(w)
	}

	fmt.Fprintf(w, "\nDevices: %s targeted", plural(len(p.Devices), "device"))
	if len(p.Skipped) > 0 {
		fmt.Fprintf(w, ", %d skipped", len(p.Skipped))
	}
	fmt.Fprintln(w)
	if len(p.Devices) > 0 {
		shown := p.Devices[:min(planShowDevices, len(p.Devices))]
		fmt.Fprintf(w, "  %s", strings.Join(shown, ", "))
		if more := len(p.Devices) - len(shown); more > 0 {
			fmt.Fprintf(w, " and %d more", more)
		}
		fmt.Fprintln(w)
	}
	for _, s := range p.Skipped {
		fmt.Fprintf(w, "  skip %s: %s\n", s.ID, s.Reason)
	}

	fmt.Fprintln(w, "\nSteps:")
	for i, s := range p.Steps {
		fmt.Fprintf(w, "  %d. %s: %s\n", i+1, s.Name, stepText(s))
		for _, e := range [][2]string{{"progress", s.Progress}, {"success", s.Success}, {"failure", s.Failure}} {
			if e[1] != "" {
				fmt.Fprintf(w, "       %-8s = %s\n", e[0], e[1])
			}
		}
	}

	fmt.Fprintf(w, "\nRollout: %s\n", rolloutText(p.Rollout))

	if len(p.Windows) > 0 {
		names := map[string]bool{}
		for _, z := range p.Windows {
			for _, o := range z.Openings {
				names[o.Window] = true
			}
		}
		fmt.Fprintln(w, "\nWindows, next openings:")
		for _, z := range p.Windows {
			fmt.Fprintf(w, "  %s (%s)", z.Zones, plural(z.Devices, "device"))
			switch {
			case z.OpenNow && z.OpenUntil.Sub(now) > 7*24*time.Hour:
				fmt.Fprint(w, ", open now")
			case z.OpenNow:
				fmt.Fprintf(w, ", open now until %s", z.OpenUntil.In(zoneOf(z)).Format("2006-01-02 15:04 MST"))
			}
			fmt.Fprintln(w, ":")
			for _, o := range z.Openings {
				fmt.Fprintf(w, "    %s  until %s  (in %s)", o.Opens.Format("2006-01-02 15:04 MST"),
					o.Closes.In(o.Opens.Location()).Format("2006-01-02 15:04 MST"), roughDuration(o.Opens.Sub(now)))
				if len(names) > 1 {
					fmt.Fprintf(w, "  %s", o.Window)
				}
				fmt.Fprintln(w)
			}
		}
	}

	fmt.Fprintf(w, "\nEstimated duration: %s\n", estimateText(p.Estimate))
	fmt.Fprintf(w, "\nPlan hash: %s\n", p.Hash)
	fmt.Fprintf(w, "  hubflow run %s -plan-hash %s\n", file, p.Hash)
}

func stepText(s runner.PlanStep) string {
	var parts []string
	if s.Kind == "method" {
		payload := string(s.Payload)
		if s.Sensitive {
			payload = "(sensitive)"
		} else if payload == "" {
			payload = "null"
		}
		parts = append(parts, fmt.Sprintf("method %s, payload %s", s.Method, payload))
		parts = append(parts, "response timeout "+shortDuration(s.ResponseTimeout))
		if s.ConnectTimeout > 0 {
			parts = append(parts, "connect timeout "+shortDuration(s.ConnectTimeout))
		}
		parts = append(parts, fmt.Sprintf("accept status %v", s.AcceptStatus))
	} else {
		desired := string(s.Desired)
		if s.Sensitive {
			desired = "(sensitive)"
		}
		parts = append(parts, "patch desired "+desired)
	}
	switch {
	case s.HasSuccess:
		parts = append(parts, "success within "+shortDuration(s.Timeout))
	default:
		parts = append(parts, "succeeds once accepted")
	}
	if s.HasProgress {
		parts = append(parts, "progress followed")
	}
	parts = append(parts, fmt.Sprintf("%s from %s", plural(s.Attempts, "attempt"), shortDuration(s.Backoff)))
	return strings.Join(parts, ", ")
}

func rolloutText(r runner.PlanRollout) string {
	parts := []string{fmt.Sprintf("concurrency %d", r.Concurrency)}
	if r.Rate > 0 {
		parts = append(parts, "rate "+rateText(r.Rate))
	}
	if r.Canary > 0 {
		parts = append(parts, fmt.Sprintf("canary %d", r.Canary))
	}
	if a := r.Abort; a != nil {
		parts = append(parts, fmt.Sprintf("abort rule: %s once %s of finished devices are %s (at least %d finished)",
			a.Action, percent(a.FailureRatio), strings.Join(a.Count, " or "), a.MinFinished))
	}
	return strings.Join(parts, ", ")
}

func rateText(perSec float64) string {
	switch {
	case perSec >= 1:
		return fmt.Sprintf("%g/s", perSec)
	case perSec*60 >= 1:
		return fmt.Sprintf("%g/m", perSec*60)
	}
	return fmt.Sprintf("%g/h", perSec*3600)
}

func percent(f float64) string { return fmt.Sprintf("%g%%", f*100) }

func estimateText(e runner.Estimate) string {
	switch {
	case e.Max == 0:
		return "nothing to do"
	case e.Min == 0:
		return fmt.Sprintf("up to %s once a window is open (if every device took each step's full timeout)", roughDuration(e.Max))
	}
	return fmt.Sprintf("at least %s (rate and hub quota), up to %s once a window is open (if every device took each step's full timeout)",
		roughDuration(e.Min), roughDuration(e.Max))
}

// zoneOf is the location of a zone's openings, for showing its other times
// the same way.
func zoneOf(z runner.ZoneOpenings) *time.Location {
	if len(z.Openings) > 0 {
		return z.Openings[0].Opens.Location()
	}
	return time.UTC
}

// roughDuration renders a duration to the second, or to the minute beyond
// an hour.
func roughDuration(d time.Duration) string {
	if d >= time.Hour {
		d = d.Round(time.Minute)
	} else {
		d = d.Round(time.Second)
	}
	return shortDuration(d)
}

// planView is the JSON form of a plan; fields may be added, never renamed.
type planView struct {
	Job         string                 `json:"job"`
	Description string                 `json:"description,omitempty"`
	Hash        string                 `json:"plan_hash"`
	JobHash     string                 `json:"job_hash"`
	Query       string                 `json:"query,omitempty"`
	Follow      bool                   `json:"follow"`
	Devices     []string               `json:"devices"`
	Skipped     []runner.SkippedDevice `json:"skipped"`
	Steps       []planStepView         `json:"steps"`
	Rollout     rolloutView            `json:"rollout"`
	OpenNow     bool                   `json:"open_now"`
	Windows     []zoneView             `json:"windows"`
	Estimate    estimateView           `json:"estimate"`
	PlannedAt   string                 `json:"planned_at"`
}

type planStepView struct {
	Name            string          `json:"name"`
	Kind            string          `json:"kind"`
	Method          string          `json:"method,omitempty"`
	Payload         json.RawMessage `json:"payload,omitempty"`
	Desired         json.RawMessage `json:"desired,omitempty"`
	Sensitive       bool            `json:"sensitive,omitempty"`
	ResponseTimeout string          `json:"response_timeout,omitempty"`
	ConnectTimeout  string          `json:"connect_timeout,omitempty"`
	AcceptStatus    []int           `json:"accept_status,omitempty"`
	Timeout         string          `json:"timeout"`
	Attempts        int             `json:"attempts"`
	Backoff         string          `json:"backoff"`
	HasProgress     bool            `json:"has_progress"`
	HasSuccess      bool            `json:"has_success"`
	HasFailure      bool            `json:"has_failure"`
	Progress        string          `json:"progress,omitempty"`
	Success         string          `json:"success,omitempty"`
	Failure         string          `json:"failure,omitempty"`
}

type rolloutView struct {
	Concurrency int        `json:"concurrency"`
	Rate        float64    `json:"rate_per_second,omitempty"`
	Canary      int        `json:"canary,omitempty"`
	Abort       *abortView `json:"abort,omitempty"`
}

type abortView struct {
	FailureRatio float64  `json:"failure_ratio"`
	MinFinished  int      `json:"min_finished"`
	Count        []string `json:"count"`
	Action       string   `json:"action"`
}

type zoneView struct {
	Zones     string        `json:"zones"`
	Devices   int           `json:"devices"`
	OpenNow   bool          `json:"open_now"`
	OpenUntil string        `json:"open_until,omitempty"`
	Openings  []openingView `json:"openings"`
}

type openingView struct {
	Window string `json:"window"`
	Opens  string `json:"opens"`
	Closes string `json:"closes"`
}

type estimateView struct {
	MinSeconds int64 `json:"min_seconds"`
	MaxSeconds int64 `json:"max_seconds"`
}

func durText(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

func planJSON(p *runner.Plan, now time.Time) planView {
	v := planView{
		Job: p.Job, Description: p.Description, Hash: p.Hash, JobHash: p.JobHash, Query: p.Query, Follow: p.Follow,
		Devices: p.Devices, Skipped: p.Skipped, OpenNow: p.OpenNow, Windows: []zoneView{},
		Rollout:   rolloutView{Concurrency: p.Rollout.Concurrency, Rate: p.Rollout.Rate, Canary: p.Rollout.Canary},
		Estimate:  estimateView{MinSeconds: int64(p.Estimate.Min / time.Second), MaxSeconds: int64(p.Estimate.Max / time.Second)},
		PlannedAt: jsonTime(now),
	}
	if a := p.Rollout.Abort; a != nil {
		v.Rollout.Abort = &abortView{FailureRatio: a.FailureRatio, MinFinished: a.MinFinished, Count: a.Count, Action: a.Action}
	}
	for _, s := range p.Steps {
		v.Steps = append(v.Steps, planStepView{
			Name: s.Name, Kind: s.Kind, Method: s.Method, Payload: s.Payload, Desired: s.Desired, Sensitive: s.Sensitive,
			ResponseTimeout: durText(s.ResponseTimeout), ConnectTimeout: durText(s.ConnectTimeout), AcceptStatus: s.AcceptStatus,
			Timeout: durText(s.Timeout), Attempts: s.Attempts, Backoff: durText(s.Backoff),
			HasProgress: s.HasProgress, HasSuccess: s.HasSuccess, HasFailure: s.HasFailure,
			Progress: s.Progress, Success: s.Success, Failure: s.Failure,
		})
	}
	for _, z := range p.Windows {
		zv := zoneView{Zones: z.Zones, Devices: z.Devices, OpenNow: z.OpenNow, Openings: []openingView{}}
		if z.OpenNow {
			zv.OpenUntil = z.OpenUntil.Format(time.RFC3339)
		}
		for _, o := range z.Openings {
			zv.Openings = append(zv.Openings, openingView{Window: o.Window, Opens: o.Opens.Format(time.RFC3339), Closes: o.Closes.Format(time.RFC3339)})
		}
		v.Windows = append(v.Windows, zv)
	}
	return v
}
