package tutorial

import (
	"cmp"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/hubflow/hubflow/iothub"
	"github.com/hubflow/hubflow/iothub/device"
	"github.com/hubflow/hubflow/iothub/service"
)

// caUsage is the -ca flag's help, the same in every app.
const caUsage = "PEM file of a CA to trust besides the system roots (the emulator's ca.pem)"

// DeviceFlags are a device app's settings, read as the tutorials read them:
// the device's connection string from -connection-string, else from
// $IOTHUB_DEVICE_CONNECTION_STRING, and the CA to trust from -ca.
type DeviceFlags struct {
	connStr, caFile *string
}

// NewDeviceFlags defines -connection-string and -ca on fs.
func NewDeviceFlags(fs *flag.FlagSet) *DeviceFlags {
	return &DeviceFlags{
		connStr: fs.String("connection-string", "", "device connection string (default $IOTHUB_DEVICE_CONNECTION_STRING)"),
		caFile:  fs.String("ca", "", caUsage),
	}
}

// Client returns a client for the device, not yet connected, and the
// device's ID; env, as os.Environ gives it, fills in what the flags left
// out. Call it once fs is parsed. Every error is one of configuration, on
// which an app exits with ExitUsage, and none carries a key.
func (f *DeviceFlags) Client(env []string) (client *device.Client, deviceID string, err error) {
	connStr := cmp.Or(*f.connStr, getenv(env, "IOTHUB_DEVICE_CONNECTION_STRING"))
	if connStr == "" {
		return nil, "", errors.New("no device connection string: set IOTHUB_DEVICE_CONNECTION_STRING or pass -connection-string")
	}
	cs, err := iothub.ParseConnectionString(connStr)
	if err != nil {
		return nil, "", err
	}
	if !cs.IsDevice() {
		return nil, "", errors.New("the connection string is a service policy's; this app needs a device connection string (with DeviceId)")
	}
	cfg := device.Config{ConnectionString: cs}
	if *f.caFile != "" {
		if cfg.RootCAs, err = loadCA(*f.caFile); err != nil {
			return nil, "", err
		}
	}
	if client, err = device.New(cfg); err != nil {
		return nil, "", err
	}
	return client, cs.DeviceID, nil
}

// ServiceOptions tell NewServiceFlags how a back-end app differs from the
// others.
type ServiceOptions struct {
	// Action is what the app does to the device, for -device's help:
	// "reboot" gives "device to reboot".
	Action string
	// DefaultDeviceID is the device used when neither -device nor
	// $IOTHUB_DEVICE_ID names one. Empty makes the device required.
	DefaultDeviceID string
	// RegistryWrite says that the app registers devices, so it needs a
	// policy with registry write access (iothubowner) rather than one
	// that may only invoke methods and read twins (service).
	RegistryWrite bool
}

// ServiceFlags are a back-end app's settings, read as the tutorials read
// them: the hub's service connection string from -connection-string, else
// from $IOTHUB_CONNECTION_STRING, the device from -device, else from
// $IOTHUB_DEVICE_ID, and the CA to trust from -ca.
type ServiceFlags struct {
	connStr, deviceID, caFile *string
	opts                      ServiceOptions
}

// NewServiceFlags defines -connection-string, -device and -ca on fs.
func NewServiceFlags(fs *flag.FlagSet, opts ServiceOptions) *ServiceFlags {
	connUsage := "service connection string"
	if opts.RegistryWrite {
		connUsage += " with registry write access"
	}
	deviceDefault := "$IOTHUB_DEVICE_ID"
	if opts.DefaultDeviceID != "" {
		deviceDefault += ", else " + opts.DefaultDeviceID
	}
	return &ServiceFlags{
		connStr:  fs.String("connection-string", "", connUsage+" (default $IOTHUB_CONNECTION_STRING)"),
		deviceID: fs.String("device", "", "device to "+opts.Action+" (default "+deviceDefault+")"),
		caFile:   fs.String("ca", "", caUsage),
		opts:     opts,
	}
}

// Client returns a client for the hub and the ID of the device the app works
// on; env, as os.Environ gives it, fills in what the flags left out. Call it
// once fs is parsed. It names the first problem it finds, in this order: the
// connection string (missing, malformed or a device's), the CA file, the
// device, then whatever service.New refuses. Every error is one of
// configuration, on which an app exits with ExitUsage, and none carries a
// key.
func (f *ServiceFlags) Client(env []string) (client *service.Client, deviceID string, err error) {
	connStr := cmp.Or(*f.connStr, getenv(env, "IOTHUB_CONNECTION_STRING"))
	deviceID = cmp.Or(*f.deviceID, getenv(env, "IOTHUB_DEVICE_ID"), f.opts.DefaultDeviceID)
	if connStr == "" {
		return nil, "", errors.New("no hub: set IOTHUB_CONNECTION_STRING or pass -connection-string")
	}
	cs, err := iothub.ParseConnectionString(connStr)
	if err != nil {
		return nil, "", err
	}
	if cs.IsDevice() {
		need := "(SharedAccessKeyName=service or iothubowner)"
		if f.opts.RegistryWrite {
			need = "with registry write access (iothubowner)"
		}
		return nil, "", errors.New("the connection string is a device's; this app needs a service policy's " + need)
	}
	cfg := service.Config{ConnectionString: cs}
	if *f.caFile != "" {
		if cfg.RootCAs, err = loadCA(*f.caFile); err != nil {
			return nil, "", err
		}
	}
	if deviceID == "" {
		return nil, "", errors.New("no device: set IOTHUB_DEVICE_ID or pass -device")
	}
	if client, err = service.New(cfg); err != nil {
		return nil, "", err
	}
	return client, deviceID, nil
}

// getenv returns the value of key in env, or "" when key is absent. A later
// entry wins over an earlier one, as it does in a process environment.
func getenv(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], key+"="); ok {
			return v
		}
	}
	return ""
}

// loadCA returns the system roots plus the certificates in the PEM file at
// path: the emulator's CA is added to the system roots rather than replacing
// them, so that the same -ca works for a hub behind a public CA.
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
