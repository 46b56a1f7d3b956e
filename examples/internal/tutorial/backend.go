package tutorial

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/hubflow/hubflow/iothub"
	"github.com/hubflow/hubflow/iothub/service"
)

// MethodInvoker invokes a direct method on a device; *service.Client is one.
type MethodInvoker interface {
	InvokeMethod(ctx context.Context, deviceID string, call service.MethodCall) (*iothub.MethodResponse, error)
}

// TwinReader reads a device's twin; *service.Client is one.
type TwinReader interface {
	GetTwin(ctx context.Context, deviceID string) (*iothub.Twin, error)
}

var (
	_ MethodInvoker = (*service.Client)(nil)
	_ TwinReader    = (*service.Client)(nil)
)

// methodTimeout is how long the hub waits for the device's answer, the
// tutorials' 30 s.
const methodTimeout = 30 * time.Second

// CallMethod invokes method on the device with payload (nil for none) and
// prints the device's answer to out. It returns an error when the call fails
// or the device answers with a status other than 200.
func CallMethod(ctx context.Context, c MethodInvoker, deviceID, method string, payload json.RawMessage, out io.Writer) error {
	resp, err := c.InvokeMethod(ctx, deviceID, service.MethodCall{Name: method, Payload: payload, ResponseTimeout: methodTimeout})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Method response: status %d, payload %s\n", resp.Status, resp.Payload)
	if resp.Status != 200 {
		return fmt.Errorf("device answered %s with status %d", method, resp.Status)
	}
	return nil
}

// PollReported reads the device's twin every interval, the first time one
// interval from now, and hands its reported properties to check until check
// says it is done or fails; it then returns check's error. A read that is
// worth retrying (iothub.IsRetryable: the device offline, the hub throttling
// or failing transiently) is told on out and tried again at the next tick;
// any other error ends the polling. When ctx ends first, PollReported
// returns ctx.Err().
func PollReported(ctx context.Context, c TwinReader, deviceID string, interval time.Duration, out io.Writer,
	check func(reported map[string]any) (done bool, err error)) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		twin, err := c.GetTwin(ctx, deviceID)
		if err != nil {
			if iothub.IsRetryable(err) {
				fmt.Fprintf(out, "Twin read failed (%v); trying again.\n", err)
				continue
			}
			return err
		}
		if done, err := check(twin.Properties.Reported); done || err != nil {
			return err
		}
	}
}
