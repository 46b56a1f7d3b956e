package tutorial

import (
	"context"
	"flag"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Run is the signature of every tutorial app's body: it takes the command
// line arguments after the program name, the environment as os.Environ gives
// it and the output streams, and returns the exit code. Keeping the process
// out of it lets tests run an app in-process.
type Run func(ctx context.Context, args, env []string, stdout, stderr io.Writer) int

// Main runs run with the process's arguments, environment and streams, and
// exits with its code. Its context ends on an interrupt or SIGTERM, which a
// device app takes as the signal to stop and a back end as one to give up.
func Main(run Run) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// NewFlagSet returns an empty flag set for the app name that writes its
// messages to stderr and leaves the exit to the app: a bad flag or -h makes
// Parse return an error, on which the app exits with ExitUsage.
func NewFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}
