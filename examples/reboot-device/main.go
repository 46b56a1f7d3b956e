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
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/hubflow/hubflow/iothub"
	"github.com/hubflow/hubflow/iothub/device"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}

// run is the whole app: it returns 0 once ctx ends, 1 when the device
// cannot connect, and 2 for bad flags or configuration.
func run(ctx context.Context, args, env []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("reboot-device", flag.ContinueOnError)
	fs.SetOutput(stderr)
	connStr := fs.String("connection-string", "", "device connection string (default $IOTHUB_DEVICE_CONNECTION_STRING)")
	caFile := fs.String("ca", "", "PEM file of a CA to trust besides the system roots (the emulator's ca.pem)")
	rebootTime := fs.Duration("reboot-time", 5*time.Second, "how long the simulated reboot keeps the device offline")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := deviceConfig(*connStr, lookupEnv(env, "IOTHUB_DEVICE_CONNECTION_STRING"), *caFile)
	if err != nil {
		fmt.Fprintf(stderr, "reboot-device: %v\n", err)
		return 2
	}
	client, err := device.New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "reboot-device: %v\n", err)
		return 2
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
		fmt.Fprintf(stderr, "reboot-device: connect: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "Device %s connected; waiting for rebootDevice (Ctrl-C to stop).\n", cfg.ConnectionString.DeviceID)
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(stdout, "Stopped.")
			return 0
		case <-reboots:
			if err := reboot(ctx, client, *rebootTime, stdout); err != nil {
				if ctx.Err() != nil {
					return 0
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
	if err := pause(ctx, 100*time.Millisecond); err != nil {
		return err
	}
	if err := client.Disconnect(ctx); err != nil {
		return fmt.Errorf("disconnect: %w", err)
	}
	fmt.Fprintf(stdout, "Rebooting for %s…\n", d)
	if err := pause(ctx, d); err != nil {
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
		if err := pause(ctx, delay); err != nil {
			return err
		}
	}
	now := time.Now().UTC().Format("2006-01-02T15:04:05.000Z07:00")
	if _, err := client.UpdateReported(ctx, map[string]any{"rebootTime": now}); err != nil {
		return fmt.Errorf("report rebootTime: %w", err)
	}
	fmt.Fprintf(stdout, "Back online; reported rebootTime %s.\n", now)
	return nil
}

func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// deviceConfig builds the client configuration from the flag (or the
// environment) and an optional CA file.
func deviceConfig(flagValue, envValue, caFile string) (device.Config, error) {
	s := flagValue
	if s == "" {
		s = envValue
	}
	if s == "" {
		return device.Config{}, errors.New("no device connection string: set IOTHUB_DEVICE_CONNECTION_STRING or pass -connection-string")
	}
	cs, err := iothub.ParseConnectionString(s)
	if err != nil {
		return device.Config{}, err
	}
	if !cs.IsDevice() {
		return device.Config{}, errors.New("the connection string is a service policy's; this app needs a device connection string (with DeviceId)")
	}
	cfg := device.Config{ConnectionString: cs}
	if caFile != "" {
		if cfg.RootCAs, err = loadCA(caFile); err != nil {
			return device.Config{}, err
		}
	}
	return cfg, nil
}

// loadCA returns the system roots plus the certificates in path.
func loadCA(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read CA file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("read CA file %s: no PEM certificate in it", path)
	}
	return pool, nil
}

func lookupEnv(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], key+"="); ok {
			return v
		}
	}
	return ""
}
