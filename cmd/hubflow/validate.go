package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/hubflow/hubflow/jobs"
)

// validateCommand checks job files without touching a hub.
func (a *app) validateCommand() *ffcli.Command {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	jsonOut := fs.Bool("json", false, "print the result as one JSON object on stdout")
	vf := addJobVarFlags(fs)
	return &ffcli.Command{
		Name:       "validate",
		ShortUsage: "hubflow validate [-json] [-var NAME=VALUE]... [-var-file FILE]... FILE...",
		ShortHelp:  "Check job files for errors without touching a hub.",
		LongHelp: strings.TrimSpace(`
Check job files for errors without touching a hub.

Each file is decoded and validated on its own: variables (with -var,
-var-file and HUBFLOW_VAR_name values), then every job's target, schedule,
windows, rollout and steps, including cron specs, time zones, durations,
payload sizes and the variables conditions refer to. A valid file prints one
line per job; otherwise every problem is printed to stderr as
path:line:col: error: Summary: Detail, followed by the source line, and the
exit status is 2. -json prints one JSON object with the jobs and
diagnostics of every file on stdout instead. Flags may also follow the
files.

Examples:
  hubflow validate examples/firmware-update.hcl
  hubflow validate -var version=2.2.0 examples/*.hcl
  hubflow validate examples/firmware-update.hcl -var version=2.2.0
  hubflow validate -json -var-file prod.hcl jobs/nightly.hcl`),
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			pos, err := parseArgs(fs, args)
			if err != nil {
				return err
			}
			if len(pos) == 0 {
				return usageErrorf("validate needs at least one job file, as in: hubflow validate examples/reboot.hcl")
			}
			return a.validate(pos, vf, *jsonOut)
		},
	}
}

// jobVarFlags are the -var and -var-file flags of commands that load job
// files.
type jobVarFlags struct {
	vars     repeatedFlag
	varFiles repeatedFlag
}

func addJobVarFlags(fs *flag.FlagSet) *jobVarFlags {
	f := &jobVarFlags{}
	fs.Var(&f.vars, "var", "set a variable, as NAME=VALUE (repeatable; later wins)")
	fs.Var(&f.varFiles, "var-file", "read variable values from an HCL or JSON file (repeatable)")
	return f
}

// loadConfig is the jobs.LoadConfig for files with these flags and the
// app's environment.
func (f *jobVarFlags) loadConfig(a *app, files ...string) jobs.LoadConfig {
	return jobs.LoadConfig{
		Files:    files,
		Vars:     slices.Clone(f.vars),
		VarFiles: slices.Clone(f.varFiles),
		Env:      a.env,
	}
}

// repeatedFlag collects every value of a flag given several times.
type repeatedFlag []string

func (r *repeatedFlag) String() string { return strings.Join(*r, ", ") }

func (r *repeatedFlag) Set(v string) error {
	*r = append(*r, v)
	return nil
}

// fileResult is one validated file.
type fileResult struct {
	path   string
	config *jobs.Config
	diags  hcl.Diagnostics
}

func (a *app) validate(paths []string, vf *jobVarFlags, jsonOut bool) error {
	results := make([]fileResult, 0, len(paths))
	for _, p := range paths {
		cfg := vf.loadConfig(a, p)
		// One set of -var options serves every file, so a variable only
		// needs to be declared in one of them; checked below.
		cfg.IgnoreUndeclaredVars = len(paths) > 1
		c, diags := jobs.Load(cfg)
		sortDiags(diags)
		results = append(results, fileResult{path: p, config: c, diags: diags})
	}
	if len(paths) > 1 {
		if d := undeclaredVars(vf.vars, results); d != nil {
			results[len(results)-1].diags = append(results[len(results)-1].diags, d...)
		}
	}

	failed := false
	for _, r := range results {
		failed = failed || r.diags.HasErrors()
	}
	if jsonOut {
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(validateJSON(results)); err != nil {
			return withCode(exitFailed, fmt.Errorf("write result: %w", err))
		}
	} else {
		for _, r := range results {
			writeJobDiags(a.stderr, r.path, r.diags)
			if r.config == nil {
				continue
			}
			for _, j := range r.config.Jobs {
				fmt.Fprintf(a.stdout, "%s: %s\n", r.path, jobSummary(j))
			}
		}
	}
	if failed {
		return silentExit(exitBadInput)
	}
	return nil
}

