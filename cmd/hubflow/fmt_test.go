package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

func rangeOn(line, from, to int) *hcl.Range {
	return &hcl.Range{
		Filename: "x.hcl",
		Start:    hcl.Pos{Line: line, Column: from},
		End:      hcl.Pos{Line: line, Column: to},
	}
}

const unformatted = `job "x" {
  target {
      devices = ["a"]
  }
  step "s" {
    method="m"
    timeout = "1m"
  }
}
`

const formatted = `job "x" {
  target {
    devices = ["a"]
  }
  step "s" {
    method  = "m"
    timeout = "1m"
  }
}
`

func TestFmt_rewrites(t *testing.T) {
	dir := t.TempDir()
	messy := writeTemp(t, dir, "messy.hcl", unformatted)
	clean := writeTemp(t, dir, "clean.hcl", formatted)
	if err := os.Chmod(messy, 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCommand(t, (*app).fmtCommand, nil, "", messy, clean)
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d stderr %q", code, stderr)
	}
	if stdout != messy+"\n" {
		t.Errorf("stdout %q, want only the changed file", stdout)
	}
	got, _ := os.ReadFile(messy)
	if string(got) != formatted {
		t.Errorf("file:\n%s\nwant:\n%s", got, formatted)
	}
	info, err := os.Stat(messy)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("mode %v (err %v), want 0600 kept", info.Mode().Perm(), err)
	}
}

func TestFmt_check(t *testing.T) {
	dir := t.TempDir()
	messy := writeTemp(t, dir, "messy.hcl", unformatted)
	writeTemp(t, dir, "clean.hcl", formatted)
	writeTemp(t, dir, "notes.txt", "not hcl")

	code, stdout, _ := runCommand(t, (*app).fmtCommand, nil, "", "-check", dir)
	if code != exitFailed || stdout != messy+"\n" {
		t.Errorf("exit %d stdout %q, want %d and the messy file", code, stdout, exitFailed)
	}
	if got, _ := os.ReadFile(messy); string(got) != unformatted {
		t.Errorf("-check changed the file")
	}

	code, stdout, _ = runCommand(t, (*app).fmtCommand, nil, "", "-check", filepath.Join(dir, "clean.hcl"))
	if code != 0 || stdout != "" {
		t.Errorf("clean file: exit %d stdout %q, want 0 and nothing", code, stdout)
	}
}

func TestFmt_diff(t *testing.T) {
	dir := t.TempDir()
	messy := writeTemp(t, dir, "messy.hcl", unformatted)
	code, stdout, _ := runCommand(t, (*app).fmtCommand, nil, "", "-check", "-diff", messy)
	if code != exitFailed {
		t.Errorf("exit %d, want %d", code, exitFailed)
	}
	want := messy + "\n" +
		"--- " + messy + "\n" +
		"+++ " + messy + "\n" +
		"@@ -1,9 +1,9 @@\n" +
		" job \"x\" {\n" +
		"   target {\n" +
		"-      devices = [\"a\"]\n" +
		"+    devices = [\"a\"]\n" +
		"   }\n" +
		"   step \"s\" {\n" +
		"-    method=\"m\"\n" +
		"+    method  = \"m\"\n" +
		"     timeout = \"1m\"\n" +
		"   }\n" +
		" }\n"
	if stdout != want {
		t.Errorf("diff:\ngot:\n%s\nwant:\n%s", stdout, want)
	}
}

func TestFmt_badHCL(t *testing.T) {
	dir := t.TempDir()
	src := "job \"x\" {\n  target {\n    devices = = [\"a\"]\n  }\n}\n"
	bad := writeTemp(t, dir, "bad.hcl", src)
	messy := writeTemp(t, dir, "messy.hcl", unformatted)
	code, _, stderr := runCommand(t, (*app).fmtCommand, nil, "", bad, messy)
	if code != exitBadInput {
		t.Errorf("exit %d, want %d", code, exitBadInput)
	}
	if !strings.Contains(stderr, bad+":3:15: error: Invalid expression") {
		t.Errorf("stderr lacks the syntax error:\n%s", stderr)
	}
	if got, _ := os.ReadFile(bad); string(got) != src {
		t.Errorf("bad file was changed")
	}
	if got, _ := os.ReadFile(messy); string(got) != formatted {
		t.Errorf("good file beside a bad one was not formatted")
	}
}

func TestFmt_stdin(t *testing.T) {
	code, stdout, _ := runCommand(t, (*app).fmtCommand, nil, unformatted, "-")
	if code != 0 || stdout != formatted {
		t.Errorf("exit %d stdout:\n%s\nwant 0 and:\n%s", code, stdout, formatted)
	}
}

func TestFmt_usage(t *testing.T) {
	if code, _, stderr := runCommand(t, (*app).fmtCommand, nil, ""); code != exitBadInput || !strings.Contains(stderr, "fmt needs") {
		t.Errorf("no args: exit %d stderr %q", code, stderr)
	}
	if code, _, stderr := runCommand(t, (*app).fmtCommand, nil, "", "/does/not/exist.hcl"); code != exitBadInput || !strings.Contains(stderr, "no such file") {
		t.Errorf("missing file: exit %d stderr %q", code, stderr)
	}
	c := (&app{}).fmtCommand()
	if !strings.Contains(c.LongHelp, "Examples:") || !strings.HasPrefix(c.LongHelp, "Rewrite job files") {
		t.Errorf("LongHelp lacks a purpose line or examples:\n%s", c.LongHelp)
	}
}

func TestWriteUnifiedDiff(t *testing.T) {
	var lines []string
	for i := 1; i <= 20; i++ {
		lines = append(lines, "line"+string(rune('a'+i-1)))
	}
	a := strings.Join(lines, "\n") + "\n"
	changed := append([]string(nil), lines...)
	changed[1] = "CHANGED-b"
	changed[17] = "CHANGED-r"
	b := strings.Join(changed, "\n") // no final newline
	var out strings.Builder
	writeUnifiedDiff(&out, "f", []byte(a), []byte(b))
	want := "--- f\n+++ f\n" +
		"@@ -1,5 +1,5 @@\n linea\n-lineb\n+CHANGED-b\n linec\n lined\n linee\n" +
		"@@ -15,6 +15,6 @@\n lineo\n linep\n lineq\n-liner\n+CHANGED-r\n lines\n-linet\n+linet\n\\ No newline at end of file\n"
	if out.String() != want {
		t.Errorf("diff:\ngot:\n%s\nwant:\n%s", out.String(), want)
	}
	out.Reset()
	writeUnifiedDiff(&out, "f", []byte(a), []byte(a))
	if out.Len() != 0 {
		t.Errorf("equal inputs: got %q, want nothing", out.String())
	}
	out.Reset()
	writeUnifiedDiff(&out, "f", nil, []byte("x\n"))
	if out.String() != "--- f\n+++ f\n@@ -0,0 +1 @@\n+x\n" {
		t.Errorf("from empty: got %q", out.String())
	}
}
