package main

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hubflow/hubflow/emulator"
	"github.com/hubflow/hubflow/iothub"
	"github.com/hubflow/hubflow/iothub/service"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// deviceApp is the firmware device app running against an emulator.
type deviceApp struct {
	hub    *emulator.Hub
	svc    *service.Client
	out    *syncBuffer
	done   chan int
	cancel context.CancelFunc
}

func startApp(t *testing.T, args ...string) *deviceApp {
	t.Helper()
	hub, err := emulator.Start(context.Background(), emulator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hub.Close() })
	if _, err := hub.CreateDevice("myDeviceId"); err != nil {
		t.Fatal(err)
	}
	devCS, err := hub.DeviceConnectionString("myDeviceId")
	if err != nil {
		t.Fatal(err)
	}
	cs, _ := iothub.ParseConnectionString(hub.ServiceConnectionString())
	svc, err := service.New(service.Config{ConnectionString: cs, RootCAs: hub.CAPool()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	ctx, cancel := context.WithCancel(context.Background())
	a := &deviceApp{hub: hub, svc: svc, out: &syncBuffer{}, done: make(chan int, 1), cancel: cancel}
	var errb syncBuffer
	go func() {
		a.done <- run(ctx, append([]string{"-ca", hub.CAFile()}, args...),
			[]string{"IOTHUB_DEVICE_CONNECTION_STRING=" + devCS}, a.out, &errb)
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-a.done; code != 0 {
			t.Errorf("got exit code %d after an interrupt, want 0; stderr: %s", code, errb.String())
		}
	})
	a.waitFor(t, "standBy")
	return a
}

func (a *deviceApp) waitFor(t *testing.T, want string) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for !strings.Contains(a.out.String(), want) {
		select {
		case <-deadline:
			t.Fatalf("the app did not print %q:\n%s", want, a.out.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (a *deviceApp) invoke(t *testing.T, payload string) *iothub.MethodResponse {
	t.Helper()
	resp, err := a.svc.InvokeMethod(context.Background(), "myDeviceId", service.MethodCall{
		Name: "firmwareUpdate", Payload: json.RawMessage(payload), ResponseTimeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// TestRun_FirmwareUpdate follows the tutorial: standBy at start-up, then
// downloading, downloadComplete, applying and completed, each patch on the
// wire in that order, and the new fwVersion at the end.
func TestRun_FirmwareUpdate(t *testing.T) {
	a := startApp(t, "-download", "50ms", "-apply", "50ms")
	resp := a.invoke(t, `{"fwPackageUri":"https://secureurl/firmware/2.1.0.bin"}`)
	if resp.Status != 200 || string(resp.Payload) != `{"Response":"Firmware update started"}` {
		t.Fatalf("got %d %s, want 200 {\"Response\":\"Firmware update started\"}", resp.Status, resp.Payload)
	}
	a.waitFor(t, "now running firmware 2.1.0")

	var stages []string
	var last map[string]any
	for _, p := range a.hub.ReportedLog("myDeviceId") {
		var m map[string]any
		if err := json.Unmarshal(p.Patch, &m); err != nil {
			t.Fatal(err)
		}
		if s, ok := m["firmwareStatus"].(string); ok {
			stages = append(stages, s)
		} else if m["downloadComplete"] != nil {
			stages = append(stages, "downloadComplete")
		}
		last = m
	}
	want := []string{"standBy", "downloading", "downloadComplete", "applying", "completed"}
	if !slices.Equal(stages, want) {
		t.Errorf("got stages %v, want %v", stages, want)
	}
	if last["fwVersion"] != "2.1.0" || last["lastFirmwareUpdate"] == nil {
		t.Errorf("got final patch %v, want fwVersion 2.1.0 and lastFirmwareUpdate", last)
	}
	twin, err := a.svc.GetTwin(context.Background(), "myDeviceId")
	if err != nil {
		t.Fatal(err)
	}
	r := twin.Properties.Reported
	for _, k := range []string{"logTime", "downloadComplete", "startedApplyingImage", "lastFirmwareUpdate"} {
		s, _ := r[k].(string)
		if _, err := time.Parse(time.RFC3339, s); err != nil {
			t.Errorf("%s: got %v, want an RFC 3339 time", k, r[k])
		}
	}
}

func TestRun_Answers(t *testing.T) {
	a := startApp(t, "-download", "1m")
	cases := []struct {
		name, payload string
		status        int
		body          string
	}{
		{"no URI", `{}`, 400, "fwPackageUri"},
		{"not JSON object", `null`, 400, "fwPackageUri"},
		{"start", `{"fwPackageUri":"https://x/3.0.0.bin"}`, 200, "Firmware update started"},
		{"busy", `{"fwPackageUri":"https://x/3.0.1.bin"}`, 409, "already in progress"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp := a.invoke(t, c.payload)
			if resp.Status != c.status || !strings.Contains(string(resp.Payload), c.body) {
				t.Errorf("got %d %s, want %d with %q", resp.Status, resp.Payload, c.status, c.body)
			}
		})
	}
}

func TestVersionFromURI(t *testing.T) {
	cases := map[string]string{
		"https://secureurl/firmware/2.1.0.bin":  "2.1.0",
		"https://fw.example.com/edge-3.2.bin?x": "3.2",
		"https://fw.example.com/latest.bin":     "",
	}
	for uri, want := range cases {
		if got := versionFromURI(uri); got != want {
			t.Errorf("%s: got %q, want %q", uri, got, want)
		}
	}
}

func TestRun_BadConfig(t *testing.T) {
	var out, errb syncBuffer
	if code := run(context.Background(), nil, nil, &out, &errb); code != 2 {
		t.Errorf("got exit code %d, want 2", code)
	}
	if !strings.Contains(errb.String(), "IOTHUB_DEVICE_CONNECTION_STRING") {
		t.Errorf("stderr does not name the variable: %s", errb.String())
	}
}
