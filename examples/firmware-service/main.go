// Command firmware-service is the back-end app of the Azure IoT Hub
// "firmware update" tutorial, in Go: it invokes the firmwareUpdate direct
// method with {"fwPackageUri": …} on one device, prints the device's answer,
// then polls the device twin and prints each stage the device reports
// (downloading, download complete, applying) with its timestamp. It exits 0
// when the device reports firmwareStatus "completed", and 1 when the device
// reports "failed", the call fails, or the update does not finish in time.
//
// Usage:
//
//	IOTHUB_CONNECTION_STRING='HostName=…;SharedAccessKeyName=service;SharedAccessKey=…' \
//	IOTHUB_DEVICE_ID=myDeviceId \
//	  go run ./examples/firmware-service [-ca ca.pem] [-uri URI] [-timeout 5m] [-poll 1s]
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

// run is the whole app and returns its exit code: 0 when the update
// completed, 1 when it failed or timed out (or the hub refused), 2 for bad
// flags or configuration.
func run(ctx context.Context, args, env []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("firmware-service", flag.ContinueOnError)
	fs.SetOutput(stderr)
	connStr := fs.String("connection-string", "", "service connection string (default $IOTHUB_CONNECTION_STRING)")
	deviceID := fs.String("device", "", "device to update (default $IOTHUB_DEVICE_ID)")
	caFile := fs.String("ca", "", "PEM file of a CA to trust besides the system roots (the emulator's ca.pem)")
	uri := fs.String("uri", "https://secureurl/firmware/2.1.0.bin", "firmware package URI sent as fwPackageUri")
	timeout := fs.Duration("timeout", 5*time.Minute, "give up when the update has not finished by then")
	poll := fs.Duration("poll", time.Second, "interval between twin reads")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	id := firstNonEmpty(*deviceID, lookupEnv(env, "IOTHUB_DEVICE_ID"))
	cfg, err := serviceConfig(firstNonEmpty(*connStr, lookupEnv(env, "IOTHUB_CONNECTION_STRING")), *caFile)
	if err == nil && id == "" {
		err = errors.New("no device: set IOTHUB_DEVICE_ID or pass -device")
	}
	if err != nil {
		fmt.Fprintf(stderr, "firmware-service: %v\n", err)
		return 2
	}
	client, err := service.New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "firmware-service: %v\n", err)
		return 2
	}
	defer client.Close()

	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if err := updateAndFollow(ctx, client, id, *uri, *poll, stdout); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("the update of device %s did not finish within %s", id, *timeout)
		}
		fmt.Fprintf(stderr, "firmware-service: %v\n", err)
		return 1
	}
	return 0
}

// progress is the part of the reported properties the update changes.
type progress struct {
	status, downloadComplete, startedApplying, lastUpdate, fwVersion any
	updateError                                                      any
}

func progressOf(reported map[string]any) progress {
	return progress{
		status:           reported["firmwareStatus"],
		downloadComplete: reported["downloadComplete"],
		startedApplying:  reported["startedApplyingImage"],
		lastUpdate:       reported["lastFirmwareUpdate"],
		fwVersion:        reported["fwVersion"],
		updateError:      reported["firmwareUpdateError"],
	}
}

// updateAndFollow invokes firmwareUpdate and prints each stage until the
// device reports the outcome of this update. "completed" counts only with a
// lastFirmwareUpdate newer than before the call, and "failed" only with a
// new firmwareUpdateError, so the outcome of an earlier update is not taken
// for this one's.
func updateAndFollow(ctx context.Context, client *service.Client, id, uri string, poll time.Duration, out io.Writer) error {
	twin, err := client.GetTwin(ctx, id)
	if err != nil {
		return err
	}
	before := progressOf(twin.Properties.Reported)
	fmt.Fprintf(out, "Device %s runs firmware %v (firmwareStatus %v).\n", id, orNone(before.fwVersion), orNone(before.status))

	payload, _ := json.Marshal(map[string]string{"fwPackageUri": uri})
	fmt.Fprintf(out, "Invoking firmwareUpdate with %s.\n", payload)
	resp, err := client.InvokeMethod(ctx, id, service.MethodCall{Name: "firmwareUpdate", Payload: payload, ResponseTimeout: 30 * time.Second})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Method response: status %d, payload %s\n", resp.Status, resp.Payload)
	if resp.Status != 200 {
		return fmt.Errorf("device answered firmwareUpdate with status %d", resp.Status)
	}

	last := before
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
		p := progressOf(twin.Properties.Reported)
		switch {
		case p.status == "completed" && p.lastUpdate != nil && changed(p.lastUpdate, before.lastUpdate):
			fmt.Fprintf(out, "Firmware applied at %v; device now runs firmware %v.\n", p.lastUpdate, orNone(p.fwVersion))
			return nil
		case p.status == "failed" && p.updateError != nil && changed(p.updateError, before.updateError):
			detail, _ := json.Marshal(p.updateError)
			return fmt.Errorf("device %s reported the update failed: %s", id, detail)
		}
		if p.status == "downloading" && last.status != "downloading" {
			fmt.Fprintln(out, "Downloading firmware…")
		}
		if p.downloadComplete != nil && changed(p.downloadComplete, last.downloadComplete) {
			fmt.Fprintf(out, "Download complete at %v.\n", p.downloadComplete)
		}
		if p.status == "applying" && changed(p.startedApplying, last.startedApplying) {
			fmt.Fprintf(out, "Applying firmware since %v…\n", p.startedApplying)
		}
		last = p
	}
}

// changed compares twin values, which may be objects.
func changed(a, b any) bool { return !reflect.DeepEqual(a, b) }

func orNone(v any) any {
	if v == nil {
		return "(none)"
	}
	return v
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
