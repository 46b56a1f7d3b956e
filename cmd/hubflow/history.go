package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/hubflow/hubflow/state"
)

// defaultDB is the history database used when neither -db nor HUBFLOW_DB is
// given.
const defaultDB = "hubflow.db"

func (a *app) historyCommand() *ffcli.Command {
	fs := flag.NewFlagSet("history", flag.ContinueOnError)
	fs.SetOutput(a.stderr)
	db := a.dbFlag(fs)
	job := fs.String("job", "", "only runs of this job")
	status := fs.String("status", "", "only runs in this state (pending, waiting_window, running, paused, succeeded, failed, aborted, cancelled)")
	since := fs.String("since", "", "only runs created since: a duration back from now (24h, 7d, 2w) or a date/time (2026-11-01, RFC 3339)")
	until := fs.String("until", "", "only runs created before: a duration back from now or a date/time")
	device := fs.String("device", "", "only runs that targeted this device")
	limit := fs.Int("limit", 50, "show at most this many runs (0: all)")
	out := outputFlag(fs)
	return &ffcli.Command{
		Name:       "history",
		ShortUsage: "hubflow history [-job J] [-status S] [-since D] [-until D] [-device ID] [-o table|json|csv]",
		ShortHelp:  "List recorded runs, newest first.",
		LongHelp: strings.TrimSpace(`
List the runs recorded in the history database, newest first.

Each run shows its state, when it was created, how long it took, and how
many of its devices succeeded, failed, timed out or were skipped. Times are
UTC.

Examples:
  hubflow history
  hubflow history -job firmware-2-1-0 -status failed -since 7d
  hubflow history -device press-01 -o json
  hubflow history -since 2026-11-01 -until 2026-12-01 -o csv > runs.csv`),
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			if len(args) > 0 {
				return usageErrorf("history takes no arguments, got %q", args[0])
			}
			if err := out.check(); err != nil {
				return err
			}
			now := time.Now()
			f := state.RunFilter{Job: *job, Device: *device, Limit: *limit}
			var err error
			if *status != "" {
				if f.State, err = state.ParseRunState(*status); err != nil {
					return usageErrorf("-status: %v", err)
				}
			}
			if f.Since, err = parseWhen(*since, now); err != nil {
				return usageErrorf("-since: %v", err)
			}
			if f.Until, err = parseWhen(*until, now); err != nil {
				return usageErrorf("-until: %v", err)
			}
			if *limit < 0 {
				return usageErrorf("-limit must be 0 or more, got %d", *limit)
			}
			s, err := a.openHistory(ctx, *db)
			if err != nil {
				return err
			}
			defer s.Close()
			runs, err := s.ListRuns(ctx, f)
			if err != nil {
				return withCode(exitHubError, err)
			}
			return writeHistory(a.stdout, out.format, runs)
		},
	}
}

func writeHistory(w io.Writer, format string, runs []state.Run) error {
	switch format {
	case "json":
		views := make([]runView, 0, len(runs))
		for _, r := range runs {
			views = append(views, newRunView(r))
		}
		return writeJSON(w, views)
	case "csv":
		cw := csv.NewWriter(w)
		cw.Write([]string{"id", "job", "state", "reason", "trigger", "window", "created_at", "started_at", "ended_at",
			"duration_ms", "devices", "pending", "running", "succeeded", "failed", "timed_out", "skipped"})
		for _, r := range runs {
			v := newRunView(r)
			c := v.Devices
			cw.Write([]string{v.ID, v.Job, v.State, v.Reason, v.Trigger, v.Window, v.CreatedAt, deref(v.StartedAt), deref(v.EndedAt),
				derefInt(v.DurationMS), itoa(c.Total), itoa(c.Pending), itoa(c.Running), itoa(c.Succeeded), itoa(c.Failed),
				itoa(c.TimedOut), itoa(c.Skipped)})
		}
		cw.Flush()
		return cw.Error()
	}
	tw := newTable(w)
	tw.row("RUN\tJOB\tSTATE\tTRIGGER\tCREATED\tDURATION\tDEVICES\tSUCCEEDED\tFAILED\tTIMED_OUT\tSKIPPED\tREASON")
	for _, r := range runs {
		c := r.Counts
		tw.row("%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s", r.ID, r.Job, r.State, r.Trigger,
			tableTime(r.CreatedAt), tableDuration(runDuration(r)), c.Devices(), c.Succeeded, c.Failed, c.TimedOut, c.Skipped,
			oneLine(r.Reason))
	}
	return tw.flush()
}

