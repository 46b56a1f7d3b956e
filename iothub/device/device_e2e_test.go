package device_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/hubflow/hubflow/emulator"
	"github.com/hubflow/hubflow/iothub"
	"github.com/hubflow/hubflow/iothub/device"
	"github.com/hubflow/hubflow/iothub/service"
)

// e2e is an emulator with a service client and one registered device.
type e2e struct {
	hub *emulator.Hub
	svc *service.Client
	id  string
}

func startE2E(t testing.TB) *e2e {
	t.Helper()
	ctx := testCtx(t)
	hub, err := emulator.Start(ctx, emulator.Options{})
	if err != nil {
		t.Fatalf("start emulator: %v", err)
	}
	t.Cleanup(func() { _ = hub.Close() })
	cs, err := iothub.ParseConnectionString(hub.ServiceConnectionString())
	if err != nil {
		t.Fatalf("parse service connection string: %v", err)
	}
	svc, err := service.New(service.Config{ConnectionString: cs, RootCAs: hub.CAPool()})
	if err != nil {
		t.Fatalf("service client: %v", err)
	}
	t.Cleanup(svc.Close)
	if _, err := hub.CreateDevice("e2e-dev"); err != nil {
		t.Fatalf("create device: %v", err)
	}
	return &e2e{hub: hub, svc: svc, id: "e2e-dev"}
}

