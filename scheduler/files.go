package scheduler

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/hubflow/hubflow/jobs"
)

// jobFile is one job file as last loaded without errors.
type jobFile struct {
	path string
	jobs []*jobs.Job
	// vars are the file's variables as recorded with each run, secrets
	// redacted.
	vars json.RawMessage
	// declared are the names of the file's variables.
	declared []string
}

// scan loads the job files of the directory. A file that does not load is
// reported and keeps the version d.files holds, if any. The error is for a
// directory that cannot be read.
func (d *daemon) scan() (map[string]*jobFile, error) {
	dir := d.s.cfg.Dir
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read job directory: %w", err)
	}
	files := map[string]*jobFile{}
	failed := false
	for _, de := range entries {
		name := de.Name()
		// Dot files include editors' lock files (".#job.hcl").
		if de.IsDir() || filepath.Ext(name) != ".hcl" || strings.HasPrefix(name, ".") {
			continue
		}
		path := filepath.Join(dir, name)
		f, ok := d.loadFile(path)
		switch {
		case ok && f != nil:
			files[path] = f
		case ok:
		case d.files[path] != nil:
			failed = true
			files[path] = d.files[path]
			d.log.Error("job file invalid; keeping its previous version", slog.String(keyFile, path))
		default:
			failed = true
			d.log.Error("job file invalid; its jobs are not scheduled", slog.String(keyFile, path))
		}
	}
	// Which -var names no file declares can only be judged when every
	// file loaded: a broken one might declare the name.
	if !failed {
		d.checkVars(files)
	}
	return files, nil
}

// loadFile reads and loads one file. ok is false when the file cannot be
// read or does not validate (its diagnostics are logged); f is nil with ok
// for a file that holds no job block.
func (d *daemon) loadFile(path string) (f *jobFile, ok bool) {
	src, err := os.ReadFile(path)
	if err != nil {
		d.log.Error("read job file", slog.String(keyFile, path), slog.String(keyError, err.Error()))
		return nil, false
	}
	if !hasJobBlock(path, src) {
		d.log.Debug("not a job file (no job block); skipped", slog.String(keyFile, path))
		return nil, true
	}
	cfg, diags := jobs.Load(jobs.LoadConfig{
		Sources:  []jobs.Source{{Name: path, Bytes: src}},
		Vars:     d.s.cfg.Vars,
		VarFiles: d.s.cfg.VarFiles,
		Env:      d.s.cfg.Env,
		// One set of -var options serves every file of the directory.
		IgnoreUndeclaredVars: true,
	})
	d.logDiags(path, diags)
	if diags.HasErrors() || cfg == nil {
		return nil, false
	}
	vars, err := json.Marshal(cfg.RedactedVariables())
	if err != nil {
		d.log.Error("record the job file's variables", slog.String(keyFile, path), slog.String(keyError, err.Error()))
		return nil, false
	}
	f = &jobFile{path: path, jobs: cfg.Jobs, vars: vars}
	for _, v := range cfg.Variables {
		f.declared = append(f.declared, v.Name)
	}
	return f, true
}

// hasJobBlock reports whether src has a top-level job block. A file that
// does not parse counts as a job file, so that its errors are reported.
func hasJobBlock(path string, src []byte) bool {
	f, diags := hclsyntax.ParseConfig(src, path, hcl.InitialPos)
	if diags.HasErrors() {
		return true
	}
	body, ok := f.Body.(*hclsyntax.Body)
	if !ok {
		return true
	}
	for _, b := range body.Blocks {
		if b.Type == "job" {
			return true
		}
	}
	return false
}

// logDiags logs each diagnostic with its file:line:col.
func (d *daemon) logDiags(path string, diags hcl.Diagnostics) {
	for _, diag := range diags {
		level := slog.LevelError
		if diag.Severity == hcl.DiagWarning {
			level = slog.LevelWarn
		}
		pos := path
		if r := diag.Subject; r != nil {
			pos = fmt.Sprintf("%s:%d:%d", r.Filename, r.Start.Line, r.Start.Column)
		}
		attrs := []slog.Attr{slog.String(keyFile, path), slog.String(keyPos, pos)}
		if diag.Detail != "" {
			attrs = append(attrs, slog.String(keyDetail, diag.Detail))
		}
		d.log.LogAttrs(context.Background(), level, diag.Summary, attrs...)
	}
}

