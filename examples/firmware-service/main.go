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
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"time"

	"github.com/hubflow/hubflow/examples/internal/tutorial"
	"github.com/hubflow/hubflow/iothub/service"
)

func main() { tutorial.Main(run) }

// run is the whole app and returns its exit code: 0 when the update
// completed, 1 when it failed or timed out (or the hub refused), 2 for bad
// flags or configuration.
func run(ctx context.Context, args, env []string, stdout, stderr io.Writer) int {
	fs := tutorial.NewFlagSet("firmware-service", stderr)
	settings := tutorial.NewServiceFlags(fs, tutorial.ServiceOptions{Action: "update"})
	uri := fs.String("uri", "https://secureurl/firmware/2.1.0.bin", "firmware package URI sent as fwPackageUri")
	timeout := fs.Duration("timeout", 5*time.Minute, "give up when the update has not finished by then")
	poll := fs.Duration("poll", time.Second, "interval between twin reads")
	if err := fs.Parse(args); err != nil {
		return tutorial.ExitUsage
	}
	client, id, err := settings.Client(env)
	if err != nil {
		return tutorial.Fail(stderr, "firmware-service", tutorial.ExitUsage, err)
	}
	defer client.Close()

	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if err := updateAndFollow(ctx, client, id, *uri, *poll, stdout); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("the update of device %s did not finish within %s", id, *timeout)
		}
		return tutorial.Fail(stderr, "firmware-service", tutorial.ExitFailed, err)
	}
	return tutorial.ExitOK
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
	if err := tutorial.CallMethod(ctx, client, id, "firmwareUpdate", payload, out); err != nil {
		return err
	}

	last := before
	return tutorial.PollReported(ctx, client, id, poll, out, func(reported map[string]any) (bool, error) {
		p := progressOf(reported)
		switch {
		case p.status == "completed" && p.lastUpdate != nil && changed(p.lastUpdate, before.lastUpdate):
			fmt.Fprintf(out, "Firmware applied at %v; device now runs firmware %v.\n", p.lastUpdate, orNone(p.fwVersion))
			return true, nil
		case p.status == "failed" && p.updateError != nil && changed(p.updateError, before.updateError):
			detail, _ := json.Marshal(p.updateError)
			return true, fmt.Errorf("device %s reported the update failed: %s", id, detail)
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
		return false, nil
	})
}

// changed compares twin values, which may be objects.
func changed(a, b any) bool { return !reflect.DeepEqual(a, b) }

func orNone(v any) any {
	if v == nil {
		return "(none)"
	}
	return v
}
