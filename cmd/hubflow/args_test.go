package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// secretValue stands for a -var value that must never be shown.
const secretValue = "c2VjcmV0LXZhbHVlLW5vdC10by1iZS1zaG93bg"

const sensitiveJob = `variable "token" {
  type      = string
  sensitive = true
}

variable "count" {
  type    = number
  default = 1
}

job "signed" {
  target {
    devices = ["a"]
  }
  step "s" {
    method  = "firmwareUpdate"
    payload = { uri = "https://fw.example.com/x.bin?sig=${var.token}", n = var.count }
  }
}
`

// TestValidate_flagsAfterFiles checks that flags after the files are read
// as flags, as run and plan read them, and that no message shows a -var
// value, whichever way the command fails.
func TestValidate_flagsAfterFiles(t *testing.T) {
	dir := t.TempDir()
	f := writeTemp(t, dir, "signed.hcl", sensitiveJob)
	missing := filepath.Join(dir, "missing.hcl")
	tokenVar := "token=" + secretValue
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
		wantErr  string
	}{
		{"-var after the file", []string{f, "-var", tokenVar}, 0, `job "signed"`, ""},
		{"flags on both sides", []string{"-var", tokenVar, f, "-var", "count=2"}, 0, `job "signed"`, ""},
		{"-json after the file", []string{f, "-var", tokenVar, "-json"}, 0, `"valid": true`, ""},
		{"several files then flags", []string{f, f, "-var", tokenVar}, 0, `job "signed"`, ""},
		{"a missing file among them", []string{f, missing, "-var", tokenVar}, exitBadInput, "", "missing.hcl"},
		{"a -var of the wrong type", []string{f, "-var", "count=" + secretValue, "-var", tokenVar}, exitBadInput, "", "var.count"},
		{"an undeclared -var", []string{f, "-var", "other=" + secretValue, "-var", tokenVar}, exitBadInput, "", `"other"`},
		{"an unknown flag", []string{f, "-vars=" + secretValue}, exitBadInput, "", "-vars"},
		{"-- ends the flags", []string{"-var", tokenVar, "--", f}, 0, `job "signed"`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCommand(t, (*app).validateCommand, nil, "", tt.args...)
			if code != tt.wantCode {
				t.Errorf("got exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.wantCode, stdout, stderr)
			}
			if !strings.Contains(stdout, tt.wantOut) {
				t.Errorf("got stdout %q, want it to hold %q", stdout, tt.wantOut)
			}
			if !strings.Contains(stderr, tt.wantErr) {
				t.Errorf("got stderr %q, want it to hold %q", stderr, tt.wantErr)
			}
			for _, opt := range []string{"Reading -", "Reading token=", "open -"} {
				if strings.Contains(stderr, opt) {
					t.Errorf("a flag was taken for a file: %q", stderr)
				}
			}
			if strings.Contains(stdout+stderr, secretValue) {
				t.Errorf("the -var value is in the output:\nstdout:\n%s\nstderr:\n%s", stdout, stderr)
			}
		})
	}
}

func TestValidate_flagsAfterFilesJSON(t *testing.T) {
	f := writeTemp(t, t.TempDir(), "signed.hcl", sensitiveJob)
	code, stdout, stderr := runCommand(t, (*app).validateCommand, nil, "", f, "-json", "-var", "token="+secretValue)
	if code != 0 {
		t.Fatalf("got exit %d, want 0: %s", code, stderr)
	}
	var got struct {
		Valid bool `json:"valid"`
		Files []struct {
			Path string `json:"path"`
		} `json:"files"`
	}
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, stdout)
	}
	if !got.Valid || len(got.Files) != 1 || got.Files[0].Path != f {
		t.Errorf("got %+v, want one valid file %s", got, f)
	}
}

func TestFmt_flagsAfterFiles(t *testing.T) {
	dir := t.TempDir()
	messy := writeTemp(t, dir, "messy.hcl", unformatted)
	code, stdout, stderr := runCommand(t, (*app).fmtCommand, nil, "", messy, "-check", "-diff")
	if code != exitFailed {
		t.Errorf("got exit %d, want %d (stderr %q)", code, exitFailed, stderr)
	}
	if !strings.HasPrefix(stdout, messy+"\n") || !strings.Contains(stdout, "@@") {
		t.Errorf("got stdout %q, want the file's name and a diff", stdout)
	}
	if stderr != "" {
		t.Errorf("a flag was taken for a file: %q", stderr)
	}
	if got, _ := os.ReadFile(messy); string(got) != unformatted {
		t.Error("-check after the file changed the file")
	}
	code, _, stderr = runCommand(t, (*app).fmtCommand, nil, "", messy, "-nope")
	if code != exitBadInput || !strings.Contains(stderr, "-nope") {
		t.Errorf("got exit %d stderr %q, want %d naming -nope", code, stderr, exitBadInput)
	}
	if got, _ := os.ReadFile(messy); string(got) != unformatted {
		t.Error("a refused command changed the file")
	}
}
