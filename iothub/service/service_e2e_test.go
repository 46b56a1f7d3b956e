package service_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hubflow/hubflow/emulator"
	"github.com/hubflow/hubflow/iothub"
	"github.com/hubflow/hubflow/iothub/service"
)

// startEmulator starts a hub on loopback and returns it with a client for
// policy (the owner policy when "").
func startEmulator(t testing.TB, policy string) (*emulator.Hub, *service.Client) {
	t.Helper()
	hub, err := emulator.Start(context.Background(), emulator.Options{})
	if err != nil {
		t.Fatalf("start emulator: %v", err)
	}
	t.Cleanup(func() { hub.Close() })
	return hub, emulatorClient(t, hub, policy, service.Config{})
}

func emulatorClient(t testing.TB, hub *emulator.Hub, policy string, cfg service.Config) *service.Client {
	t.Helper()
	s := hub.ServiceConnectionString()
	if policy != "" {
		var err error
		if s, err = hub.PolicyConnectionString(policy); err != nil {
			t.Fatal(err)
		}
	}
	cs, err := iothub.ParseConnectionString(s)
	if err != nil {
		t.Fatalf("parse emulator connection string: %v", err)
	}
	if cfg.ConnectionString == nil {
		cfg.ConnectionString = cs
	}
	cfg.RootCAs = hub.CAPool()
	c, err := service.New(cfg)
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

func wantKind(t testing.TB, what string, err error, kind iothub.Kind, code int) {
	t.Helper()
	var he *iothub.Error
	if !errors.As(err, &he) {
		t.Fatalf("%s: got %v, want an *iothub.Error of kind %v", what, err, kind)
	}
	if he.Kind() != kind || (code != 0 && he.Code != code) {
		t.Fatalf("%s: got kind %v code %d (%v), want kind %v code %d", what, he.Kind(), he.Code, err, kind, code)
	}
}

func TestE2E_Devices(t *testing.T) {
	_, c := startEmulator(t, "")
	ctx := context.Background()
	for _, id := range []string{"e2e-1", "pump#7?x=1;a(b)'c"} {
		t.Run(id, func(t *testing.T) {
			d, err := c.CreateDevice(ctx, iothub.Device{DeviceID: id})
			if err != nil {
				t.Fatalf("create: %v", err)
			}
			if d.DeviceID != id || d.Authentication == nil || d.Authentication.SymmetricKey == nil ||
				d.Authentication.SymmetricKey.PrimaryKey == "" || d.Authentication.SymmetricKey.SecondaryKey == "" {
				t.Fatalf("created: got %+v, want %q with generated keys", d, id)
			}
			if _, err := base64.StdEncoding.DecodeString(d.Authentication.SymmetricKey.PrimaryKey); err != nil {
				t.Errorf("primary key: got %q, want base64", d.Authentication.SymmetricKey.PrimaryKey)
			}
			_, err = c.CreateDevice(ctx, iothub.Device{DeviceID: id})
			wantKind(t, "create again", err, iothub.KindConflict, iothub.CodeDeviceAlreadyExists)

			got, err := c.GetDevice(ctx, id)
			if err != nil {
				t.Fatalf("get: %v", err)
			}
			if got.DeviceID != id || got.ETag == "" || got.Authentication.SymmetricKey.PrimaryKey != d.Authentication.SymmetricKey.PrimaryKey {
				t.Errorf("get: got %+v, want %q with the created keys and an etag", got, id)
			}

			list, err := c.ListDevices(ctx, 0)
			if err != nil {
				t.Fatalf("list: %v", err)
			}
			if !slices.ContainsFunc(list, func(x iothub.Device) bool { return x.DeviceID == id }) {
				t.Errorf("list: got %d devices without %q, want it listed", len(list), id)
			}

			err = c.DeleteDevice(ctx, id, "c3RhbGU=")
			wantKind(t, "delete with a stale etag", err, iothub.KindPreconditionFailed, iothub.CodePreconditionFailed)
			if err := c.DeleteDevice(ctx, id, got.ETag); err != nil {
				t.Fatalf("delete: %v", err)
			}
			_, err = c.GetDevice(ctx, id)
			wantKind(t, "get deleted", err, iothub.KindDeviceNotFound, iothub.CodeDeviceNotFound)
			err = c.DeleteDevice(ctx, id, "")
			wantKind(t, "delete deleted", err, iothub.KindDeviceNotFound, iothub.CodeDeviceNotFound)
		})
	}

	t.Run("list top", func(t *testing.T) {
		for i := range 5 {
			if _, err := c.CreateDevice(ctx, iothub.Device{DeviceID: fmt.Sprintf("top-%d", i)}); err != nil {
				t.Fatal(err)
			}
		}
		list, err := c.ListDevices(ctx, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 3 {
			t.Errorf("list top 3: got %d devices, want 3", len(list))
		}
	})
}

func TestE2E_Twin(t *testing.T) {
	hub, c := startEmulator(t, "")
	ctx := context.Background()
	const id = "twin-1"
	if _, err := hub.CreateDevice(id); err != nil {
		t.Fatal(err)
	}
	tw, err := c.GetTwin(ctx, id)
	if err != nil {
		t.Fatalf("get twin: %v", err)
	}
	if tw.DeviceID != id || tw.ETag == "" {
		t.Fatalf("twin: got %+v, want %q with an etag", tw, id)
	}

	patch := iothub.TwinPatch{
		Tags:       map[string]any{"site": "north"},
		Properties: &iothub.TwinPatchProperties{Desired: map[string]any{"fw": map[string]any{"version": "2.1"}}},
	}
	upd, err := c.UpdateTwin(ctx, id, patch, tw.ETag)
	if err != nil {
		t.Fatalf("update with current etag: %v", err)
	}
	if upd.ETag == tw.ETag {
		t.Errorf("etag after update: got %q unchanged, want a new one", upd.ETag)
	}
	if upd.Tags["site"] != "north" {
		t.Errorf("tags: got %v, want site=north", upd.Tags)
	}
	fw, _ := upd.Properties.Desired["fw"].(map[string]any)
	if fw["version"] != "2.1" || iothub.SectionVersion(upd.Properties.Desired) < 2 {
		t.Errorf("desired: got %v, want fw.version 2.1 at $version ≥ 2", upd.Properties.Desired)
	}

	_, err = c.UpdateTwin(ctx, id, iothub.TwinPatch{Tags: map[string]any{"site": "south"}}, tw.ETag)
	wantKind(t, "update with a stale etag", err, iothub.KindPreconditionFailed, iothub.CodePreconditionFailed)

	last, err := c.UpdateTwin(ctx, id, iothub.TwinPatch{Tags: map[string]any{"site": "south"}}, "")
	if err != nil {
		t.Fatalf("unconditional update: %v", err)
	}
	if last.Tags["site"] != "south" {
		t.Errorf("tags after unconditional update: got %v, want site=south", last.Tags)
	}
	again, err := c.GetTwin(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if again.ETag != last.ETag || again.Tags["site"] != "south" {
		t.Errorf("twin read back: got etag %q tags %v, want %q site=south", again.ETag, again.Tags, last.ETag)
	}

	_, err = c.GetTwin(ctx, "no-such-device")
	wantKind(t, "get unknown twin", err, iothub.KindDeviceNotFound, iothub.CodeDeviceNotFound)
}

func TestE2E_Query(t *testing.T) {
	hub, c := startEmulator(t, "")
	ctx := context.Background()
	var want []string
	for i := range 7 {
		id := fmt.Sprintf("q-%d", i)
		want = append(want, id)
		if _, err := hub.CreateDevice(id); err != nil {
			t.Fatal(err)
		}
		if _, err := c.UpdateTwin(ctx, id, iothub.TwinPatch{Tags: map[string]any{"ring": "q"}}, ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := hub.CreateDevice("other"); err != nil {
		t.Fatal(err)
	}

	it := c.Query(ctx, "SELECT * FROM devices WHERE tags.ring = 'q'", 3)
	var got []string
	pages := 0
	for page, err := range it.Pages() {
		if err != nil {
			t.Fatalf("page %d: %v", pages, err)
		}
		pages++
		if len(page) > 3 {
			t.Errorf("page %d: got %d items, want at most 3", pages, len(page))
		}
	}
	if pages < 3 {
		t.Errorf("pages: got %d, want at least 3 for 7 twins at 3 a page", pages)
	}
	for tw, err := range c.QueryTwins(ctx, "SELECT * FROM devices WHERE tags.ring = 'q'", 3) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, tw.DeviceID)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("twins: got %v, want %v", got, want)
	}

	// A projection is raw items, not twins.
	var n int
	for item, err := range c.Query(ctx, "SELECT COUNT() AS total FROM devices", 0).All() {
		if err != nil {
			t.Fatal(err)
		}
		n++
		if string(item) != `{"total":8}` {
			t.Errorf("count: got %s, want {\"total\":8}", item)
		}
	}
	if n != 1 {
		t.Errorf("count rows: got %d, want 1", n)
	}

	_, err := c.Query(ctx, "SELECT * FROM devices WHERE", 0).Next(ctx)
	wantKind(t, "bad query", err, iothub.KindBadRequest, 0)
}

func TestE2E_InvokeMethod_NotReachable(t *testing.T) {
	hub, c := startEmulator(t, "")
	ctx := context.Background()
	if _, err := hub.CreateDevice("offline-1"); err != nil {
		t.Fatal(err)
	}
	_, err := c.InvokeMethod(ctx, "offline-1", service.MethodCall{Name: "reboot", Payload: []byte(`{"delay":1}`)})
	wantKind(t, "invoke offline", err, iothub.KindDeviceNotOnline, iothub.CodeDeviceNotOnline)
	if !iothub.IsRetryable(err) {
		t.Errorf("offline: got not retryable, want retryable")
	}
	_, err = c.InvokeMethod(ctx, "nobody", service.MethodCall{Name: "reboot"})
	wantKind(t, "invoke unknown", err, iothub.KindDeviceNotFound, iothub.CodeDeviceNotFound)
}

func TestE2E_Faults(t *testing.T) {
	hub, c := startEmulator(t, "")
	ctx := context.Background()
	if _, err := hub.CreateDevice("f-1"); err != nil {
		t.Fatal(err)
	}

	hub.Faults().Throttle(time.Minute)
	_, err := c.GetTwin(ctx, "f-1")
	wantKind(t, "throttled", err, iothub.KindThrottled, iothub.CodeThrottlingException)
	if ra := iothub.RetryAfterOf(err); ra <= 0 || ra > time.Minute {
		t.Errorf("retry after: got %s, want between 0 and 1m", ra)
	}
	_, err = c.InvokeMethod(ctx, "f-1", service.MethodCall{Name: "m"})
	wantKind(t, "throttled invoke", err, iothub.KindThrottled, 0)
	hub.Faults().ClearAll()

	for _, status := range []int{500, 503} {
		hub.Faults().FailREST(status, time.Minute)
		_, err = c.GetTwin(ctx, "f-1")
		wantKind(t, fmt.Sprintf("failing with %d", status), err, iothub.KindTransient, 0)
		if !iothub.IsRetryable(err) {
			t.Errorf("%d: got not retryable, want retryable", status)
		}
		hub.Faults().ClearAll()
	}
	if _, err := c.GetTwin(ctx, "f-1"); err != nil {
		t.Errorf("after clearing faults: got %v, want nil", err)
	}
}

func TestE2E_Unauthorized(t *testing.T) {
	hub, _ := startEmulator(t, "")
	ctx := context.Background()
	if _, err := hub.CreateDevice("u-1"); err != nil {
		t.Fatal(err)
	}

	// The service policy may read twins but not write the registry.
	svc := emulatorClient(t, hub, emulator.PolicyService, service.Config{})
	if _, err := svc.GetTwin(ctx, "u-1"); err != nil {
		t.Errorf("service policy get twin: got %v, want nil", err)
	}
	_, err := svc.CreateDevice(ctx, iothub.Device{DeviceID: "u-2"})
	wantKind(t, "service policy create device", err, iothub.KindUnauthorized, 0)

	cs, err := iothub.ParseConnectionString(hub.ServiceConnectionString())
	if err != nil {
		t.Fatal(err)
	}
	wrongKey := base64.StdEncoding.EncodeToString([]byte("not the policy key at all"))
	bad := *cs
	bad.SharedAccessKey = wrongKey
	_, err = emulatorClient(t, hub, "", service.Config{ConnectionString: &bad}).GetTwin(ctx, "u-1")
	wantKind(t, "wrong key", err, iothub.KindUnauthorized, iothub.CodeIotHubUnauthorizedAccess)
	if s := err.Error(); slices.ContainsFunc([]string{wrongKey, cs.SharedAccessKey}, func(k string) bool { return strings.Contains(s, k) }) {
		t.Errorf("error %q contains a key", s)
	}

	// A clock two hours behind signs tokens that have already expired.
	past := func() time.Time { return time.Now().Add(-2 * time.Hour) }
	_, err = emulatorClient(t, hub, "", service.Config{Now: past}).GetTwin(ctx, "u-1")
	wantKind(t, "expired token", err, iothub.KindUnauthorized, 0)
}