// sortDiags orders diagnostics by file and position, those without a
// position first, so that output reads top to bottom.
func sortDiags(diags hcl.Diagnostics) {
	sort.SliceStable(diags, func(i, j int) bool {
		a, b := diags[i].Subject, diags[j].Subject
		switch {
		case a == nil || b == nil:
			return a == nil && b != nil
		case a.Filename != b.Filename:
			return a.Filename < b.Filename
		}
		return a.Start.Byte < b.Start.Byte
	})
}

// undeclaredVars reports -var names that no loaded file declares. It can
// only judge once every file has loaded: a file with errors might declare
// the name.
func undeclaredVars(opts []string, results []fileResult) hcl.Diagnostics {
	declared := map[string]bool{}
	for _, r := range results {
		if r.config == nil {
			return nil
		}
		for _, v := range r.config.Variables {
			declared[v.Name] = true
		}
	}
	var diags hcl.Diagnostics
	for _, opt := range opts {
		name, _, _ := strings.Cut(opt, "=")
		name = strings.TrimSpace(name)
		if name != "" && !declared[name] {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Value for undeclared variable",
				Detail:   fmt.Sprintf("-var sets %q, but none of the job files declares it. Declare it with a variable %q {} block, or remove the option.", name, name),
			})
		}
	}
	return diags
}

// jobSummary is the one-line description of a valid job: its name, target,
// steps and windows.
func jobSummary(j *jobs.Job) string {
	var b strings.Builder
	fmt.Fprintf(&b, "job %q: ", j.Name)
	switch {
	case j.Target.Query != "":
		fmt.Fprintf(&b, "target query %q", j.Target.Query)
		if j.Target.Follow {
			b.WriteString(" (follow)")
		}
	default:
		fmt.Fprintf(&b, "target %s", plural(len(j.Target.Devices), "device"))
	}
	names := make([]string, len(j.Steps))
	for i, s := range j.Steps {
		names[i] = s.Name
	}
	fmt.Fprintf(&b, "; %s (%s)", plural(len(j.Steps), "step"), strings.Join(names, ", "))
	if len(j.Windows) == 0 {
		b.WriteString("; no windows")
	} else {
		ws := make([]string, len(j.Windows))
		for i, w := range j.Windows {
			zone := "device-local"
			if w.Timezone != nil {
				zone = w.Timezone.String()
			}
			ws[i] = fmt.Sprintf("%s: %s for %s, %s", w.Name, cronWithoutZone(w.Cron), shortDuration(w.Duration), zone)
		}
		fmt.Fprintf(&b, "; %s (%s)", plural(len(j.Windows), "window"), strings.Join(ws, "; "))
	}
	return b.String()
}

// cronWithoutZone drops a CRON_TZ= or TZ= prefix, which the summary shows
// as the window's zone.
func cronWithoutZone(spec string) string {
	s := strings.TrimSpace(spec)
	if strings.HasPrefix(s, "CRON_TZ=") || strings.HasPrefix(s, "TZ=") {
		if _, rest, ok := strings.Cut(s, " "); ok {
			return rest
		}
	}
	return s
}

// shortDuration prints a duration as a job file would say it: "3h",
// "1h30m", "45s".
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// writeJobDiags prints each diagnostic as one line,
// path:line:col: severity: Summary: Detail, followed by the source it
// points at with a caret under the subject. path names the file being
// loaded, for diagnostics without a range (a bad -var).
func writeJobDiags(w io.Writer, path string, diags hcl.Diagnostics) {
	files := map[string]*hcl.File{}
	for _, d := range diags {
		fmt.Fprintln(w, diagLine(path, d))
		if d.Subject == nil {
			continue
		}
		name := d.Subject.Filename
		if _, ok := files[name]; !ok {
			// Only diagnostics about files on disk get a snippet; a
			// missing file just means none. Parsing gives the writer the
			// block structure it names ("in job ...").
			files[name] = nil
			if src, err := os.ReadFile(name); err == nil {
				f, _ := hclsyntax.ParseConfig(src, name, hcl.InitialPos)
				if f == nil {
					f = &hcl.File{Bytes: src}
				}
				files[name] = f
			}
		}
		if f := files[name]; f != nil {
			writeSnippet(w, files, d)
		}
	}
}

