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
	src := "group \"d\" {\n  count = 1\n  id = \"myDeviceId\"\n  reported = { fwVersion = \"2.0.0\" }\n" + behaviour + "\n}\n"
	fleet, diags := simulator.LoadFleet("fleet.hcl", []byte(src))
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

// TestRun_FollowsStages runs the tutorial's back end against a device whose
// stages last long enough for every one to be seen.
func TestRun_FollowsStages(t *testing.T) {
	hub := startDevice(t, `firmware {
    downloading = "400ms"
    applying    = "400ms"
  }`)
	for run := 1; run <= 2; run++ {
		code, out, errs := runApp(t, hub, "-uri", "https://fw.example.com/edge-2.1.0.bin", "-timeout", "20s")
		if code != 0 {
			t.Fatalf("run %d: got exit code %d, want 0; stderr: %s", run, code, errs)
		}
		// The second run starts from a device that already completed an
		// update; it must still wait for this update's stages.
		want := []string{
			`Method response: status 200, payload {"Response":"Firmware update started"}`,
			"Downloading firmware…",
			"Download complete at ",
			"Applying firmware since ",
			"device now runs firmware 2.1.0",
		}
		at := 0
		for _, w := range want {
			i := strings.Index(out[at:], w)
			if i < 0 {
				t.Fatalf("run %d: stdout lacks %q after position %d:\n%s", run, w, at, out)
			}
			at += i + len(w)
		}
	}
}

func TestRun_Failures(t *testing.T) {
	cases := []struct {
		name, behaviour string
		args            []string
		want            string
	}{
		{"device reports failure", `firmware {
    downloading   = "20ms"
    applying      = "20ms"
    fail_applying = 1
  }`, nil, `reported the update failed: {"message":"apply failed`},
		{"update does not finish in time", `firmware { downloading = "1m" }`, []string{"-timeout", "600ms"}, "did not finish within 600ms"},
		{"device offline", `offline {}`, nil, "DeviceNotOnline"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			hub := startDevice(t, c.behaviour)
			code, _, errs := runApp(t, hub, append([]string{"-timeout", "20s"}, c.args...)...)
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
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"-ca", "/nonexistent.pem"}, []string{
		"IOTHUB_CONNECTION_STRING=HostName=h;SharedAccessKeyName=s;SharedAccessKey=c2VjcmV0",
		"IOTHUB_DEVICE_ID=d",
	}, &out, &errb); code != 2 {
		t.Errorf("got exit code %d, want 2", code)
	}
	if !strings.Contains(errb.String(), "read CA file") {
		t.Errorf("stderr does not name the CA file problem: %s", errb.String())
	}
}
