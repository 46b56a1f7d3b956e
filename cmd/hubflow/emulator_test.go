package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hubflow/hubflow/emulator"
	"github.com/hubflow/hubflow/iothub"
)

// emulatorOutput is a bytes.Buffer safe to write from the command's goroutine
// while the test reads it.
type emulatorOutput struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *emulatorOutput) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *emulatorOutput) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newEmulatorTestApp() (*app, *emulatorOutput, *emulatorOutput) {
	out, errOut := &emulatorOutput{}, &emulatorOutput{}
	return &app{stdout: out, stderr: errOut, logger: slog.New(slog.DiscardHandler)}, out, errOut
}

// runEmulator runs the command until its banner is printed, then
// interrupts it and returns what it printed.
func runEmulator(t *testing.T, deps emulatorDeps, args ...string) string {
	t.Helper()
	a, out, errOut := newEmulatorTestApp()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.emulatorCommandWith(deps).ParseAndRun(ctx, args) }()
	deadline := time.After(30 * time.Second)
	for !strings.Contains(out.String(), "Service connection string") || !strings.HasSuffix(out.String(), "\n") {
		select {
		case err := <-done:
			t.Fatalf("command ended early: %v\nstderr: %s", err, errOut)
		case <-deadline:
			t.Fatalf("no banner; stdout: %s", out)
		case <-time.After(10 * time.Millisecond):
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("got %v after interrupt, want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("command did not stop after interrupt")
	}
	return out.String()
}

func TestEmulatorCommand_PrintsConnectionStrings(t *testing.T) {
	dir := t.TempDir()
	h, err := emulator.Start(context.Background(), emulator.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.CreateDevice("pump-1"); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}

	out := runEmulator(t, emulatorDeps{}, "-https", "127.0.0.1:0", "-mqtt", "127.0.0.1:0", "-data", dir, "-tier", "s1")
	var service, device string
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "HostName=") && strings.Contains(line, "SharedAccessKeyName=iothubowner"):
			service = line
		case strings.HasPrefix(line, "pump-1 "):
			device = strings.TrimSpace(strings.TrimPrefix(line, "pump-1"))
		}
	}
	if _, err := iothub.ParseConnectionString(service); err != nil {
		t.Fatalf("service connection string %q: %v\n%s", service, err, out)
	}
	cs, err := iothub.ParseConnectionString(device)
	if err != nil {
		t.Fatalf("device connection string %q: %v\n%s", device, err, out)
	}
	if cs.DeviceID != "pump-1" || cs.GatewayHostName == "" {
		t.Fatalf("got %s, want pump-1 with a GatewayHostName", cs.Redacted())
	}
	if !strings.Contains(out, dir+"/ca.pem") {
		t.Fatalf("banner does not name the CA file in %s:\n%s", dir, out)
	}
}

func TestEmulatorCommand_Fleet(t *testing.T) {
	var gotFile string
	var gotHub *emulator.Hub
	stopped := make(chan struct{})
	deps := emulatorDeps{startFleet: func(ctx context.Context, hub *emulator.Hub, file string) (func() error, error) {
		gotFile, gotHub = file, hub
		if _, err := hub.CreateDevice("sim-1"); err != nil {
			return nil, err
		}
		go func() { <-ctx.Done(); close(stopped) }()
		return func() error { <-stopped; return ctx.Err() }, nil
	}}
	out := runEmulator(t, deps, "-https", "127.0.0.1:0", "-mqtt", "127.0.0.1:0", "-fleet", "fleet.hcl")
	if gotFile != "fleet.hcl" || gotHub == nil {
		t.Fatalf("fleet starter got file %q hub %v", gotFile, gotHub)
	}
	if !strings.Contains(out, "sim-1 ") {
		t.Fatalf("banner lacks the fleet's device:\n%s", out)
	}
}

func TestEmulatorCommand_Errors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := ln.Addr().String()
	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"unknown tier", []string{"-tier", "P1"}, exitBadInput, "-tier"},
		{"bad units", []string{"-tier", "F1", "-units", "2"}, exitBadInput, "-units"},
		{"bad fraction", []string{"-drop-methods", "1.5"}, exitBadInput, "-drop-methods"},
		{"remote address", []string{"-https", "0.0.0.0:0"}, exitBadInput, "-allow-remote"},
		{"not host:port", []string{"-mqtt", "8883"}, exitBadInput, "host:port"},
		{"fleet without simulator", []string{"-https", "127.0.0.1:0", "-mqtt", "127.0.0.1:0", "-fleet", "f.hcl"}, exitBadInput, "simulator"},
		{"argument", []string{"extra"}, exitBadInput, "no arguments"},
		{"port in use", []string{"-https", busy, "-mqtt", "127.0.0.1:0"}, exitHubError, "already in use"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, _, _ := newEmulatorTestApp()
			err := a.emulatorCommandWith(emulatorDeps{}).ParseAndRun(context.Background(), tt.args)
			if err == nil {
				t.Fatal("got no error")
			}
			if got := exitCodeOf(err); got != tt.code {
				t.Fatalf("got exit code %d (%v), want %d", got, err, tt.code)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("got %q, want it to mention %q", err, tt.msg)
			}
		})
	}
	a, _, _ := newEmulatorTestApp()
	err = a.emulatorCommandWith(emulatorDeps{}).ParseAndRun(context.Background(), []string{"-https", busy, "-mqtt", "127.0.0.1:0"})
	var le *emulator.ListenError
	if !errors.As(err, &le) || !strings.Contains(err.Error(), "(flag -https)") {
		t.Fatalf("got %v, want a ListenError naming -https", err)
	}
}

func TestEmulatorCommand_Flags(t *testing.T) {
	a, _, _ := newEmulatorTestApp()
	cmd := a.emulatorCommand()
	if cmd.Name != "emulator" {
		t.Fatalf("got name %q, want emulator", cmd.Name)
	}
	for _, name := range []string{"https", "mqtt", "data", "fleet", "tier", "units", "allow-remote", "method-latency", "drop-methods"} {
		if cmd.FlagSet.Lookup(name) == nil {
			t.Errorf("flag -%s is missing", name)
		}
	}
	if got := cmd.FlagSet.Lookup("https").DefValue; got != "127.0.0.1:8443" {
		t.Errorf("got -https default %q, want 127.0.0.1:8443", got)
	}
	if got := cmd.FlagSet.Lookup("mqtt").DefValue; got != "127.0.0.1:8883" {
		t.Errorf("got -mqtt default %q, want 127.0.0.1:8883", got)
	}
}
