// Command create-device registers a device identity, as the "create a
// device identity" step of the Azure IoT Hub tutorials does, and prints its
// device connection string for the device apps
// (IOTHUB_DEVICE_CONNECTION_STRING). A device that already exists is kept
// and its connection string printed.
//
// Usage:
//
//	IOTHUB_CONNECTION_STRING='HostName=…;SharedAccessKeyName=iothubowner;SharedAccessKey=…' \
//	  go run ./examples/create-device [-device myDeviceId] [-ca ca.pem] [-gateway HOST:PORT]
//
// The connection string goes to stdout and nowhere else; treat it as the
// secret it is.
package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
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

// run is the whole app and returns its exit code: 0 with the connection
// string printed, 1 when the hub refused, 2 for bad flags or configuration.
func run(ctx context.Context, args, env []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("create-device", flag.ContinueOnError)
	fs.SetOutput(stderr)
	connStr := fs.String("connection-string", "", "service connection string with registry write access (default $IOTHUB_CONNECTION_STRING)")
	deviceID := fs.String("device", "", "device to register (default $IOTHUB_DEVICE_ID, else myDeviceId)")
	caFile := fs.String("ca", "", "PEM file of a CA to trust besides the system roots (the emulator's ca.pem)")
	gateway := fs.String("gateway", "", "GatewayHostName for the device connection string: the host[:port] devices dial for MQTT (default: the hub's host without its port, for a local hub)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	id := firstNonEmpty(*deviceID, lookupEnv(env, "IOTHUB_DEVICE_ID"), "myDeviceId")
	cfg, err := serviceConfig(firstNonEmpty(*connStr, lookupEnv(env, "IOTHUB_CONNECTION_STRING")), *caFile)
	if err != nil {
		fmt.Fprintf(stderr, "create-device: %v\n", err)
		return 2
	}
	client, err := service.New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "create-device: %v\n", err)
		return 2
	}
	defer client.Close()

	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	dev, err := client.CreateDevice(ctx, iothub.Device{DeviceID: id})
	if iothub.KindOf(err) == iothub.KindConflict {
		fmt.Fprintf(stderr, "Device %s already exists; printing its connection string.\n", id)
		dev, err = client.GetDevice(ctx, id)
	}
	if err != nil {
		fmt.Fprintf(stderr, "create-device: %v\n", err)
		return 1
	}
	a := dev.Authentication
	if a == nil || a.SymmetricKey == nil || a.SymmetricKey.PrimaryKey == "" {
		fmt.Fprintf(stderr, "create-device: device %s has no symmetric key (it uses X.509 authentication)\n", id)
		return 1
	}
	cs := iothub.ConnectionString{
		HostName:        cfg.ConnectionString.HostName,
		DeviceID:        id,
		SharedAccessKey: a.SymmetricKey.PrimaryKey,
		GatewayHostName: *gateway,
	}
	// A local hub names its HTTPS port in HostName; its MQTT front end is
	// on the standard port 8883 of the same host.
	if host, _, err := net.SplitHostPort(cs.HostName); err == nil && cs.GatewayHostName == "" {
		cs.GatewayHostName = host
	}
	fmt.Fprintln(stdout, cs.String())
	return 0
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
		return service.Config{}, errors.New("the connection string is a device's; this app needs a service policy's with registry write access (iothubowner)")
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

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

func lookupEnv(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], key+"="); ok {
			return v
		}
	}
	return ""
}
