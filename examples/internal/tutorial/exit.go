package tutorial

import (
	"fmt"
	"io"
)

// The exit codes of every tutorial app, as examples/README.md lists them.
const (
	// ExitOK: the device confirmed the operation, or a device app was
	// interrupted.
	ExitOK = 0
	// ExitFailed: the hub or the device refused or failed the operation, it
	// did not finish in time, or a device app could not connect or report.
	ExitFailed = 1
	// ExitUsage: bad flags or settings.
	ExitUsage = 2
)

// Fail writes err to stderr as one line prefixed with the app's name, and
// returns code, so that an app's run can end with return Fail(…).
func Fail(stderr io.Writer, app string, code int, err error) int {
	fmt.Fprintf(stderr, "%s: %v\n", app, err)
	return code
}
