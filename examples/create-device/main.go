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
	"fmt"
	"io"
	"net"
	"time"

	"github.com/hubflow/hubflow/examples/internal/tutorial"
	"github.com/hubflow/hubflow/iothub"
)

func main() { tutorial.Main(run) }

// run is the whole app and returns its exit code: 0 with the connection
// string printed, 1 when the hub refused, 2 for bad flags or configuration.
func run(ctx context.Context, args, env []string, stdout, stderr io.Writer) int {
	fs := tutorial.NewFlagSet("create-device", stderr)
	settings := tutorial.NewServiceFlags(fs, tutorial.ServiceOptions{Action: "register", DefaultDeviceID: "myDeviceId", RegistryWrite: true})
	gateway := fs.String("gateway", "", "GatewayHostName for the device connection string: the host[:port] devices dial for MQTT (default: the hub's host without its port, for a local hub)")
	if err := fs.Parse(args); err != nil {
		return tutorial.ExitUsage
	}
	client, id, err := settings.Client(env)
	if err != nil {
		return tutorial.Fail(stderr, "create-device", tutorial.ExitUsage, err)
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
		return tutorial.Fail(stderr, "create-device", tutorial.ExitFailed, err)
	}
	a := dev.Authentication
	if a == nil || a.SymmetricKey == nil || a.SymmetricKey.PrimaryKey == "" {
		return tutorial.Fail(stderr, "create-device", tutorial.ExitFailed,
			fmt.Errorf("device %s has no symmetric key (it uses X.509 authentication)", id))
	}
	cs := iothub.ConnectionString{
		HostName:        client.Host(),
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
	return tutorial.ExitOK
}
