package tutorial_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/hubflow/hubflow/examples/internal/tutorial"
)

func TestFail(t *testing.T) {
	cases := []struct {
		name string
		code int
		err  error
		want string
	}{
		{"usage", tutorial.ExitUsage, errors.New("no hub: set IOTHUB_CONNECTION_STRING"), "reboot-service: no hub: set IOTHUB_CONNECTION_STRING\n"},
		{"failed", tutorial.ExitFailed, errors.New("connect: refused"), "reboot-service: connect: refused\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stderr bytes.Buffer
			if got := tutorial.Fail(&stderr, "reboot-service", c.code, c.err); got != c.code {
				t.Errorf("got code %d, want %d", got, c.code)
			}
			if got := stderr.String(); got != c.want {
				t.Errorf("got stderr %q, want %q", got, c.want)
			}
		})
	}
}

// TestExitCodes pins the codes examples/README.md documents.
func TestExitCodes(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"ExitOK", tutorial.ExitOK, 0},
		{"ExitFailed", tutorial.ExitFailed, 1},
		{"ExitUsage", tutorial.ExitUsage, 2},
	} {
		if c.got != c.want {
			t.Errorf("%s: got %d, want %d", c.name, c.got, c.want)
		}
	}
}