func diagLine(path string, d *hcl.Diagnostic) string {
	sev := "error"
	if d.Severity == hcl.DiagWarning {
		sev = "warning"
	}
	pos := path
	if d.Subject != nil {
		pos = fmt.Sprintf("%s:%d:%d", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column)
	}
	msg := d.Summary
	if d.Detail != "" {
		msg += ": " + strings.ReplaceAll(strings.TrimSpace(d.Detail), "\n\n", " ")
	}
	return fmt.Sprintf("%s: %s: %s", pos, sev, msg)
}

// writeSnippet renders the source lines of a diagnostic with
// hcl.NewDiagnosticTextWriter, without the summary and detail that the
// one-line form already gave, and adds a caret line under the subject.
func writeSnippet(w io.Writer, files map[string]*hcl.File, d *hcl.Diagnostic) {
	var buf bytes.Buffer
	snip := *d
	snip.Detail, snip.Expression, snip.EvalContext = "", nil, nil
	if err := hcl.NewDiagnosticTextWriter(&buf, files, 0, false).WriteDiagnostic(&snip); err != nil {
		return
	}
	sc := bufio.NewScanner(&buf)
	header := true
	var lastSource string
	for sc.Scan() {
		line := sc.Text()
		// The writer starts with "Error: Summary" and a blank line.
		if header {
			if strings.HasPrefix(line, "  on ") {
				header = false
			} else {
				continue
			}
		}
		if strings.TrimSpace(line) == "" {
			continue
		}
		fmt.Fprintf(w, "  %s\n", line)
		if !strings.HasPrefix(line, "  on ") {
			lastSource = line
		}
	}
	if caret := caretLine(lastSource, d.Subject); caret != "" {
		fmt.Fprintf(w, "  %s\n", caret)
	}
	fmt.Fprintln(w)
}

// caretLine returns a line of carets under the subject's columns in a
// rendered source line ("%4d: text"), or "" when the subject spans lines or
// the rendered line is not the subject's.
func caretLine(rendered string, r *hcl.Range) string {
	if r == nil || r.Start.Line != r.End.Line {
		return ""
	}
	prefix := fmt.Sprintf("%4d: ", r.Start.Line)
	if !strings.HasPrefix(rendered, prefix) {
		return ""
	}
	src := []rune(rendered[len(prefix):])
	start := r.Start.Column - 1
	if start < 0 || start > len(src) {
		return ""
	}
	width := max(r.End.Column-r.Start.Column, 1)
	var b strings.Builder
	b.WriteString(strings.Repeat(" ", len(prefix)))
	// Keep tabs so the carets line up under tab-indented source.
	for _, c := range src[:start] {
		if c == '\t' {
			b.WriteRune('\t')
		} else {
			b.WriteByte(' ')
		}
	}
	b.WriteString(strings.Repeat("^", width))
	return b.String()
}

// JSON view of validate. Field names are a stable interface: fields may be
// added, never renamed or removed.
type validateOutput struct {
	FormatVersion string           `json:"format_version"`
	Valid         bool             `json:"valid"`
	ErrorCount    int              `json:"error_count"`
	WarningCount  int              `json:"warning_count"`
	Files         []validateFileJS `json:"files"`
}

type validateFileJS struct {
	Path        string       `json:"path"`
	Valid       bool         `json:"valid"`
	Jobs        []jobJS      `json:"jobs"`
	Diagnostics []diagnostic `json:"diagnostics"`
}

type jobJS struct {
	Name        string     `json:"name"`
	Description string     `json:"description"`
	Hash        string     `json:"hash"`
	Target      targetJS   `json:"target"`
	Schedule    *schedJS   `json:"schedule"`
	Windows     []windowJS `json:"windows"`
	Steps       []stepJS   `json:"steps"`
}

