package main

import (
	"bytes"
	"context"
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

func TestRun_BadConfig(t *testing.T) {
	cases := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"nothing", nil, nil, "IOTHUB_DEVICE_CONNECTION_STRING"},
		{"service string", []string{"IOTHUB_DEVICE_CONNECTION_STRING=HostName=h;SharedAccessKeyName=s;SharedAccessKey=c2VjcmV0"}, nil, "device connection string"},
		{"malformed", nil, []string{"-connection-string", "HostName=h;DeviceId=d"}, "SharedAccessKey is missing"},
		{"bad flag", nil, []string{"-reboot-time", "soon"}, "invalid value"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errb syncBuffer
			if code := run(context.Background(), c.args, c.env, &out, &errb); code != 2 {
				t.Errorf("got exit code %d, want 2", code)
			}
			if !strings.Contains(errb.String(), c.want) {
				t.Errorf("stderr lacks %q: %s", c.want, errb.String())
			}
			if strings.Contains(errb.String(), "c2VjcmV0") {
				t.Errorf("stderr shows the key: %s", errb.String())
			}
		})
	}
}

// TestRun_Reboot runs the app against the emulator as the tutorial does:
// the back end invokes rebootDevice, the device answers, goes away, comes
// back and reports rebootTime.
func TestRun_Reboot(t *testing.T) {
	hub, err := emulator.Start(context.Background(), emulator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
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
	defer svc.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb syncBuffer
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"-ca", hub.CAFile(), "-reboot-time", "200ms"},
			[]string{"IOTHUB_DEVICE_CONNECTION_STRING=" + devCS}, &out, &errb)
	}()
	waitFor(t, done, &out, "connected")

	resp, err := svc.InvokeMethod(ctx, "myDeviceId", service.MethodCall{Name: "rebootDevice", ResponseTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 200 || string(resp.Payload) != `{"Response":"Reboot started"}` {
		t.Errorf("got %d %s, want 200 {\"Response\":\"Reboot started\"}", resp.Status, resp.Payload)
	}
	waitFor(t, done, &out, "Back online")
	twin, err := svc.GetTwin(ctx, "myDeviceId")
	if err != nil {
		t.Fatal(err)
	}
	stamp, _ := twin.Properties.Reported["rebootTime"].(string)
	if _, err := time.Parse(time.RFC3339, stamp); err != nil {
		t.Errorf("got rebootTime %q, want RFC 3339: %v", stamp, err)
	}

	resp, err = svc.InvokeMethod(ctx, "myDeviceId", service.MethodCall{Name: "factoryReset", ResponseTimeout: 10 * time.Second})
	if err != nil || resp.Status != 404 {
		t.Errorf("unknown method: got %v %v, want status 404", resp, err)
	}

	cancel()
	if code := <-done; code != 0 {
		t.Errorf("got exit code %d after an interrupt, want 0; stderr: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "Rebooting for 200ms") {
		t.Errorf("stdout does not tell of the reboot:\n%s", out.String())
	}
}

// waitFor waits until the app printed want, failing if it exits first.
func waitFor(t *testing.T, done <-chan int, out *syncBuffer, want string) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for !strings.Contains(out.String(), want) {
		select {
		case code := <-done:
			t.Fatalf("the app ended with %d before printing %q:\n%s", code, want, out.String())
		case <-deadline:
			t.Fatalf("the app did not print %q:\n%s", want, out.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
}
