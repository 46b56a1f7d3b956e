package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/peterbourgon/ff/v3/ffcli"
)

// runCommand runs one command built from an app with the given env and
// stdin, and returns its exit code as main would compute it and the
// streams.
func runCommand(t testing.TB, build func(*app) *ffcli.Command, env []string, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	a := &app{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb, env: env}
	cmd := build(a)
	cmd.FlagSet.SetOutput(&errb)
	err := cmd.ParseAndRun(context.Background(), args)
	if err != nil {
		code = exitCodeOf(err)
		if _, silent := err.(silentExit); !silent {
			errb.WriteString(err.Error() + "\n")
		}
	}
	return code, out.String(), errb.String()
}

func writeTemp(t testing.TB, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const validJob = `variable "site" {
  type    = string
  default = "plant-7"
}

job "reboot" {
  target {
    query = "tags.site = '${var.site}'"
  }
  window "night" {
    cron     = "0 1 * * *"
    duration = "3h"
    timezone = "Europe/Berlin"
  }
  step "reboot" {
    method = "rebootDevice"
  }
  step "check" {
    method = "ping"
  }
}

job "two" {
  target {
    devices = ["a", "b"]
  }
  window "local" {
    cron          = "CRON_TZ=UTC 0 2 * * *"
    duration      = "1h"
  }
  step "s" {
    desired = { x = 1 }
  }
}
`

const invalidJob = `job "bad" {
  target {
    query = "tags.site = 'a'"
  }
  step "s" {
    methd = "reboot"
  }
  window "w" {
    cron     = "0 25 * * *"
    duration = "1h"
  }
}
`

func TestValidate_valid(t *testing.T) {
	dir := t.TempDir()
	f := writeTemp(t, dir, "ok.hcl", validJob)
	code, stdout, stderr := runCommand(t, (*app).validateCommand, nil, "", f)
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q; want 0 and nothing", code, stderr)
	}
	want := f + `: job "reboot": target query "tags.site = 'plant-7'"; 2 steps (reboot, check); 1 window (night: 0 1 * * * for 3h, Europe/Berlin)` + "\n" +
		f + `: job "two": target 2 devices; 1 step (s); 1 window (local: 0 2 * * * for 1h, UTC)` + "\n"
	if stdout != want {
		t.Errorf("stdout:\ngot:\n%s\nwant:\n%s", stdout, want)
	}
}

func TestValidate_invalid(t *testing.T) {
	dir := t.TempDir()
	f := writeTemp(t, dir, "bad.hcl", invalidJob)
	code, stdout, stderr := runCommand(t, (*app).validateCommand, nil, "", f)
	if code != exitBadInput {
		t.Errorf("exit %d, want %d", code, exitBadInput)
	}
	if stdout != "" {
		t.Errorf("stdout %q, want nothing for an invalid file", stdout)
	}
	for _, want := range []string{
		f + `:6:5: error: Unsupported argument: An argument named "methd" is not expected here.`,
		`  on ` + f + ` line 6, in job "bad":`,
		"     6:     methd = \"reboot\"\n            ^^^^^\n",
		f + `:9:16: error: Invalid cron spec: End of range (25) above maximum (23)`,
		"     9:     cron     = \"0 25 * * *\"\n                       ^^^^^^^^^^^^\n",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}

func TestValidate_json(t *testing.T) {
	dir := t.TempDir()
	ok := writeTemp(t, dir, "ok.hcl", validJob)
	bad := writeTemp(t, dir, "bad.hcl", invalidJob)
	code, stdout, stderr := runCommand(t, (*app).validateCommand, nil, "", "-json", ok, bad)
	if code != exitBadInput || stderr != "" {
		t.Errorf("exit %d stderr %q, want %d and nothing", code, stderr, exitBadInput)
	}
	var out struct {
		FormatVersion string `json:"format_version"`
		Valid         bool   `json:"valid"`
		ErrorCount    int    `json:"error_count"`
		Files         []struct {
			Path  string `json:"path"`
			Valid bool   `json:"valid"`
			Jobs  []struct {
				Name    string `json:"name"`
				Hash    string `json:"hash"`
				Windows []struct {
					Name            string  `json:"name"`
					DurationSeconds float64 `json:"duration_seconds"`
					Timezone        string  `json:"timezone"`
				} `json:"windows"`
				Steps []struct {
					Name   string `json:"name"`
					Method string `json:"method"`
				} `json:"steps"`
			} `json:"jobs"`
			Diagnostics []struct {
				Severity string `json:"severity"`
				Summary  string `json:"summary"`
				Range    *struct {
					Filename string `json:"filename"`
					Start    struct {
						Line   int `json:"line"`
						Column int `json:"column"`
					} `json:"start"`
				} `json:"range"`
			} `json:"diagnostics"`
		} `json:"files"`
	}
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, stdout)
	}
	if out.FormatVersion != "1.0" || out.Valid || out.ErrorCount != 2 || len(out.Files) != 2 {
		t.Fatalf("got %+v, want format 1.0, invalid, 2 errors, 2 files", out)
	}
	f0, f1 := out.Files[0], out.Files[1]
	if !f0.Valid || len(f0.Jobs) != 2 || f0.Jobs[0].Name != "reboot" || len(f0.Jobs[0].Hash) != 64 ||
		f0.Jobs[0].Windows[0].DurationSeconds != 10800 || f0.Jobs[0].Windows[0].Timezone != "Europe/Berlin" ||
		f0.Jobs[0].Steps[1].Method != "ping" || len(f0.Diagnostics) != 0 {
		t.Errorf("first file %+v", f0)
	}
	if f1.Valid || len(f1.Jobs) != 0 || len(f1.Diagnostics) != 2 || f1.Diagnostics[0].Range == nil ||
		f1.Diagnostics[0].Range.Start.Line != 6 || f1.Diagnostics[0].Severity != "error" || f1.Diagnostics[0].Range.Filename != bad {
		t.Errorf("second file %+v", f1)
	}
	// Empty lists are [] rather than null, so consumers need no null checks.
	if !strings.Contains(stdout, `"diagnostics": []`) || !strings.Contains(stdout, `"jobs": []`) {
		t.Errorf("empty lists are not []:\n%s", stdout)
	}
}

