package tutorial_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hubflow/hubflow/examples/internal/tutorial"
)

const (
	// key is a SharedAccessKey that must never show in an error.
	key       = "c2VjcmV0"
	deviceCS  = "HostName=hub.example.com;DeviceId=dev-1;SharedAccessKey=" + key
	serviceCS = "HostName=localhost:8443;SharedAccessKeyName=service;SharedAccessKey=" + key
)

// caFiles writes a PEM file holding one self-signed CA certificate and a
// file holding none, and returns their paths.
func caFiles(t testing.TB) (good, noPEM string) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "tutorial test CA"},
		NotBefore:             time.Unix(0, 0),
		NotAfter:              time.Unix(1<<32, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	good = filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(good, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	noPEM = filepath.Join(dir, "empty.pem")
	if err := os.WriteFile(noPEM, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return good, noPEM
}

// clientFunc makes an app's client once its flags are parsed and returns
// the ID of the device the app works on. The client is closed when the test
// ends.
type clientFunc func(t testing.TB, env []string) (deviceID string, err error)

func deviceApp(fs *flag.FlagSet) clientFunc {
	settings := tutorial.NewDeviceFlags(fs)
	return func(t testing.TB, env []string) (string, error) {
		client, id, err := settings.Client(env)
		if err == nil {
			t.Cleanup(func() { client.Close() })
		}
		return id, err
	}
}

// serviceApp is deviceApp for a back-end app with opts; every case that
// wants a client uses serviceCS, whose hub it checks.
func serviceApp(opts tutorial.ServiceOptions) func(fs *flag.FlagSet) clientFunc {
	return func(fs *flag.FlagSet) clientFunc {
		settings := tutorial.NewServiceFlags(fs, opts)
		return func(t testing.TB, env []string) (string, error) {
			client, id, err := settings.Client(env)
			if err != nil {
				return "", err
			}
			t.Cleanup(client.Close)
			if got := client.Host(); got != "localhost:8443" {
				t.Errorf("got host %q, want localhost:8443", got)
			}
			return id, nil
		}
	}
}

// checkClient defines an app's flags with define, parses args and makes the
// client with env. It fails t unless that gives the device wantID, or, when
// wantErr is not empty, an error that contains wantErr and not the key.
func checkClient(t testing.TB, define func(*flag.FlagSet) clientFunc, args, env []string, wantID, wantErr string) {
	t.Helper()
	fs := tutorial.NewFlagSet("test", io.Discard)
	newClient := define(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	id, err := newClient(t, env)
	switch {
	case wantErr == "" && err != nil:
		t.Errorf("got error %v, want none", err)
	case wantErr == "" && id != wantID:
		t.Errorf("got device %q, want %q", id, wantID)
	case wantErr == "":
	case err == nil || !strings.Contains(err.Error(), wantErr):
		t.Errorf("got error %v, want one with %q", err, wantErr)
	case strings.Contains(err.Error(), key):
		t.Errorf("got error %q, want it without the key", err)
	}
}

func TestDeviceFlags_Client(t *testing.T) {
	goodCA, noPEM := caFiles(t)
	cases := []struct {
		name    string
		args    []string
		env     []string
		wantID  string
		wantErr string
	}{
		{"from the environment", nil, []string{"IOTHUB_DEVICE_CONNECTION_STRING=" + deviceCS}, "dev-1", ""},
		{"flag wins", []string{"-connection-string", strings.Replace(deviceCS, "dev-1", "dev-2", 1)}, []string{"IOTHUB_DEVICE_CONNECTION_STRING=" + deviceCS}, "dev-2", ""},
		{"last entry wins", nil, []string{"IOTHUB_DEVICE_CONNECTION_STRING=x", "IOTHUB_DEVICE_CONNECTION_STRING=" + deviceCS}, "dev-1", ""},
		{"longer name is another variable", nil, []string{"IOTHUB_DEVICE_CONNECTION_STRING_2=" + deviceCS}, "", "set IOTHUB_DEVICE_CONNECTION_STRING or pass -connection-string"},
		{"with a CA", []string{"-ca", goodCA}, []string{"IOTHUB_DEVICE_CONNECTION_STRING=" + deviceCS}, "dev-1", ""},
		{"nothing", nil, nil, "", "no device connection string: set IOTHUB_DEVICE_CONNECTION_STRING or pass -connection-string"},
		{"service string", []string{"-connection-string", serviceCS}, nil, "", "this app needs a device connection string (with DeviceId)"},
		{"malformed", []string{"-connection-string", "HostName=h;DeviceId=d"}, nil, "", "SharedAccessKey is missing"},
		{"CA file missing", []string{"-ca", filepath.Join(t.TempDir(), "none.pem")}, []string{"IOTHUB_DEVICE_CONNECTION_STRING=" + deviceCS}, "", "read CA file: "},
		{"CA file without PEM", []string{"-ca", noPEM}, []string{"IOTHUB_DEVICE_CONNECTION_STRING=" + deviceCS}, "", "no PEM certificate in it"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			checkClient(t, deviceApp, c.args, c.env, c.wantID, c.wantErr)
		})
	}
}

func TestServiceFlags_Client(t *testing.T) {
	goodCA, noPEM := caFiles(t)
	hub := "IOTHUB_CONNECTION_STRING=" + serviceCS
	cases := []struct {
		name    string
		opts    tutorial.ServiceOptions
		args    []string
		env     []string
		wantID  string
		wantErr string
	}{
		{"from the environment", tutorial.ServiceOptions{}, nil, []string{hub, "IOTHUB_DEVICE_ID=dev-1"}, "dev-1", ""},
		{"flags win", tutorial.ServiceOptions{}, []string{"-device", "dev-2", "-connection-string", serviceCS}, []string{"IOTHUB_CONNECTION_STRING=x", "IOTHUB_DEVICE_ID=dev-1"}, "dev-2", ""},
		{"default device", tutorial.ServiceOptions{DefaultDeviceID: "myDeviceId"}, nil, []string{hub}, "myDeviceId", ""},
		{"environment beats the default", tutorial.ServiceOptions{DefaultDeviceID: "myDeviceId"}, nil, []string{hub, "IOTHUB_DEVICE_ID=dev-1"}, "dev-1", ""},
		{"with a CA", tutorial.ServiceOptions{}, []string{"-ca", goodCA}, []string{hub, "IOTHUB_DEVICE_ID=d"}, "d", ""},
		{"no hub", tutorial.ServiceOptions{}, nil, []string{"IOTHUB_DEVICE_ID=d"}, "", "no hub: set IOTHUB_CONNECTION_STRING or pass -connection-string"},
		{"no hub and no device names the hub", tutorial.ServiceOptions{}, nil, nil, "", "no hub"},
		{"no device", tutorial.ServiceOptions{}, nil, []string{hub}, "", "no device: set IOTHUB_DEVICE_ID or pass -device"},
		{"device string", tutorial.ServiceOptions{}, nil, []string{"IOTHUB_CONNECTION_STRING=" + deviceCS, "IOTHUB_DEVICE_ID=d"}, "",
			"the connection string is a device's; this app needs a service policy's (SharedAccessKeyName=service or iothubowner)"},
		{"device string, registry write", tutorial.ServiceOptions{RegistryWrite: true, DefaultDeviceID: "myDeviceId"}, nil, []string{"IOTHUB_CONNECTION_STRING=" + deviceCS}, "",
			"the connection string is a device's; this app needs a service policy's with registry write access (iothubowner)"},
		{"bad CA before no device", tutorial.ServiceOptions{}, []string{"-ca", noPEM}, []string{hub}, "", "no PEM certificate in it"},
		{"no device before a bad host", tutorial.ServiceOptions{}, []string{"-connection-string", "HostName=a b;SharedAccessKeyName=s;SharedAccessKey=" + key}, nil, "", "no device"},
		{"bad host", tutorial.ServiceOptions{}, []string{"-connection-string", "HostName=a b;SharedAccessKeyName=s;SharedAccessKey=" + key}, []string{"IOTHUB_DEVICE_ID=d"}, "", "is not a host name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			checkClient(t, serviceApp(c.opts), c.args, c.env, c.wantID, c.wantErr)
		})
	}
}

// TestFlagUsage pins the help each app prints, which examples/README.md
// describes.
func TestFlagUsage(t *testing.T) {
	const ca = "PEM file of a CA to trust besides the system roots (the emulator's ca.pem)"
	cases := []struct {
		name   string
		define func(fs *flag.FlagSet)
		want   map[string]string
	}{
		{"device", func(fs *flag.FlagSet) { tutorial.NewDeviceFlags(fs) }, map[string]string{
			"connection-string": "device connection string (default $IOTHUB_DEVICE_CONNECTION_STRING)",
			"ca":                ca,
		}},
		{"service", func(fs *flag.FlagSet) { tutorial.NewServiceFlags(fs, tutorial.ServiceOptions{Action: "reboot"}) }, map[string]string{
			"connection-string": "service connection string (default $IOTHUB_CONNECTION_STRING)",
			"device":            "device to reboot (default $IOTHUB_DEVICE_ID)",
			"ca":                ca,
		}},
		{"registry", func(fs *flag.FlagSet) {
			tutorial.NewServiceFlags(fs, tutorial.ServiceOptions{Action: "register", DefaultDeviceID: "myDeviceId", RegistryWrite: true})
		}, map[string]string{
			"connection-string": "service connection string with registry write access (default $IOTHUB_CONNECTION_STRING)",
			"device":            "device to register (default $IOTHUB_DEVICE_ID, else myDeviceId)",
			"ca":                ca,
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fs := tutorial.NewFlagSet("test", io.Discard)
			c.define(fs)
			n := 0
			fs.VisitAll(func(f *flag.Flag) {
				n++
				if want, ok := c.want[f.Name]; !ok {
					t.Errorf("got flag -%s, want none", f.Name)
				} else if f.Usage != want || f.DefValue != "" {
					t.Errorf("-%s: got usage %q (default %q), want %q (no default)", f.Name, f.Usage, f.DefValue, want)
				}
			})
			if n != len(c.want) {
				t.Errorf("got %d flags, want %d", n, len(c.want))
			}
		})
	}
}