// checkVars warns about -var names that no job file declares.
func (d *daemon) checkVars(files map[string]*jobFile) {
	declared := map[string]bool{}
	for _, f := range files {
		for _, n := range f.declared {
			declared[n] = true
		}
	}
	for _, opt := range d.s.cfg.Vars {
		name, _, _ := strings.Cut(opt, "=")
		if name = strings.TrimSpace(name); name != "" && !declared[name] {
			d.log.Warn("-var sets a variable that no job file declares; it is ignored", slog.String("variable", name))
		}
	}
}

// reload reads the directory again and applies what changed.
func (d *daemon) reload() {
	d.log.Info("reloading job files", slog.String("dir", d.s.cfg.Dir))
	files, err := d.scan()
	if err != nil {
		d.log.Error("reload failed; every job stays as it was", slog.String(keyError, err.Error()))
		return
	}
	d.apply(files, d.s.clock.Now())
}

// apply makes files the daemon's job files: new jobs are scheduled from
// now, jobs whose schedule is unchanged keep their next slot, and jobs no
// file defines any more are dropped (their runs in flight go on).
func (d *daemon) apply(files map[string]*jobFile, now time.Time) {
	next := map[string]*entry{}
	for _, path := range sortedKeys(files) {
		f := files[path]
		for _, j := range f.jobs {
			if first := next[j.Name]; first != nil {
				d.log.Error("duplicate job name; this definition is ignored",
					slog.String(keyJob, j.Name), slog.String(keyFile, path), slog.String(keyPos, posOf(j.DeclRange)),
					slog.String("first", posOf(first.job.DeclRange)))
				continue
			}
			next[j.Name] = &entry{job: j, file: f}
		}
	}
	for _, name := range sortedKeys(next) {
		e := next[name]
		old := d.jobs[name]
		log := d.log.With(slog.String(keyJob, name), slog.String(keyFile, e.file.path))
		if old != nil && old.job.Hash() != e.job.Hash() {
			log.Info("job updated; new runs use the new version")
		}
		s := e.job.Schedule
		switch {
		case s == nil:
			if old == nil || old.job.Schedule != nil {
				log.Info("job has no schedule; its runs are created only by hubflow run")
			}
		case old != nil && old.job.Schedule != nil && sameSchedule(old.job.Schedule, s):
			e.next = old.next
		case !s.At.IsZero():
			// An at time in the past still gets its one run, unless a run
			// for it exists: launch checks the history.
			e.next = s.At
			if s.At.After(now) {
				log.Info("job scheduled", slog.Time(keyNext, s.At), slog.Bool("prohibit_overlap", s.ProhibitOverlap))
			} else {
				log.Info("job scheduled; its at time has passed, so its run is created now unless it exists", slog.Time(keySlot, s.At))
			}
		default:
			e.next = s.Next(now)
			log.Info("job scheduled", slog.String("cron", s.Cron), slog.Time(keyNext, e.next), slog.Bool("prohibit_overlap", s.ProhibitOverlap))
		}
	}
	for _, name := range sortedKeys(d.jobs) {
		if next[name] == nil {
			d.log.Info("job removed; no new runs (runs in flight finish)", slog.String(keyJob, name), slog.Int("in_flight", len(d.inflight[name])))
		}
	}
	d.files, d.jobs = files, next
}

// sameSchedule reports whether a and b create runs at the same times.
func sameSchedule(a, b *jobs.Schedule) bool {
	return a.Cron == b.Cron && a.At.Equal(b.At)
}

func posOf(r hcl.Range) string {
	return fmt.Sprintf("%s:%d:%d", r.Filename, r.Start.Line, r.Start.Column)
}
