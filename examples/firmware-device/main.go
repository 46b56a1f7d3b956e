// Command firmware-device is the device app of the Azure IoT Hub "firmware
// update" tutorial, in Go. At start-up it reports firmwareStatus "standBy"
// with logTime (and its fwVersion). On the firmwareUpdate direct method with
// {"fwPackageUri": "…"} it answers 200 {"Response":"Firmware update started"}
// at once, then reports each stage with a timestamp:
//
//	firmwareStatus "downloading"                  (then downloadComplete)
//	firmwareStatus "applying"  + startedApplyingImage
//	firmwareStatus "completed" + lastFirmwareUpdate, fwVersion
//
// fwVersion is read from the package file name ("…/edge-2.1.0.bin" gives
// "2.1.0"), so a job whose target query asks for another version stops
// matching the device. A second update while one runs is answered 409; any
// other method 404.
//
// Usage:
//
//	IOTHUB_DEVICE_CONNECTION_STRING='HostName=…;DeviceId=…;SharedAccessKey=…' \
//	  go run ./examples/firmware-device [-ca ca.pem] [-download 15s] [-apply 15s]
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"path"
	"regexp"
	"sync"
	"time"

	"github.com/hubflow/hubflow/examples/internal/tutorial"
	"github.com/hubflow/hubflow/iothub/device"
)

func main() { tutorial.Main(run) }

// run is the whole app: it returns 0 once ctx ends, 1 when the device
// cannot connect or report, and 2 for bad flags or configuration.
func run(ctx context.Context, args, env []string, stdout, stderr io.Writer) int {
	fs := tutorial.NewFlagSet("firmware-device", stderr)
	settings := tutorial.NewDeviceFlags(fs)
	download := fs.Duration("download", 15*time.Second, "time the simulated download takes")
	apply := fs.Duration("apply", 15*time.Second, "time applying the simulated image takes")
	version := fs.String("version", "2.0.0", "fwVersion reported at start-up (empty: none)")
	if err := fs.Parse(args); err != nil {
		return tutorial.ExitUsage
	}
	client, id, err := settings.Client(env)
	if err != nil {
		return tutorial.Fail(stderr, "firmware-device", tutorial.ExitUsage, err)
	}
	defer client.Close()

	u := &updater{client: client, out: stdout, download: *download, apply: *apply, start: make(chan string, 1)}
	client.Handle("firmwareUpdate", u.handle)
	if err := client.Connect(ctx); err != nil {
		return tutorial.Fail(stderr, "firmware-device", tutorial.ExitFailed, fmt.Errorf("connect: %w", err))
	}
	initial := map[string]any{"firmwareStatus": "standBy", "logTime": now()}
	if *version != "" {
		initial["fwVersion"] = *version
	}
	if _, err := client.UpdateReported(ctx, initial); err != nil {
		return tutorial.Fail(stderr, "firmware-device", tutorial.ExitFailed, fmt.Errorf("report start-up state: %w", err))
	}
	fmt.Fprintf(stdout, "Device %s connected and in standBy; waiting for firmwareUpdate (Ctrl-C to stop).\n", id)
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(stdout, "Stopped.")
			return tutorial.ExitOK
		case uri := <-u.start:
			if err := u.update(ctx, uri); err != nil && ctx.Err() == nil {
				fmt.Fprintf(stderr, "firmware-device: %v\n", err)
			}
			u.done()
		}
	}
}

// updater runs one firmware update at a time.
type updater struct {
	client          *device.Client
	out             io.Writer
	download, apply time.Duration
	start           chan string

	mu   sync.Mutex
	busy bool
}

// handle answers firmwareUpdate and hands the URI to the main loop.
func (u *updater) handle(_ context.Context, payload json.RawMessage) (int, []byte) {
	var req struct {
		URI string `json:"fwPackageUri"`
	}
	if err := json.Unmarshal(payload, &req); err != nil || req.URI == "" {
		return 400, []byte(`{"Response":"Expected a payload such as {\"fwPackageUri\":\"https://example.com/firmware-2.1.0.bin\"}"}`)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.busy {
		return 409, []byte(`{"Response":"Firmware update already in progress"}`)
	}
	u.busy = true
	u.start <- req.URI
	fmt.Fprintf(u.out, "Received firmwareUpdate for %s.\n", req.URI)
	return 200, []byte(`{"Response":"Firmware update started"}`)
}

func (u *updater) done() {
	u.mu.Lock()
	u.busy = false
	u.mu.Unlock()
}

// update reports each stage of a simulated update of the image at uri.
func (u *updater) update(ctx context.Context, uri string) error {
	report := func(what string, patch map[string]any) error {
		if _, err := u.client.UpdateReported(ctx, patch); err != nil {
			return fmt.Errorf("report %s: %w", what, err)
		}
		return nil
	}
	fmt.Fprintf(u.out, "Downloading image from %s.\n", uri)
	err := report("downloading", map[string]any{
		"firmwareStatus": "downloading", "fwPackageUri": uri,
		"downloadComplete": nil, "startedApplyingImage": nil,
	})
	if err != nil {
		return err
	}
	if err := tutorial.Pause(ctx, u.download); err != nil {
		return err
	}
	if err := report("downloadComplete", map[string]any{"downloadComplete": now()}); err != nil {
		return err
	}
	fmt.Fprintln(u.out, "Download complete; applying image.")
	if err := report("applying", map[string]any{"firmwareStatus": "applying", "startedApplyingImage": now()}); err != nil {
		return err
	}
	if err := tutorial.Pause(ctx, u.apply); err != nil {
		return err
	}
	done := map[string]any{"firmwareStatus": "completed", "lastFirmwareUpdate": now()}
	if v := versionFromURI(uri); v != "" {
		done["fwVersion"] = v
	}
	if err := report("completed", done); err != nil {
		return err
	}
	if v, ok := done["fwVersion"]; ok {
		fmt.Fprintf(u.out, "Image applied; now running firmware %s.\n", v)
	} else {
		fmt.Fprintln(u.out, "Image applied.")
	}
	return nil
}

var versionPattern = regexp.MustCompile(`[0-9]+(?:\.[0-9]+)+`)

// versionFromURI is the last run of dot-separated numbers in the package's
// file name, or "" when it has none (fwVersion is then left as it was).
func versionFromURI(uri string) string {
	name := uri
	if p, err := url.Parse(uri); err == nil && p.Path != "" {
		name = p.Path
	}
	ms := versionPattern.FindAllString(path.Base(name), -1)
	if len(ms) == 0 {
		return ""
	}
	return ms[len(ms)-1]
}

// now is the time stamped on each stage.
func now() string { return tutorial.Timestamp(time.Now()) }
