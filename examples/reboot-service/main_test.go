package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/hubflow/hubflow/emulator"
	"github.com/hubflow/hubflow/iothub"
	"github.com/hubflow/hubflow/simulator"
)

// startDevice starts an emulator with one simulated tutorial device,
// myDeviceId, whose behaviour the fleet file body describes.
func startDevice(t *testing.T, behaviour string) *emulator.Hub {
	t.Helper()
	hub, err := emulator.Start(context.Background(), emulator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hub.Close() })
	fleet, diags := simulator.LoadFleet("fleet.hcl", []byte("group \"d\" {\n  count = 1\n  id = \"myDeviceId\"\n"+behaviour+"\n}\n"))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	cs, _ := iothub.ParseConnectionString(hub.ServiceConnectionString())
	sim, err := simulator.Start(context.Background(), fleet, simulator.Config{
		Hub: cs, DeviceConnectionString: hub.DeviceConnectionString, RootCAs: hub.CAPool(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	return hub
}

func runApp(t *testing.T, hub *emulator.Hub, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	env := []string{
		"IOTHUB_CONNECTION_STRING=" + hub.ServiceConnectionString(),
		"IOTHUB_DEVICE_ID=myDeviceId",
	}
	var out, errb bytes.Buffer
	code = run(context.Background(), append([]string{"-ca", hub.CAFile(), "-poll", "20ms"}, args...), env, &out, &errb)
	return code, out.String(), errb.String()
}

// TestRun_Reboot runs the tutorial's back end: invoke rebootDevice, print
// the answer, poll the twin until rebootTime appears.
func TestRun_Reboot(t *testing.T) {
	hub := startDevice(t, `reboot { duration = "200ms" }`)
	code, out, errs := runApp(t, hub, "-timeout", "20s")
	if code != 0 {
		t.Fatalf("got exit code %d, want 0; stderr: %s", code, errs)
	}
	for _, want := range []string{
		`Method response: status 200, payload {"Response":"Reboot started"}`,
		"Waiting for the device to report its reboot time",
		"Device rebooted; last reboot time: ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	// A second run waits for a newer rebootTime, not the one already there.
	if code, out, _ := runApp(t, hub, "-timeout", "20s"); code != 0 || !strings.Contains(out, "Device rebooted") {
		t.Errorf("second run: got %d:\n%s", code, out)
	}
}

func TestRun_Failures(t *testing.T) {
	cases := []struct {
		name, behaviour string
		args            []string
		want            string
	}{
		{"reboot not confirmed in time", `reboot { duration = "1m" }`, []string{"-timeout", "700ms"}, "did not report a new rebootTime within 700ms"},
		{"device offline", `offline {}`, []string{"-timeout", "10s"}, "DeviceNotOnline"},
		{"unknown device", ``, []string{"-timeout", "10s", "-device", "nosuchdevice"}, "404"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			hub := startDevice(t, c.behaviour)
			code, _, errs := runApp(t, hub, c.args...)
			if code != 1 {
				t.Errorf("got exit code %d, want 1", code)
			}
			if !strings.Contains(errs, c.want) {
				t.Errorf("stderr lacks %q: %s", c.want, errs)
			}
		})
	}
}

func TestRun_BadConfig(t *testing.T) {
	cases := []struct {
		name string
		env  []string
		want string
	}{
		{"no hub", []string{"IOTHUB_DEVICE_ID=d"}, "IOTHUB_CONNECTION_STRING"},
		{"no device", []string{"IOTHUB_CONNECTION_STRING=HostName=h;SharedAccessKeyName=s;SharedAccessKey=c2VjcmV0"}, "IOTHUB_DEVICE_ID"},
		{"device string", []string{"IOTHUB_DEVICE_ID=d", "IOTHUB_CONNECTION_STRING=HostName=h;DeviceId=d;SharedAccessKey=c2VjcmV0"}, "service policy"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(context.Background(), nil, c.env, &out, &errb); code != 2 {
				t.Errorf("got exit code %d, want 2", code)
			}
			if !strings.Contains(errb.String(), c.want) || strings.Contains(errb.String(), "c2VjcmV0") {
				t.Errorf("got stderr %q, want it to name %q and show no key", errb.String(), c.want)
			}
		})
	}
}