func TestValidate_variables(t *testing.T) {
	dir := t.TempDir()
	f := writeTemp(t, dir, "ok.hcl", validJob)
	other := writeTemp(t, dir, "other.hcl", `job "o" {
  target {
    devices = ["a"]
  }
  step "s" {
    method = "m"
  }
}
`)
	varFile := writeTemp(t, dir, "vars.hcl", `site = "from-file"`+"\n")
	tests := []struct {
		name     string
		env      []string
		args     []string
		wantCode int
		wantOut  string
		wantErr  string
	}{
		{"-var", nil, []string{"-var", "site=north", f}, 0, "tags.site = 'north'", ""},
		{"-var-file", nil, []string{"-var-file", varFile, f}, 0, "tags.site = 'from-file'", ""},
		{"environment", []string{"HUBFLOW_VAR_site=env-site"}, []string{f}, 0, "tags.site = 'env-site'", ""},
		{"-var wins over the environment", []string{"HUBFLOW_VAR_site=env"}, []string{"-var", "site=flag", f}, 0, "tags.site = 'flag'", ""},
		{"undeclared -var", nil, []string{"-var", "sitte=x", f}, exitBadInput, "", f + `: error: Value for undeclared variable: -var sets "sitte", but no job file declares it. Did you mean "site"?`},
		{"-var declared in one of several files", nil, []string{"-var", "site=x", f, other}, 0, `job "o"`, ""},
		{"-var declared in none of several files", nil, []string{"-var", "nope=x", f, other}, exitBadInput, "", `Value for undeclared variable: -var sets "nope", but none of the job files declares it.`},
		{"missing var file", nil, []string{"-var-file", filepath.Join(dir, "none.hcl"), f}, exitBadInput, "", "Cannot read var file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCommand(t, (*app).validateCommand, tt.env, "", tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d (stderr %s)", code, tt.wantCode, stderr)
			}
			if !strings.Contains(stdout, tt.wantOut) {
				t.Errorf("stdout %q lacks %q", stdout, tt.wantOut)
			}
			if !strings.Contains(stderr, tt.wantErr) {
				t.Errorf("stderr %q lacks %q", stderr, tt.wantErr)
			}
		})
	}
}

func TestValidate_usage(t *testing.T) {
	code, _, stderr := runCommand(t, (*app).validateCommand, nil, "")
	if code != exitBadInput || !strings.Contains(stderr, "validate needs at least one job file") {
		t.Errorf("exit %d stderr %q, want %d and a usage message", code, stderr, exitBadInput)
	}
	code, _, stderr = runCommand(t, (*app).validateCommand, nil, "", filepath.Join(t.TempDir(), "missing.hcl"))
	if code != exitBadInput || !strings.Contains(stderr, "error: Cannot read job file") {
		t.Errorf("exit %d stderr %q, want %d and Cannot read job file", code, stderr, exitBadInput)
	}
}

func TestValidate_examples(t *testing.T) {
	files, err := filepath.Glob("../../examples/*.hcl")
	if err != nil {
		t.Fatal(err)
	}
	var jobFiles []string
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		// Only job files; a fleet file has no job block.
		if strings.Contains(string(src), "\njob \"") || strings.HasPrefix(string(src), "job \"") {
			jobFiles = append(jobFiles, f)
		}
	}
	if len(jobFiles) == 0 {
		t.Skip("no example job files")
	}
	code, stdout, stderr := runCommand(t, (*app).validateCommand, nil, "", jobFiles...)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	if n := strings.Count(stdout, "\n"); n < len(jobFiles) {
		t.Errorf("got %d summary lines for %d files:\n%s", n, len(jobFiles), stdout)
	}
}

func TestValidateCommand_help(t *testing.T) {
	c := (&app{}).validateCommand()
	if !strings.Contains(c.LongHelp, "Examples:") || !strings.HasPrefix(c.LongHelp, "Check job files") {
		t.Errorf("LongHelp lacks a purpose line or examples:\n%s", c.LongHelp)
	}
}

func TestCaretLine(t *testing.T) {
	tests := []struct {
		name     string
		rendered string
		line     int
		from, to int
		want     string
	}{
		{"spaces", "   3:   methd = 1", 3, 3, 8, "        ^^^^^"},
		{"tabs", "   3: \tmethd = 1", 3, 2, 7, "      \t^^^^^"},
		{"empty range", "  12: x", 12, 1, 1, "      ^"},
		{"other line", "   4: x", 3, 1, 2, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rangeOn(tt.line, tt.from, tt.to)
			if got := caretLine(tt.rendered, r); got != tt.want {
				t.Errorf("caretLine = %q, want %q", got, tt.want)
			}
		})
	}
}
