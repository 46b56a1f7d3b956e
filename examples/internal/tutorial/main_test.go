package tutorial_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/hubflow/hubflow/examples/internal/tutorial"
)

// mainChildEnv makes the test binary, started again by TestMain_ExitCode,
// run tutorial.Main instead of the tests.
const mainChildEnv = "TUTORIAL_TEST_MAIN_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(mainChildEnv) != "" {
		tutorial.Main(func(ctx context.Context, args, env []string, stdout, stderr io.Writer) int {
			fmt.Fprintf(stdout, "args=%s ctx=%v\n", strings.Join(args, ","), ctx.Err())
			fmt.Fprintf(stderr, "env has child: %v\n", slices.Contains(env, mainChildEnv+"=1"))
			return 3
		})
	}
	os.Exit(m.Run())
}

func TestMain_ExitCode(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-x", "y")
	cmd.Env = append(os.Environ(), mainChildEnv+"=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Fatalf("got %v, want exit status 3; stderr: %s", err, stderr.String())
	}
	if got, want := stdout.String(), "args=-x,y ctx=<nil>\n"; got != want {
		t.Errorf("got stdout %q, want %q", got, want)
	}
	if got, want := stderr.String(), "env has child: true\n"; got != want {
		t.Errorf("got stderr %q, want %q", got, want)
	}
}

func TestNewFlagSet(t *testing.T) {
	cases := []struct {
		name    string
		args    []string
		wantErr error
		wantOut string
	}{
		{"good", []string{"-n", "3"}, nil, ""},
		{"unknown flag", []string{"-nope"}, nil, "flag provided but not defined: -nope"},
		{"help", []string{"-h"}, flag.ErrHelp, "Usage of reboot-device:"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stderr bytes.Buffer
			fs := tutorial.NewFlagSet("reboot-device", &stderr)
			fs.Int("n", 0, "a number")
			err := fs.Parse(c.args)
			if c.wantOut == "" && err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if c.wantOut != "" && err == nil {
				t.Fatal("got no error, want one (and no exit)")
			}
			if c.wantErr != nil && !errors.Is(err, c.wantErr) {
				t.Errorf("got error %v, want %v", err, c.wantErr)
			}
			if !strings.Contains(stderr.String(), c.wantOut) {
				t.Errorf("got stderr %q, want it to contain %q", stderr.String(), c.wantOut)
			}
		})
	}
}