// runView is the JSON (and CSV) shape of a run. Field names are stable;
// fields may be added.
type runView struct {
	ID         string          `json:"id"`
	Job        string          `json:"job"`
	State      string          `json:"state"`
	Reason     string          `json:"reason"`
	Trigger    string          `json:"trigger"`
	Window     string          `json:"window"`
	FileHash   string          `json:"file_hash"`
	PlanHash   string          `json:"plan_hash"`
	Steps      []string        `json:"steps"`
	Vars       json.RawMessage `json:"vars"`
	CreatedAt  string          `json:"created_at"`
	StartedAt  *string         `json:"started_at"`
	EndedAt    *string         `json:"ended_at"`
	DurationMS *int64          `json:"duration_ms"`
	Devices    countsView      `json:"devices"`
}

type countsView struct {
	Total     int `json:"total"`
	Pending   int `json:"pending"`
	Running   int `json:"running"`
	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
	TimedOut  int `json:"timed_out"`
	Skipped   int `json:"skipped"`
}

func newRunView(r state.Run) runView {
	c := r.Counts
	steps := r.Steps
	if steps == nil {
		steps = []string{}
	}
	vars := r.Vars
	if len(vars) == 0 {
		vars = json.RawMessage("{}")
	}
	v := runView{
		ID: r.ID, Job: r.Job, State: string(r.State), Reason: r.Reason, Trigger: string(r.Trigger), Window: r.Window,
		FileHash: r.FileHash, PlanHash: r.PlanHash, Steps: steps, Vars: vars,
		CreatedAt: jsonTime(r.CreatedAt), StartedAt: jsonTimePtr(r.StartedAt), EndedAt: jsonTimePtr(r.EndedAt),
		Devices: countsView{Total: c.Devices(), Pending: c.Pending, Running: c.Running, Succeeded: c.Succeeded,
			Failed: c.Failed, TimedOut: c.TimedOut, Skipped: c.Skipped},
	}
	if d := runDuration(r); d > 0 {
		ms := d.Milliseconds()
		v.DurationMS = &ms
	}
	return v
}

// runDuration is start to end for a finished run, 0 otherwise.
func runDuration(r state.Run) time.Duration {
	if r.StartedAt.IsZero() || r.EndedAt.IsZero() {
		return 0
	}
	return r.EndedAt.Sub(r.StartedAt)
}

// dbFlag registers -db, whose default comes from HUBFLOW_DB.
func (a *app) dbFlag(fs *flag.FlagSet) *string {
	def := a.getenv("HUBFLOW_DB")
	if def == "" {
		def = defaultDB
	}
	return fs.String("db", def, "history database (env HUBFLOW_DB)")
}

// openHistory opens the history database for reading. A read command never
// creates a database: a missing file is an error that says what to do.
func (a *app) openHistory(ctx context.Context, path string) (*state.Store, error) {
	s, err := state.OpenReadOnly(ctx, path, state.Options{Logger: a.logger})
	if errors.Is(err, fs.ErrNotExist) {
		return nil, withCode(exitHubError, fmt.Errorf("no history database at %s (run a job first, or pass -db)", path))
	}
	if err != nil {
		return nil, withCode(exitHubError, err)
	}
	return s, nil
}

// output is the -o flag shared by the history commands.
type output struct{ format string }