type targetJS struct {
	Query   string   `json:"query,omitempty"`
	Devices []string `json:"devices,omitempty"`
	Follow  bool     `json:"follow"`
}

type schedJS struct {
	Cron            string `json:"cron,omitempty"`
	At              string `json:"at,omitempty"`
	ProhibitOverlap bool   `json:"prohibit_overlap"`
}

type windowJS struct {
	Name            string  `json:"name"`
	Cron            string  `json:"cron"`
	DurationSeconds float64 `json:"duration_seconds"`
	Timezone        string  `json:"timezone,omitempty"`
	DeviceLocal     bool    `json:"device_local"`
}

type stepJS struct {
	Name           string  `json:"name"`
	Method         string  `json:"method,omitempty"`
	Desired        bool    `json:"desired"`
	TimeoutSeconds float64 `json:"timeout_seconds"`
}

type diagnostic struct {
	Severity string     `json:"severity"`
	Summary  string     `json:"summary"`
	Detail   string     `json:"detail"`
	Range    *diagRange `json:"range,omitempty"`
}

type diagRange struct {
	Filename string  `json:"filename"`
	Start    diagPos `json:"start"`
	End      diagPos `json:"end"`
}

type diagPos struct {
	Line   int `json:"line"`
	Column int `json:"column"`
	Byte   int `json:"byte"`
}

func validateJSON(results []fileResult) validateOutput {
	out := validateOutput{FormatVersion: "1.0", Valid: true, Files: []validateFileJS{}}
	for _, r := range results {
		f := validateFileJS{Path: r.path, Valid: !r.diags.HasErrors(), Jobs: []jobJS{}, Diagnostics: []diagnostic{}}
		out.Valid = out.Valid && f.Valid
		for _, d := range r.diags {
			f.Diagnostics = append(f.Diagnostics, diagnosticJSON(d))
			if d.Severity == hcl.DiagWarning {
				out.WarningCount++
			} else {
				out.ErrorCount++
			}
		}
		if r.config != nil {
			for _, j := range r.config.Jobs {
				f.Jobs = append(f.Jobs, jobJSON(j))
			}
		}
		out.Files = append(out.Files, f)
	}
	return out
}

func diagnosticJSON(d *hcl.Diagnostic) diagnostic {
	sev := "error"
	if d.Severity == hcl.DiagWarning {
		sev = "warning"
	}
	out := diagnostic{Severity: sev, Summary: d.Summary, Detail: d.Detail}
	if r := d.Subject; r != nil {
		out.Range = &diagRange{
			Filename: r.Filename,
			Start:    diagPos{Line: r.Start.Line, Column: r.Start.Column, Byte: r.Start.Byte},
			End:      diagPos{Line: r.End.Line, Column: r.End.Column, Byte: r.End.Byte},
		}
	}
	return out
}

func jobJSON(j *jobs.Job) jobJS {
	out := jobJS{
		Name:        j.Name,
		Description: j.Description,
		Hash:        j.Hash(),
		Target:      targetJS{Query: j.Target.Query, Devices: j.Target.Devices, Follow: j.Target.Follow},
		Windows:     []windowJS{},
		Steps:       []stepJS{},
	}
	if s := j.Schedule; s != nil {
		out.Schedule = &schedJS{Cron: s.Cron, ProhibitOverlap: s.ProhibitOverlap}
		if !s.At.IsZero() {
			out.Schedule.At = s.At.UTC().Format("2006-01-02T15:04:05Z07:00")
		}
	}
	for _, w := range j.Windows {
		wj := windowJS{Name: w.Name, Cron: w.Cron, DurationSeconds: w.Duration.Seconds(), DeviceLocal: w.TimezoneFrom != nil}
		if w.Timezone != nil {
			wj.Timezone = w.Timezone.String()
		}
		out.Windows = append(out.Windows, wj)
	}
	for _, s := range j.Steps {
		out.Steps = append(out.Steps, stepJS{Name: s.Name, Method: s.Method, Desired: !s.IsMethod(), TimeoutSeconds: s.Timeout.Seconds()})
	}
	return out
}
