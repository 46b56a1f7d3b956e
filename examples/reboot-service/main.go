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
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"reflect"
	"strings"
	"syscall"
	"time"

	"github.com/hubflow/hubflow/iothub"
	"github.com/hubflow/hubflow/iothub/service"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}

// run is the whole app and returns its exit code: 0 when the device
// confirmed its reboot, 1 when it did not (or the hub refused), 2 for bad
// flags or configuration.
func run(ctx context.Context, args, env []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("reboot-service", flag.ContinueOnError)
	fs.SetOutput(stderr)
	connStr := fs.String("connection-string", "", "service connection string (default $IOTHUB_CONNECTION_STRING)")
	deviceID := fs.String("device", "", "device to reboot (default $IOTHUB_DEVICE_ID)")
	caFile := fs.String("ca", "", "PEM file of a CA to trust besides the system roots (the emulator's ca.pem)")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up when the device has not confirmed the reboot by then")
	poll := fs.Duration("poll", 2*time.Second, "interval between twin reads")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	id := firstNonEmpty(*deviceID, lookupEnv(env, "IOTHUB_DEVICE_ID"))
	cfg, err := serviceConfig(firstNonEmpty(*connStr, lookupEnv(env, "IOTHUB_CONNECTION_STRING")), *caFile)
	if err == nil && id == "" {
		err = errors.New("no device: set IOTHUB_DEVICE_ID or pass -device")
	}
	if err != nil {
		fmt.Fprintf(stderr, "reboot-service: %v\n", err)
		return 2
	}
	client, err := service.New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "reboot-service: %v\n", err)
		return 2
	}
	defer client.Close()

	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if err := rebootAndWait(ctx, client, id, *poll, stdout); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("device %s did not report a new rebootTime within %s", id, *timeout)
		}
		fmt.Fprintf(stderr, "reboot-service: %v\n", err)
		return 1
	}
	return 0
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
	resp, err := client.InvokeMethod(ctx, id, service.MethodCall{Name: "rebootDevice", ResponseTimeout: 30 * time.Second})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Method response: status %d, payload %s\n", resp.Status, resp.Payload)
	if resp.Status != 200 {
		return fmt.Errorf("device answered rebootDevice with status %d", resp.Status)
	}

	fmt.Fprintln(out, "Waiting for the device to report its reboot time…")
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		twin, err := client.GetTwin(ctx, id)
		if err != nil {
			if iothub.IsRetryable(err) {
				fmt.Fprintf(out, "Twin read failed (%v); trying again.\n", err)
				continue
			}
			return err
		}
		if v, ok := twin.Properties.Reported["rebootTime"]; ok && !reflect.DeepEqual(v, before) {
			fmt.Fprintf(out, "Device rebooted; last reboot time: %v\n", v)
			return nil
		}
	}
}

// serviceConfig builds the client configuration from the connection string
// and an optional CA file.
func serviceConfig(connStr, caFile string) (service.Config, error) {
	if connStr == "" {
		return service.Config{}, errors.New("no hub: set IOTHUB_CONNECTION_STRING or pass -connection-string")
	}
	cs, err := iothub.ParseConnectionString(connStr)
	if err != nil {
		return service.Config{}, err
	}
	if cs.IsDevice() {
		return service.Config{}, errors.New("the connection string is a device's; this app needs a service policy's (SharedAccessKeyName=service or iothubowner)")
	}
	cfg := service.Config{ConnectionString: cs}
	if caFile != "" {
		if cfg.RootCAs, err = loadCA(caFile); err != nil {
			return service.Config{}, err
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

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func lookupEnv(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], key+"="); ok {
			return v
		}
	}
	return ""
}
