// Command hubflow runs declarative device-management jobs against Azure IoT Hub
// (or its embedded emulator) and keeps their history in SQLite.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// Exit codes shared by every command (see docs/architecture in the README).
const (
	exitOK        = 0
	exitFailed    = 1 // the run failed or was aborted
	exitBadInput  = 2 // job file, flags or arguments
	exitHubError  = 3 // hub or environment error
	exitPlanWork  = 4 // plan -detailed-exitcode found work to do
	exitInterrupt = 130
)

// app carries what every command needs from the process: its streams, its
// environment and its logger. Commands never read os.* directly so that tests
// can drive them in-process.
type app struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	env    []string
	logger *slog.Logger
}

// getenv looks a variable up in the injected environment.
func (a *app) getenv(key string) string {
	for i := len(a.env) - 1; i >= 0; i-- {
		kv := a.env[i]
		if len(kv) > len(key) && kv[len(key)] == '=' && kv[:len(key)] == key {
			return kv[len(key)+1:]
		}
	}
	return ""
}

// exitError attaches a process exit code to an error.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// withCode wraps err so that main exits with code.
func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: code, err: err}
}

// usageErrorf reports bad flags or arguments (exit 2).
func usageErrorf(format string, args ...any) error {
	return withCode(exitBadInput, fmt.Errorf(format, args...))
}

// silentExit ends the process with code without printing anything more; the
// command has already reported what went wrong.
type silentExit int

func (s silentExit) Error() string { return fmt.Sprintf("exit status %d", int(s)) }

func exitCodeOf(err error) int {
	var se silentExit
	if errors.As(err, &se) {
		return int(se)
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if errors.Is(err, context.Canceled) {
		return exitInterrupt
	}
	return exitFailed
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a := &app{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, env: os.Environ()}
	os.Exit(a.main(ctx, os.Args[1:]))
}

// main parses args, runs the chosen command and returns the exit code.
func (a *app) main(ctx context.Context, args []string) int {
	if a.logger == nil {
		a.logger = slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	root := a.rootCommand()
	if err := root.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		fmt.Fprintf(a.stderr, "hubflow: %v\nRun 'hubflow help' for usage.\n", err)
		return exitBadInput
	}
	err := root.Run(ctx)
	if err == nil {
		return exitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	var se silentExit
	if !errors.As(err, &se) {
		fmt.Fprintf(a.stderr, "hubflow: %v\n", err)
	}
	return exitCodeOf(err)
}