// device returns a client for the registered device (not yet connected)
// and its connection events.
func (e *e2e) device(t testing.TB, mod func(*device.Config)) (*device.Client, chan connEvent) {
	t.Helper()
	s, err := e.hub.DeviceConnectionString(e.id)
	if err != nil {
		t.Fatalf("device connection string: %v", err)
	}
	cs, err := iothub.ParseConnectionString(s)
	if err != nil {
		t.Fatalf("parse device connection string: %v", err)
	}
	cfg := device.Config{
		ConnectionString: cs,
		RootCAs:          e.hub.CAPool(),
		ReconnectMin:     10 * time.Millisecond,
		ReconnectMax:     200 * time.Millisecond,
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := device.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	events := make(chan connEvent, 100)
	c.OnConnectionChange(func(connected bool, err error) { events <- connEvent{connected, err} })
	return c, events
}

func (e *e2e) invoke(t testing.TB, name string, payload string) *iothub.MethodResponse {
	t.Helper()
	resp, err := e.svc.InvokeMethod(testCtx(t), e.id, service.MethodCall{
		Name: name, Payload: json.RawMessage(payload), ResponseTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatalf("InvokeMethod(%s): %v", name, err)
	}
	return resp
}

func (e *e2e) patchDesired(t testing.TB, desired map[string]any) *iothub.Twin {
	t.Helper()
	tw, err := e.svc.UpdateTwin(testCtx(t), e.id, iothub.TwinPatch{Properties: &iothub.TwinPatchProperties{Desired: desired}}, "")
	if err != nil {
		t.Fatalf("UpdateTwin: %v", err)
	}
	return tw
}

func jsonEqual(t testing.TB, got []byte, want string) bool {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		return false
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad want JSON %s", want)
	}
	return reflect.DeepEqual(g, w)
}

func TestE2E_InvokeMethod(t *testing.T) {
	e := startE2E(t)
	c, _ := e.device(t, nil)
	seen := make(chan json.RawMessage, 1)
	c.Handle("reboot", func(_ context.Context, p json.RawMessage) (int, []byte) {
		seen <- p
		return 200, []byte(`{"Response":"Reboot started"}`)
	})
	connect(t, c)

	tests := []struct {
		name, method, payload string
		wantStatus            int
		wantPayload           string
	}{
		{"handled", "reboot", `{"delay":5}`, 200, `{"Response":"Reboot started"}`},
		{"unknown method", "selfDestruct", `null`, 404, `{"message":"Unknown method: selfDestruct"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := e.invoke(t, tt.method, tt.payload)
			if resp.Status != tt.wantStatus || !jsonEqual(t, resp.Payload, tt.wantPayload) {
				t.Errorf("answer: got %d %s, want %d %s", resp.Status, resp.Payload, tt.wantStatus, tt.wantPayload)
			}
		})
	}
	if got := <-seen; !jsonEqual(t, got, `{"delay":5}`) {
		t.Errorf("payload seen by the handler: got %s, want {\"delay\":5}", got)
	}
}

func TestE2E_TwinRoundTrips(t *testing.T) {
	e := startE2E(t)
	c, _ := e.device(t, nil)
	connect(t, c)
	ctx := testCtx(t)

	v, err := c.UpdateReported(ctx, map[string]any{"firmwareStatus": "standBy", "fw": map[string]any{"version": "1.0"}})
	if err != nil {
		t.Fatalf("UpdateReported: %v", err)
	}
	tw, err := e.svc.GetTwin(ctx, e.id)
	if err != nil {
		t.Fatalf("service GetTwin: %v", err)
	}
	if got := tw.Properties.Reported["firmwareStatus"]; got != "standBy" {
		t.Errorf("reported firmwareStatus seen by the service: got %v, want standBy", got)
	}
	if got := iothub.SectionVersion(tw.Properties.Reported); got != v {
		t.Errorf("reported $version: service sees %d, device was told %d", got, v)
	}
	v2, err := c.UpdateReported(ctx, map[string]any{"fw": nil})
	if err != nil {
		t.Fatalf("second UpdateReported: %v", err)
	}
	if v2 <= v {
		t.Errorf("reported version after a second patch: got %d, want more than %d", v2, v)
	}

	set := e.patchDesired(t, map[string]any{"interval": 15})
	desired, reported, err := c.GetTwin(ctx)
	if err != nil {
		t.Fatalf("device GetTwin: %v", err)
	}
	if desired["interval"] != float64(15) {
		t.Errorf("desired interval seen by the device: got %v, want 15", desired["interval"])
	}
	if got, want := iothub.SectionVersion(desired), iothub.SectionVersion(set.Properties.Desired); got != want {
		t.Errorf("desired $version: device sees %d, service %d", got, want)
	}
	if _, ok := reported["fw"]; ok {
		t.Errorf("reported fw still present after a null patch: %v", reported)
	}
	if reported["firmwareStatus"] != "standBy" {
		t.Errorf("reported firmwareStatus seen by the device: got %v, want standBy", reported["firmwareStatus"])
	}
}

func TestE2E_DesiredUpdates(t *testing.T) {
	e := startE2E(t)
	c, _ := e.device(t, nil)
	type note struct {
		patch   map[string]any
		version int64
	}
	notes := make(chan note, 10)
	c.OnDesired(func(p map[string]any, v int64) { notes <- note{p, v} })
	connect(t, c)
	if _, _, err := c.GetTwin(testCtx(t)); err != nil {
		t.Fatalf("GetTwin: %v", err)
	}
	next := func(what string) note {
		t.Helper()
		select {
		case n := <-notes:
			return n
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no desired notification", what)
			return note{}
		}
	}

	tw := e.patchDesired(t, map[string]any{"maintenanceWindow": map[string]any{"start": "02:00"}})
	n := next("live patch")
	if want := iothub.SectionVersion(tw.Properties.Desired); n.version != want {
		t.Errorf("version: got %d, want %d", n.version, want)
	}
	if want := map[string]any{"maintenanceWindow": map[string]any{"start": "02:00"}}; !reflect.DeepEqual(n.patch, want) {
		t.Errorf("patch: got %v, want %v", n.patch, want)
	}

	// A change made while the device is away arrives after it reconnects,
	// as the whole desired section.
	if err := c.Disconnect(testCtx(t)); err != nil {
		t.Fatalf("Disconnect: %v", err)
	}
	tw = e.patchDesired(t, map[string]any{"mode": "eco"})
	connect(t, c)
	n = next("after reconnect")
	if want := iothub.SectionVersion(tw.Properties.Desired); n.version != want {
		t.Errorf("resynchronised version: got %d, want %d", n.version, want)
	}
	if n.patch["mode"] != "eco" || n.patch["maintenanceWindow"] == nil {
		t.Errorf("resynchronised patch: got %v, want the whole desired section", n.patch)
	}
}

func TestE2E_ReconnectAfterDrop(t *testing.T) {
	e := startE2E(t)
	c, events := e.device(t, nil)
	c.Handle("ping", func(context.Context, json.RawMessage) (int, []byte) { return 200, []byte(`"pong"`) })
	connect(t, c)
	if ev := nextEvent(t, events); !ev.connected {
		t.Fatalf("first event: got %+v, want connected", ev)
	}
	if n := e.hub.Faults().DisconnectAll(); n != 1 {
		t.Fatalf("DisconnectAll: got %d connections, want 1", n)
	}
	if ev := nextEvent(t, events); ev.connected || ev.err == nil {
		t.Errorf("event after the drop: got %+v, want disconnected with an error", ev)
	}
	if ev := nextEvent(t, events); !ev.connected {
		t.Fatalf("event after reconnect: got %+v, want connected", ev)
	}
	if resp := e.invoke(t, "ping", `null`); resp.Status != 200 || string(resp.Payload) != `"pong"` {
		t.Errorf("method after reconnect: got %d %s, want 200 \"pong\"", resp.Status, resp.Payload)
	}
	if _, err := c.UpdateReported(testCtx(t), map[string]any{"alive": true}); err != nil {
		t.Errorf("UpdateReported after reconnect: %v", err)
	}
}

func TestE2E_TokenRenewal(t *testing.T) {
	e := startE2E(t)
	logs := &recordingHandler{}
	c, events := e.device(t, func(cfg *device.Config) {
		cfg.TokenTTL = 2 * time.Second
		cfg.Logger = slog.New(logs)
	})
	c.Handle("ping", func(context.Context, json.RawMessage) (int, []byte) { return 200, nil })
	connect(t, c)
	if ev := nextEvent(t, events); !ev.connected {
		t.Fatalf("first event: got %+v, want connected", ev)
	}
	// Two renewals (at 1.6 s and 3.2 s) take the device past the first
	// token's expiry, after which the hub would have closed the connection.
	logs.waitFor(t, "connected", 3)
	if resp := e.invoke(t, "ping", `null`); resp.Status != 200 {
		t.Errorf("method after renewals: got status %d, want 200", resp.Status)
	}
	select {
	case ev := <-events:
		t.Errorf("renewal showed as a connection change: %+v", ev)
	default:
	}
}

// recordingHandler counts log messages, for waiting on the client's own
// account of its connections.
type recordingHandler struct {
	mu      sync.Mutex
	changed chan struct{}
	counts  map[string]int
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler            { return h }

func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.counts == nil {
		h.counts = map[string]int{}
	}
	h.counts[r.Message]++
	if h.changed != nil {
		close(h.changed)
		h.changed = nil
	}
	return nil
}

func (h *recordingHandler) waitFor(t testing.TB, msg string, n int) {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		h.mu.Lock()
		if h.counts[msg] >= n {
			h.mu.Unlock()
			return
		}
		if h.changed == nil {
			h.changed = make(chan struct{})
		}
		ch := h.changed
		h.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("timed out waiting for %d %q log records", n, msg)
		}
	}
}
