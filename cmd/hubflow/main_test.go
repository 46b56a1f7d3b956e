package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// runCLI runs hubflow in-process and returns its exit code and streams.
func runCLI(t testing.TB, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	a := &app{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, env: env}
	code = a.main(context.Background(), args)
	return code, out.String(), errb.String()
}

func TestApp_Getenv(t *testing.T) {
	a := &app{env: []string{"A=1", "AB=2", "A=3"}}
	if got := a.getenv("A"); got != "3" {
		t.Errorf("got %q, want the last value 3", got)
	}
	if got := a.getenv("B"); got != "" {
		t.Errorf("got %q, want empty", got)
	}
}

func TestMain_UnknownCommand(t *testing.T) {
	code, _, stderr := runCLI(t, nil, "frobnicate")
	if code != exitBadInput {
		t.Errorf("exit code: got %d, want %d", code, exitBadInput)
	}
	if !strings.Contains(stderr, `unknown command "frobnicate"`) || !strings.Contains(stderr, "hubflow help") {
		t.Errorf("stderr does not say what to do next: %q", stderr)
	}
}

func TestMain_Version(t *testing.T) {
	code, stdout, _ := runCLI(t, nil, "version")
	if code != 0 || !strings.HasPrefix(stdout, "hubflow ") {
		t.Errorf("got %d %q", code, stdout)
	}
}

// TestHelp_EveryCommand checks that every command has a purpose, a usage
// line and at least one example.
func TestHelp_EveryCommand(t *testing.T) {
	a := &app{}
	root := a.rootCommand()
	for _, c := range root.Subcommands {
		t.Run(c.Name, func(t *testing.T) {
			code, stdout, _ := runCLI(t, nil, "help", c.Name)
			if code != 0 {
				t.Fatalf("exit code %d", code)
			}
			for _, want := range []string{"USAGE", "hubflow " + c.Name, "Example"} {
				if !strings.Contains(stdout, want) {
					t.Errorf("help for %s lacks %q:\n%s", c.Name, want, stdout)
				}
			}
		})
	}
}

func TestCompletion(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		code, stdout, _ := runCLI(t, nil, "completion", shell)
		if code != 0 || !strings.Contains(stdout, "version") || !strings.Contains(stdout, "completion") {
			t.Errorf("%s: exit %d, script lacks the command names:\n%s", shell, code, stdout)
		}
	}
	if code, _, stderr := runCLI(t, nil, "completion", "tcsh"); code != exitBadInput || !strings.Contains(stderr, "bash, zsh or fish") {
		t.Errorf("tcsh: got %d %q", code, stderr)
	}
}
