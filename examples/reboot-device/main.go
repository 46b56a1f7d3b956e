// Command reboot-device is the device app of the Azure IoT Hub "reboot a
// device" tutorial, in Go: it connects as one device, answers the
// rebootDevice direct method with 200 {"Response":"Reboot started"}, goes
// offline for the reboot, comes back and reports rebootTime (RFC 3339) in
// its reported properties. Any other method is answered 404.
//
// Usage:
//
//	IOTHUB_DEVICE_CONNECTION_STRING='HostName=…;DeviceId=…;SharedAccessKey=…' \
//	  go run ./examples/reboot-device [-ca ca.pem] [-reboot-time 5s]
//
// Against `hubflow emulator`, pass the emulator's CA file with -ca.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/hubflow/hubflow/examples/internal/tutorial"
	"github.com/hubflow/hubflow/iothub/device"
)

func main() { tutorial.Main(run) }

// run is the whole app: it returns 0 once ctx ends, 1 when the device
// cannot connect, and 2 for bad flags or configuration.
func run(ctx context.Context, args, env []string, stdout, stderr io.Writer) int {
	fs := tutorial.NewFlagSet("reboot-device", stderr)
	settings := tutorial.NewDeviceFlags(fs)
	rebootTime := fs.Duration("reboot-time", 5*time.Second, "how long the simulated reboot keeps the device offline")
	if err := fs.Parse(args); err != nil {
		return tutorial.ExitUsage
	}
	client, id, err := settings.Client(env)
	if err != nil {
		return tutorial.Fail(stderr, "reboot-device", tutorial.ExitUsage, err)
	}
	defer client.Close()

	reboots := make(chan struct{}, 1)
	client.Handle("rebootDevice", func(ctx context.Context, _ json.RawMessage) (int, []byte) {
		select {
		case reboots <- struct{}{}:
		default: // a reboot is already pending
		}
		fmt.Fprintln(stdout, "Received rebootDevice: rebooting.")
		return 200, []byte(`{"Response":"Reboot started"}`)
	})

	if err := client.Connect(ctx); err != nil {
		return tutorial.Fail(stderr, "reboot-device", tutorial.ExitFailed, fmt.Errorf("connect: %w", err))
	}
	fmt.Fprintf(stdout, "Device %s connected; waiting for rebootDevice (Ctrl-C to stop).\n", id)
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(stdout, "Stopped.")
			return tutorial.ExitOK
		case <-reboots:
			if err := reboot(ctx, client, *rebootTime, stdout); err != nil {
				if ctx.Err() != nil {
					return tutorial.ExitOK
				}
				fmt.Fprintf(stderr, "reboot-device: %v\n", err)
			}
		}
	}
}

// reboot takes the device offline for d, reconnects and reports rebootTime.
func reboot(ctx context.Context, client *device.Client, d time.Duration, stdout io.Writer) error {
	// Give the client a moment to send the method's answer before the
	// connection goes away, as a real device finishes its reply first.
	if err := tutorial.Pause(ctx, 100*time.Millisecond); err != nil {
		return err
	}
	if err := client.Disconnect(ctx); err != nil {
		return fmt.Errorf("disconnect: %w", err)
	}
	fmt.Fprintf(stdout, "Rebooting for %s…\n", d)
	if err := tutorial.Pause(ctx, d); err != nil {
		return err
	}
	for delay := 500 * time.Millisecond; ; delay = min(2*delay, 10*time.Second) {
		err := client.Connect(ctx)
		if err == nil {
			break
		}
		if errors.Is(err, device.ErrUnauthorized) {
			return fmt.Errorf("reconnect: %w", err)
		}
		fmt.Fprintf(stdout, "Reconnect failed (%v); retrying in %s.\n", err, delay)
		if err := tutorial.Pause(ctx, delay); err != nil {
			return err
		}
	}
	now := tutorial.Timestamp(time.Now())
	if _, err := client.UpdateReported(ctx, map[string]any{"rebootTime": now}); err != nil {
		return fmt.Errorf("report rebootTime: %w", err)
	}
	fmt.Fprintf(stdout, "Back online; reported rebootTime %s.\n", now)
	return nil
}
