package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hubflow/hubflow/emulator"
)

// syncBuffer is a bytes.Buffer that a running command and the test can
// share.
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

// runSimulate runs the simulate command in-process until ctx ends and
// returns its exit code.
func runSimulate(ctx context.Context, env []string, stdout, stderr *syncBuffer, args ...string) int {
	a := &app{stdin: strings.NewReader(""), stdout: stdout, stderr: stderr, env: env}
	a.logger = slog.New(slog.DiscardHandler)
	cmd := a.simulateCommand()
	cmd.FlagSet.SetOutput(stderr)
	err := cmd.ParseAndRun(ctx, args)
	if err == nil {
		return exitOK
	}
	var se silentExit
	if !errors.As(err, &se) {
		stderr.Write([]byte("hubflow: " + err.Error() + "\n"))
	}
	return exitCodeOf(err)
}

func writeFile(t testing.TB, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestSimulate_BadInput(t *testing.T) {
	good := writeFile(t, "fleet.hcl", "group \"d\" {\n  count = 1\n}\n")
	bad := writeFile(t, "fleet.hcl", "group \"d\" {\n  count = 1\n  firmware {\n    fail_applying = 1.5\n  }\n  teleport {}\n}\n")
	const hub = "HostName=localhost:1;SharedAccessKeyName=iothubowner;SharedAccessKey=c2VjcmV0LWtleS12YWx1ZQ=="
	cases := []struct {
		name   string
		env    []string
		args   []string
		stderr []string
	}{
		{"no fleet", nil, nil, []string{"-fleet FILE"}},
		{"missing file", nil, []string{"-fleet", "/nonexistent/fleet.hcl"}, []string{"read fleet file"}},
		{"bad fleet", nil, []string{"-fleet", bad}, []string{
			bad + ":4:21: error: Probability out of range",
			bad + ":6:3: error: Unknown behaviour",
		}},
		{"no hub", nil, []string{"-fleet", good}, []string{"IOTHUB_CONNECTION_STRING"}},
		{"device connection string", nil, []string{"-fleet", good, "-hub", "HostName=h;DeviceId=d;SharedAccessKey=c2VjcmV0"}, []string{"device's connection string"}},
		{"bad CA file", []string{"IOTHUB_CONNECTION_STRING=" + hub}, []string{"-fleet", good, "-ca", good}, []string{"no PEM certificate"}},
		{"stray argument", nil, []string{"extra"}, []string{"takes no arguments"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr syncBuffer
			code := runSimulate(context.Background(), c.env, &stdout, &stderr, c.args...)
			if code != exitBadInput {
				t.Errorf("got exit code %d, want %d; stderr:\n%s", code, exitBadInput, stderr.String())
			}
			for _, want := range c.stderr {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
				}
			}
			if strings.Contains(stderr.String(), "c2VjcmV0") {
				t.Errorf("stderr shows a key:\n%s", stderr.String())
			}
		})
	}
}

func TestSimulate_RunsFleet(t *testing.T) {
	hub, err := emulator.Start(context.Background(), emulator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	fleet := writeFile(t, "fleet.hcl", `
group "press" {
  count = 3
  id    = "press-%d"
  tags  = { site = "plant-7" }
  offline {
    fraction = 0.34
  }
}
`)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	env := []string{"IOTHUB_CONNECTION_STRING=" + hub.ServiceConnectionString()}
	done := make(chan int)
	go func() {
		done <- runSimulate(ctx, env, &stdout, &stderr, "-fleet", fleet, "-ca", hub.CAFile(), "-gateway", hub.MQTTAddr(), "-reports")
	}()
	deadline := time.After(30 * time.Second)
	for !strings.Contains(stderr.String(), "simulating") {
		select {
		case code := <-done:
			t.Fatalf("simulate ended early with %d:\n%s", code, stderr.String())
		case <-deadline:
			t.Fatalf("simulate did not start:\n%s", stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	if got, want := hub.DeviceIDs(), []string{"press-1", "press-2", "press-3"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("got registered devices %v, want %v", got, want)
	}
	cancel()
	if code := <-done; code != exitOK {
		t.Errorf("got exit code %d after an interrupt, want 0:\n%s", code, stderr.String())
	}
	for _, want := range []string{"simulating 3 devices", "2 connected, 1 offline, 3 newly registered", "stopped: devices=3"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %d report lines, want 3 (one initial report per device):\n%s", len(lines), stdout.String())
	}
	var rep struct {
		Device   string         `json:"device"`
		Reported map[string]any `json:"reported"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &rep); err != nil || rep.Reported["firmwareStatus"] != "standBy" {
		t.Errorf("got report line %q (%v), want a JSON line with firmwareStatus standBy", lines[0], err)
	}
	if strings.Contains(stderr.String()+stdout.String(), "SharedAccessKey=") {
		t.Errorf("output shows a connection string")
	}
}

func TestStartEmulatorFleet(t *testing.T) {
	hub, err := emulator.Start(context.Background(), emulator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	var stdout, stderr syncBuffer
	a := &app{stdout: &stdout, stderr: &stderr, logger: slog.New(slog.DiscardHandler)}

	bad := writeFile(t, "bad.hcl", "group \"d\" {\n  count = 1\n  slow { delay = \"x\" }\n}\n")
	if _, err := a.startEmulatorFleet(context.Background(), hub, bad); err == nil || !strings.Contains(stderr.String(), bad+":3:18: error: Invalid duration") {
		t.Errorf("bad fleet: got %v, stderr %q", err, stderr.String())
	}

	ctx, cancel := context.WithCancel(context.Background())
	wait, err := a.startEmulatorFleet(ctx, hub, writeFile(t, "fleet.hcl", "group \"d\" {\n  count = 2\n}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := hub.Stats().ConnectedDevices; got != 2 {
		t.Errorf("got %d devices connected, want 2", got)
	}
	cancel()
	if err := wait(); err != nil {
		t.Errorf("wait: %v", err)
	}
}
