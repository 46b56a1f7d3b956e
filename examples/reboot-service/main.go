// Command reboot-service is the back-end app of the Azure IoT Hub "reboot a
// device" tutorial, in Go: it invokes the rebootDevice direct method on one
// device, prints the device's answer, then polls the device twin until the
// device reports a new rebootTime. It exits 0 when the reboot is confirmed
// and 1 when the call fails or the reboot is not confirmed in time.
//
// Usage:
//
//	IOTHUB_CONNECTION_STRING='HostName=…;SharedAccessKeyName=service;SharedAccessKey=…' \
//	IOTHUB_DEVICE_ID=myDeviceId \
//	  go run ./examples/reboot-service [-ca ca.pem] [-timeout 2m] [-poll 2s]
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"time"

	"github.com/hubflow/hubflow/examples/internal/tutorial"
	"github.com/hubflow/hubflow/iothub/service"
)

func main() { tutorial.Main(run) }

// run is the whole app and returns its exit code: 0 when the device
// confirmed its reboot, 1 when it did not (or the hub refused), 2 for bad
// flags or configuration.
func run(ctx context.Context, args, env []string, stdout, stderr io.Writer) int {
	fs := tutorial.NewFlagSet("reboot-service", stderr)
	settings := tutorial.NewServiceFlags(fs, tutorial.ServiceOptions{Action: "reboot"})
	timeout := fs.Duration("timeout", 2*time.Minute, "give up when the device has not confirmed the reboot by then")
	poll := fs.Duration("poll", 2*time.Second, "interval between twin reads")
	if err := fs.Parse(args); err != nil {
		return tutorial.ExitUsage
	}
	client, id, err := settings.Client(env)
	if err != nil {
		return tutorial.Fail(stderr, "reboot-service", tutorial.ExitUsage, err)
	}
	defer client.Close()

	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if err := rebootAndWait(ctx, client, id, *poll, stdout); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("device %s did not report a new rebootTime within %s", id, *timeout)
		}
		return tutorial.Fail(stderr, "reboot-service", tutorial.ExitFailed, err)
	}
	return tutorial.ExitOK
}

// rebootAndWait invokes rebootDevice and polls the twin until rebootTime
// differs from its value before the call.
func rebootAndWait(ctx context.Context, client *service.Client, id string, poll time.Duration, out io.Writer) error {
	twin, err := client.GetTwin(ctx, id)
	if err != nil {
		return err
	}
	before := twin.Properties.Reported["rebootTime"]

	fmt.Fprintf(out, "Invoking rebootDevice on %s.\n", id)
	if err := tutorial.CallMethod(ctx, client, id, "rebootDevice", nil, out); err != nil {
		return err
	}

	fmt.Fprintln(out, "Waiting for the device to report its reboot time…")
	return tutorial.PollReported(ctx, client, id, poll, out, func(reported map[string]any) (bool, error) {
		v, ok := reported["rebootTime"]
		if !ok || reflect.DeepEqual(v, before) {
			return false, nil
		}
		fmt.Fprintf(out, "Device rebooted; last reboot time: %v\n", v)
		return true, nil
	})
}