func outputFlag(fs *flag.FlagSet) *output {
	o := &output{}
	fs.StringVar(&o.format, "o", "table", "output format: table, json or csv")
	return o
}

func (o *output) check() error {
	switch o.format {
	case "table", "json", "csv":
		return nil
	}
	return usageErrorf("-o must be table, json or csv, got %q", o.format)
}

// parseArgs parses flags that follow positional arguments ("show RUN -state
// failed"), which the flag package alone stops at, and returns the
// positional arguments.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for len(args) > 0 {
		switch {
		case args[0] == "--":
			return append(pos, args[1:]...), nil
		case !strings.HasPrefix(args[0], "-") || args[0] == "-":
			pos = append(pos, args[0])
			args = args[1:]
		default:
			if err := fs.Parse(args); err != nil {
				return nil, withCode(exitBadInput, err)
			}
			args = fs.Args()
		}
	}
	return pos, nil
}

// parseWhen reads a point in time: empty (none), a duration back from now
// ("90m", "24h", "7d", "2w"), a date ("2026-11-01", midnight UTC), a date and
// time without zone (UTC), or RFC 3339.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := parseAge(s); err == nil {
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is neither a duration (24h, 7d, 2w) nor a date (2026-11-01) or RFC 3339 time", s)
}

// parseAge reads a positive duration, with "d" (24h) and "w" (7d) allowed
// besides Go's units.
func parseAge(s string) (time.Duration, error) {
	unit := time.Duration(0)
	switch {
	case strings.HasSuffix(s, "d"):
		unit = 24 * time.Hour
	case strings.HasSuffix(s, "w"):
		unit = 7 * 24 * time.Hour
	}
	if unit != 0 {
		n, err := strconv.ParseFloat(s[:len(s)-1], 64)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("%q is not a positive duration", s)
		}
		return time.Duration(n * float64(unit)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q is not a positive duration (90m, 24h, 7d, 2w)", s)
	}
	return d, nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// table lays out tab-separated rows in columns, without the trailing blanks
// tabwriter leaves after an empty last cell.
type table struct {
	out io.Writer
	buf bytes.Buffer
	tw  *tabwriter.Writer
}

func newTable(out io.Writer) *table {
	t := &table{out: out}
	t.tw = tabwriter.NewWriter(&t.buf, 0, 4, 2, ' ', 0)
	return t
}

func (t *table) row(format string, args ...any) { fmt.Fprintf(t.tw, format+"\n", args...) }

// flush writes the rows so far as one block of columns.
func (t *table) flush() error {
	if err := t.tw.Flush(); err != nil {
		return err
	}
	for _, line := range strings.SplitAfter(t.buf.String(), "\n") {
		if line == "" {
			continue
		}
		if _, err := io.WriteString(t.out, strings.TrimRight(line, " \n")+"\n"); err != nil {
			return err
		}
	}
	t.buf.Reset()
	return nil
}

// Times are shown in UTC everywhere: runs span devices in many zones, and
// the database stores UTC.
const tableTimeLayout = "2006-01-02 15:04:05Z"

func tableTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(tableTimeLayout)
}

func jsonTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func jsonTimePtr(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := jsonTime(t)
	return &s
}

func tableDuration(d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

func durationMS(d time.Duration) *int64 {
	if d <= 0 {
		return nil
	}
	ms := d.Milliseconds()
	return &ms
}

// progressText renders a progress value for a table or CSV cell: a JSON
// string without its quotes, anything else as JSON.
func progressText(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return oneLine(s)
	}
	return oneLine(string(raw))
}

// rawOrNull keeps a JSON value as it is, or null when there is none.
func rawOrNull(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 {
		return json.RawMessage("null")
	}
	return raw
}

// oneLine keeps a table row on one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func derefInt(n *int64) string {
	if n == nil {
		return ""
	}
	return strconv.FormatInt(*n, 10)
}

func itoa(n int) string { return strconv.Itoa(n) }
