package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/hubflow/hubflow/emulator"
	"github.com/hubflow/hubflow/iothub"
	"github.com/hubflow/hubflow/iothub/device"
)

// TestRun_CreatesDevice registers a device on the emulator and checks that
// the printed connection string lets a device connect.
func TestRun_CreatesDevice(t *testing.T) {
	hub, err := emulator.Start(context.Background(), emulator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	env := []string{"IOTHUB_CONNECTION_STRING=" + hub.ServiceConnectionString()}
	args := []string{"-ca", hub.CAFile(), "-gateway", hub.MQTTAddr()}

	var printed []string
	for i := range 2 {
		var out, errb bytes.Buffer
		if code := run(context.Background(), args, env, &out, &errb); code != 0 {
			t.Fatalf("run %d: got exit code %d, want 0; stderr: %s", i+1, code, errb.String())
		}
		printed = append(printed, strings.TrimSpace(out.String()))
		if i == 1 && !strings.Contains(errb.String(), "already exists") {
			t.Errorf("second run does not say the device existed: %s", errb.String())
		}
	}
	if printed[0] != printed[1] {
		t.Errorf("the second run printed another connection string")
	}
	if got := hub.DeviceIDs(); len(got) != 1 || got[0] != "myDeviceId" {
		t.Errorf("got devices %v, want [myDeviceId]", got)
	}
	cs, err := iothub.ParseConnectionString(printed[0])
	if err != nil {
		t.Fatal(err)
	}
	c, err := device.New(device.Config{ConnectionString: cs, RootCAs: hub.CAPool()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Connect(context.Background()); err != nil {
		t.Errorf("connect with the printed string: %v", err)
	}
}

func TestRun_BadConfig(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), nil, []string{"IOTHUB_CONNECTION_STRING=HostName=h;DeviceId=d;SharedAccessKey=c2VjcmV0"}, &out, &errb); code != 2 {
		t.Errorf("got exit code %d, want 2", code)
	}
	if !strings.Contains(errb.String(), "service policy") || strings.Contains(errb.String(), "c2VjcmV0") {
		t.Errorf("got stderr %q, want a hint and no key", errb.String())
	}
}
