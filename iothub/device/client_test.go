package device_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/url"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hubflow/hubflow/iothub"
	"github.com/hubflow/hubflow/iothub/device"
)

// connEvent is one OnConnectionChange call.
type connEvent struct {
	connected bool
	err       error
}

// newClient makes a client for device id against b, with events recorded.
func newClient(t testing.TB, b *testBroker, id string, mod func(*device.Config)) (*device.Client, chan connEvent) {
	t.Helper()
	cfg := device.Config{
		ConnectionString: b.connString(t, id, b.hub.keys[id]),
		RootCAs:          b.pool,
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
	events := make(chan connEvent, 100)
	c.OnConnectionChange(func(connected bool, err error) { events <- connEvent{connected, err} })
	t.Cleanup(func() { _ = c.Close() })
	return c, events
}

func connect(t testing.TB, c *device.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		t.Fatalf("Connect: %v", err)
	}
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func nextEvent(t testing.TB, events chan connEvent) connEvent {
	t.Helper()
	select {
	case e := <-events:
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for a connection event")
		return connEvent{}
	}
}

func TestClient_ConnectGolden(t *testing.T) {
	key := testKey(1)
	b := newTestBroker(t, map[string]string{"pump-7": key})
	signedAt := time.Unix(time.Now().Unix(), 0) // whole second: se is predictable
	c, events := newClient(t, b, "pump-7", func(cfg *device.Config) {
		cfg.Now = func() time.Time { return signedAt }
		cfg.TokenTTL = 10 * time.Minute
	})
	connect(t, c)
	if !c.IsConnected() {
		t.Fatalf("IsConnected: got false, want true")
	}
	if e := nextEvent(t, events); !e.connected || e.err != nil {
		t.Errorf("connection event: got %+v, want connected with no error", e)
	}

	cons := b.connects()
	if len(cons) != 1 {
		t.Fatalf("CONNECTs: got %d, want 1", len(cons))
	}
	got := cons[0]
	if want := "testhub.azure-devices.net/pump-7/?api-version=2021-04-12"; got.Username != want {
		t.Errorf("username: got %q, want %q", got.Username, want)
	}
	if got.ClientID != "pump-7" {
		t.Errorf("client id: got %q, want pump-7", got.ClientID)
	}
	if got.Clean {
		t.Errorf("clean session: got true, want false")
	}
	if !got.Accepted {
		t.Errorf("the broker refused the password")
	}
	sas, err := iothub.ParseSAS(got.Password)
	if err != nil {
		t.Fatalf("ParseSAS(password): %v", err)
	}
	if want := "testhub.azure-devices.net%2Fdevices%2Fpump-7"; sas.RawResource != want {
		t.Errorf("sr: got %q, want %q", sas.RawResource, want)
	}
	if sas.KeyName != "" {
		t.Errorf("skn: got %q, want none", sas.KeyName)
	}
	if err := sas.Verify(key, time.Now()); err != nil {
		t.Errorf("Verify with the device key: %v", err)
	}
	if want := signedAt.Add(10 * time.Minute); !sas.Expiry.Equal(want) {
		t.Errorf("se: got %v, want %v", sas.Expiry, want)
	}
	if !strings.HasPrefix(got.Password, "SharedAccessSignature sr=testhub.azure-devices.net%2Fdevices%2Fpump-7&sig=") {
		t.Errorf("password layout: got %q", got.Password)
	}

	subs := b.subscribes()
	var filters []string
	for _, s := range subs {
		filters = append(filters, s...)
	}
	slices.Sort(filters)
	want := []string{iothub.TopicMethodsFilter, iothub.TopicDesiredFilter, iothub.TopicTwinResponseFilter}
	slices.Sort(want)
	if !slices.Equal(filters, want) {
		t.Errorf("subscribed filters: got %q, want %q", filters, want)
	}
}

func TestClient_GetTwin(t *testing.T) {
	b := newTestBroker(t, map[string]string{"d1": testKey(2)})
	b.hub.mu.Lock()
	b.hub.desired = map[string]any{"fw": map[string]any{"version": "2.1"}, "$version": float64(7)}
	b.hub.reported = map[string]any{"fw": map[string]any{"version": "2.0"}}
	b.hub.reportedV = 3
	b.hub.mu.Unlock()
	c, _ := newClient(t, b, "d1", nil)
	connect(t, c)

	desired, reported, err := c.GetTwin(testCtx(t))
	if err != nil {
		t.Fatalf("GetTwin: %v", err)
	}
	wantD := map[string]any{"fw": map[string]any{"version": "2.1"}, "$version": float64(7)}
	wantR := map[string]any{"fw": map[string]any{"version": "2.0"}, "$version": float64(3)}
	if !reflect.DeepEqual(desired, wantD) {
		t.Errorf("desired: got %v, want %v", desired, wantD)
	}
	if !reflect.DeepEqual(reported, wantR) {
		t.Errorf("reported: got %v, want %v", reported, wantR)
	}
	ps := b.publishes()
	if len(ps) != 1 {
		t.Fatalf("publishes: got %d, want 1", len(ps))
	}
	if want := "$iothub/twin/GET/?$rid=1"; ps[0].Topic != want {
		t.Errorf("topic: got %q, want %q", ps[0].Topic, want)
	}
	if len(ps[0].Payload) != 0 {
		t.Errorf("GET body: got %q, want empty", ps[0].Payload)
	}

	// Request ids are unique per client: a second GET uses the next one.
	if _, _, err := c.GetTwin(testCtx(t)); err != nil {
		t.Fatalf("second GetTwin: %v", err)
	}
	if ps := b.publishes(); ps[1].Topic != "$iothub/twin/GET/?$rid=2" {
		t.Errorf("second topic: got %q, want $iothub/twin/GET/?$rid=2", ps[1].Topic)
	}
}

func TestClient_UpdateReported(t *testing.T) {
	b := newTestBroker(t, map[string]string{"d1": testKey(3)})
	c, _ := newClient(t, b, "d1", nil)
	connect(t, c)
	ctx := testCtx(t)

	v, err := c.UpdateReported(ctx, map[string]any{"firmwareStatus": "downloading"})
	if err != nil {
		t.Fatalf("UpdateReported: %v", err)
	}
	if v != 2 {
		t.Errorf("version: got %d, want 2", v)
	}
	v, err = c.UpdateReported(ctx, json.RawMessage(`{"rebootTime":"2026-11-22T12:12:10Z"}`))
	if err != nil {
		t.Fatalf("UpdateReported(raw): %v", err)
	}
	if v != 3 {
		t.Errorf("second version: got %d, want 3", v)
	}
	ps := b.publishes()
	if len(ps) != 2 {
		t.Fatalf("publishes: got %d, want 2", len(ps))
	}
	for i, want := range []publishRec{
		{"d1", "$iothub/twin/PATCH/properties/reported/?$rid=1", []byte(`{"firmwareStatus":"downloading"}`)},
		{"d1", "$iothub/twin/PATCH/properties/reported/?$rid=2", []byte(`{"rebootTime":"2026-11-22T12:12:10Z"}`)},
	} {
		if ps[i].Topic != want.Topic || !bytes.Equal(ps[i].Payload, want.Payload) {
			t.Errorf("publish %d: got %s %s, want %s %s", i, ps[i].Topic, ps[i].Payload, want.Topic, want.Payload)
		}
	}

	t.Run("refused locally", func(t *testing.T) {
		for _, patch := range []any{5, "text", []byte("not json"), json.RawMessage(`[1]`), func() {}} {
			if _, err := c.UpdateReported(ctx, patch); err == nil {
				t.Errorf("UpdateReported(%T): got nil error, want one", patch)
			}
		}
		if n := len(b.publishes()); n != 2 {
			t.Errorf("publishes after refused patches: got %d, want 2", n)
		}
	})

	t.Run("hub error", func(t *testing.T) {
		b.hub.mu.Lock()
		b.hub.twinStatus, b.hub.errBody = 400, []byte(`{"errorCode":400004,"message":"property name has a dot"}`)
		b.hub.mu.Unlock()
		_, err := c.UpdateReported(ctx, map[string]any{"a.b": 1})
		var he *iothub.Error
		if !errors.As(err, &he) {
			t.Fatalf("error: got %v, want an *iothub.Error", err)
		}
		if he.Status != 400 || he.Code != 400004 || he.Message != "property name has a dot" {
			t.Errorf("error: got status %d code %d message %q, want 400 400004 \"property name has a dot\"", he.Status, he.Code, he.Message)
		}
		if k := iothub.KindOf(err); k != iothub.KindBadRequest {
			t.Errorf("kind: got %v, want bad request", k)
		}
		_, _, err = c.GetTwin(ctx)
		if !errors.As(err, &he) || he.Op != "get twin" {
			t.Errorf("GetTwin error: got %v, want an *iothub.Error for get twin", err)
		}
	})
}

func TestClient_Methods(t *testing.T) {
	b := newTestBroker(t, map[string]string{"d1": testKey(4)})
	c, _ := newClient(t, b, "d1", nil)
	var mu sync.Mutex
	var gotPayloads []string
	record := func(p json.RawMessage) {
		mu.Lock()
		gotPayloads = append(gotPayloads, string(p))
		mu.Unlock()
	}
	c.Handle("reboot", func(_ context.Context, p json.RawMessage) (int, []byte) {
		record(p)
		return 200, []byte(`{"Response":"Reboot started"}`)
	})
	c.Handle("big", func(context.Context, json.RawMessage) (int, []byte) {
		return 200, []byte(`"` + strings.Repeat("x", iothub.MaxMethodPayload) + `"`)
	})
	c.Handle("garbage", func(context.Context, json.RawMessage) (int, []byte) { return 200, []byte("{oops") })
	c.Handle("empty", func(_ context.Context, p json.RawMessage) (int, []byte) { record(p); return 201, nil })
	c.Handle("panics", func(context.Context, json.RawMessage) (int, []byte) { panic("boom") })
	c.Handle("removed", func(context.Context, json.RawMessage) (int, []byte) { return 200, nil })
	c.Handle("removed", nil)
	connect(t, c)

	tests := []struct {
		name, method, rid string
		payload           []byte
		wantStatus        int
		wantBody          string
	}{
		{"handled", "reboot", "1a", []byte(`{"delay":5}`), 200, `{"Response":"Reboot started"}`},
		{"unknown", "nope", "2b", []byte(`null`), 404, `{"message":"Unknown method: nope"}`},
		{"removed handler", "removed", "2c", []byte(`null`), 404, `{"message":"Unknown method: removed"}`},
		{"too large", "big", "3c", []byte(`null`), 500, `{"message":"response payload of 131074 bytes exceeds the 131072-byte limit"}`},
		{"not json", "garbage", "4d", []byte(`null`), 500, `{"message":"method handler returned a response that is not JSON"}`},
		{"empty payload and response", "empty", "5e", nil, 201, `null`},
		{"panic", "panics", "6f", []byte(`{}`), 500, `{"message":"method handler failed"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b.sendMethod(t, "d1", tt.method, tt.rid, tt.payload)
			status, body := b.methodResponse(t, tt.rid)
			if status != tt.wantStatus || string(body) != tt.wantBody {
				t.Errorf("answer: got %d %s, want %d %s", status, body, tt.wantStatus, tt.wantBody)
			}
		})
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{`{"delay":5}`, `null`}; !slices.Equal(gotPayloads, want) {
		t.Errorf("payloads seen by handlers: got %q, want %q", gotPayloads, want)
	}
	for _, p := range b.publishes() {
		if strings.HasPrefix(p.Topic, "$iothub/methods/res/") && !strings.Contains(p.Topic, "/?$rid=") {
			t.Errorf("response topic %q lacks /?$rid=", p.Topic)
		}
	}
}

func TestClient_MethodHandlerContextCancelledOnClose(t *testing.T) {
	b := newTestBroker(t, map[string]string{"d1": testKey(5)})
	c, _ := newClient(t, b, "d1", nil)
	started := make(chan struct{})
	c.Handle("wait", func(ctx context.Context, _ json.RawMessage) (int, []byte) {
		close(started)
		<-ctx.Done()
		return 200, nil
	})
	connect(t, c)
	b.sendMethod(t, "d1", "wait", "1", nil)
	<-started
	_ = c.Close() // returns only once the handler has seen its ctx end
	if _, _, err := c.GetTwin(testCtx(t)); !errors.Is(err, device.ErrClosed) {
		t.Errorf("GetTwin after Close: got %v, want ErrClosed", err)
	}
	if err := c.Connect(testCtx(t)); !errors.Is(err, device.ErrClosed) {
		t.Errorf("Connect after Close: got %v, want ErrClosed", err)
	}
}

func TestClient_Desired(t *testing.T) {
	b := newTestBroker(t, map[string]string{"d1": testKey(6)})
	b.hub.mu.Lock()
	b.hub.desired = map[string]any{"interval": float64(10), "$version": float64(3)}
	b.hub.mu.Unlock()
	c, _ := newClient(t, b, "d1", nil)
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
	cl := b.client(t, "d1")
	write(cl, iothub.DesiredPatchTopic(3), []byte(`{"interval":20,"$version":3}`)) // not newer than the twin read
	write(cl, iothub.DesiredPatchTopic(4), []byte(`{"interval":30,"old":null,"$version":4}`))
	write(cl, iothub.DesiredPatchTopic(4), []byte(`{"interval":40,"$version":4}`)) // duplicate
	write(cl, iothub.DesiredPatchTopic(5), []byte(`{"interval":50,"$version":5}`))

	want := []note{
		{map[string]any{"interval": float64(30), "old": nil}, 4},
		{map[string]any{"interval": float64(50)}, 5},
	}
	for i, w := range want {
		select {
		case got := <-notes:
			if got.version != w.version || !reflect.DeepEqual(got.patch, w.patch) {
				t.Errorf("notification %d: got v%d %v, want v%d %v", i, got.version, got.patch, w.version, w.patch)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("notification %d: timed out", i)
		}
	}
}

func TestClient_ConnectRefused(t *testing.T) {
	key := testKey(7)
	tests := []struct {
		name   string
		refuse bool
		key    string
	}{
		{"hub refuses everything", true, key},
		{"wrong key", false, testKey(99)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newTestBroker(t, map[string]string{"d1": key})
			b.hub.mu.Lock()
			b.hub.refuse = tt.refuse
			b.hub.mu.Unlock()
			c, err := device.New(device.Config{ConnectionString: b.connString(t, "d1", tt.key), RootCAs: b.pool})
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			defer c.Close()
			err = c.Connect(testCtx(t))
			if !errors.Is(err, device.ErrUnauthorized) {
				t.Fatalf("Connect: got %v, want ErrUnauthorized", err)
			}
			if !strings.Contains(err.Error(), "refused the device credentials") || !strings.Contains(err.Error(), "CONNACK 5") {
				t.Errorf("error text: got %q, want it to say the credentials were refused (CONNACK 5)", err)
			}
			cons := b.connects()
			if len(cons) != 1 {
				t.Fatalf("CONNECTs: got %d, want 1 (no retry as MQTT 3.1)", len(cons))
			}
			sas, _ := iothub.ParseSAS(cons[0].Password)
			for _, secret := range []string{tt.key, cons[0].Password, "SharedAccessSignature", "sig=", url.QueryEscape(string(sas.Signature))} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q contains a secret (%q)", err, secret)
				}
			}
			if c.IsConnected() {
				t.Errorf("IsConnected: got true, want false")
			}
			if _, err := c.UpdateReported(testCtx(t), map[string]any{"a": 1}); !errors.Is(err, device.ErrNotConnected) {
				t.Errorf("UpdateReported after a failed Connect: got %v, want ErrNotConnected", err)
			}
		})
	}
}

func TestClient_ConnectCancelled(t *testing.T) {
	// A listener that accepts and then says nothing: the TLS handshake hangs
	// until the context ends.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		nc, err := ln.Accept()
		if err == nil {
			accepted <- nc
		}
	}()
	cs, _ := iothub.ParseConnectionString("HostName=" + testHost + ";DeviceId=d1;SharedAccessKey=" + testKey(1) + ";GatewayHostName=" + ln.Addr().String())
	c, err := device.New(device.Config{ConnectionString: cs})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Connect(ctx) }()
	nc := <-accepted
	defer nc.Close()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Connect: got %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Connect did not return after its context was cancelled")
	}
}

func TestClient_NotConnected(t *testing.T) {
	cs, _ := iothub.ParseConnectionString("HostName=h;DeviceId=d1;SharedAccessKey=" + testKey(1))
	c, err := device.New(device.Config{ConnectionString: cs})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.GetTwin(testCtx(t)); !errors.Is(err, device.ErrNotConnected) {
		t.Errorf("GetTwin before Connect: got %v, want ErrNotConnected", err)
	}
	if err := c.Disconnect(testCtx(t)); err != nil {
		t.Errorf("Disconnect before Connect: got %v, want nil", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestNew_Errors(t *testing.T) {
	svc, _ := iothub.ParseConnectionString("HostName=h;SharedAccessKeyName=service;SharedAccessKey=" + testKey(1))
	dev, _ := iothub.ParseConnectionString("HostName=h;DeviceId=d;SharedAccessKey=" + testKey(1))
	tests := []struct {
		name string
		cfg  device.Config
	}{
		{"no connection string", device.Config{}},
		{"service connection string", device.Config{ConnectionString: svc}},
		{"tiny TTL", device.Config{ConnectionString: dev, TokenTTL: time.Millisecond}},
		{"tiny keep-alive", device.Config{ConnectionString: dev, KeepAlive: time.Millisecond}},
		{"backoff bounds reversed", device.Config{ConnectionString: dev, ReconnectMin: time.Second, ReconnectMax: time.Millisecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := device.New(tt.cfg); err == nil {
				t.Errorf("New: got nil error, want one")
			} else if strings.Contains(err.Error(), testKey(1)) {
				t.Errorf("error %q contains the key", err)
			}
		})
	}
}

func TestClient_ReconnectAfterKick(t *testing.T) {
	b := newTestBroker(t, map[string]string{"d1": testKey(8)})
	c, events := newClient(t, b, "d1", nil)
	c.Handle("ping", func(context.Context, json.RawMessage) (int, []byte) { return 200, []byte(`"pong"`) })
	notes := make(chan int64, 10)
	c.OnDesired(func(p map[string]any, v int64) {
		if !reflect.DeepEqual(p, map[string]any{"mode": "eco"}) {
			t.Errorf("resynthesised patch: got %v, want map[mode:eco]", p)
		}
		notes <- v
	})
	connect(t, c)
	if e := nextEvent(t, events); !e.connected {
		t.Fatalf("first event: got %+v, want connected", e)
	}
	if _, _, err := c.GetTwin(testCtx(t)); err != nil { // desired $version 1
		t.Fatalf("GetTwin: %v", err)
	}

	// A request in flight when the connection drops fails at once.
	b.hub.mu.Lock()
	b.hub.silent = true
	b.hub.mu.Unlock()
	pending := make(chan error, 1)
	go func() {
		_, err := c.UpdateReported(context.Background(), map[string]any{"x": 1})
		pending <- err
	}()
	b.waitFor(t, "the reported PATCH", func(h *hubHook) bool {
		return hasPrefixTopic(h.publishes, "$iothub/twin/PATCH/properties/reported/")
	})
	// The desired section moves while the device is away.
	b.hub.mu.Lock()
	b.hub.silent = false
	b.hub.desired = map[string]any{"mode": "eco", "$version": float64(2)}
	b.hub.mu.Unlock()
	b.client(t, "d1").Stop(errors.New("kicked by test"))

	select {
	case err := <-pending:
		if !errors.Is(err, device.ErrConnectionLost) {
			t.Errorf("pending UpdateReported: got %v, want ErrConnectionLost", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("pending request did not fail after the connection dropped")
	}
	if e := nextEvent(t, events); e.connected || e.err == nil {
		t.Errorf("event after kick: got %+v, want disconnected with an error", e)
	}
	if e := nextEvent(t, events); !e.connected {
		t.Errorf("event after reconnect: got %+v, want connected", e)
	}
	select {
	case v := <-notes:
		if v != 2 {
			t.Errorf("resynthesised version: got %d, want 2", v)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no desired patch synthesised after the reconnect")
	}

	if n := len(b.connects()); n != 2 {
		t.Errorf("CONNECTs: got %d, want 2", n)
	}
	subs := b.subscribes()
	if len(subs) != 2 || len(subs[1]) != 3 {
		t.Errorf("SUBSCRIBEs: got %q, want the three filters again after the reconnect", subs)
	}
	b.sendMethod(t, "d1", "ping", "99", nil)
	if status, body := b.methodResponse(t, "99"); status != 200 || string(body) != `"pong"` {
		t.Errorf("method after reconnect: got %d %s, want 200 \"pong\"", status, body)
	}
}

func TestClient_DisconnectAndConnectAgain(t *testing.T) {
	b := newTestBroker(t, map[string]string{"d1": testKey(9)})
	c, events := newClient(t, b, "d1", nil)
	c.Handle("ping", func(context.Context, json.RawMessage) (int, []byte) { return 200, nil })
	connect(t, c)
	if err := c.Disconnect(testCtx(t)); err != nil {
		t.Fatalf("Disconnect: %v", err)
	}
	if c.IsConnected() {
		t.Errorf("IsConnected after Disconnect: got true, want false")
	}
	if _, _, err := c.GetTwin(testCtx(t)); !errors.Is(err, device.ErrNotConnected) {
		t.Errorf("GetTwin after Disconnect: got %v, want ErrNotConnected", err)
	}
	connect(t, c)
	var got []connEvent
	for range 3 {
		got = append(got, nextEvent(t, events))
	}
	if want := []connEvent{{true, nil}, {false, nil}, {true, nil}}; !reflect.DeepEqual(got, want) {
		t.Errorf("events: got %+v, want %+v", got, want)
	}
	if n := len(b.connects()); n != 2 {
		t.Errorf("CONNECTs: got %d, want 2", n)
	}
	// The second connection resumes the first one's TLS session.
	if n := b.resumed.Load(); n != 1 {
		t.Errorf("resumed TLS handshakes: got %d, want 1", n)
	}
	b.sendMethod(t, "d1", "ping", "7", nil)
	if status, _ := b.methodResponse(t, "7"); status != 200 {
		t.Errorf("method after reconnect: got %d, want 200", status)
	}
}

func TestClient_TokenRenewal(t *testing.T) {
	b := newTestBroker(t, map[string]string{"d1": testKey(10)})
	c, events := newClient(t, b, "d1", func(cfg *device.Config) { cfg.TokenTTL = 2 * time.Second })
	connect(t, c)
	if e := nextEvent(t, events); !e.connected {
		t.Fatalf("first event: got %+v, want connected", e)
	}
	b.waitFor(t, "a second CONNECT", func(h *hubHook) bool { return len(h.connects) >= 2 })
	cons := b.connects()
	if !cons[0].Accepted || !cons[1].Accepted {
		t.Errorf("accepted: got %v and %v, want both", cons[0].Accepted, cons[1].Accepted)
	}
	if cons[0].Password == cons[1].Password {
		t.Errorf("the renewed CONNECT reused the old token")
	}
	first, _ := iothub.ParseSAS(cons[0].Password)
	second, _ := iothub.ParseSAS(cons[1].Password)
	if !second.Expiry.After(first.Expiry) {
		t.Errorf("renewed expiry %v is not after %v", second.Expiry, first.Expiry)
	}
	if _, _, err := c.GetTwin(testCtx(t)); err != nil {
		t.Errorf("GetTwin after renewal: %v", err)
	}
	select {
	case e := <-events:
		t.Errorf("renewal was reported as a connection change: %+v", e)
	default:
	}
}

func TestClient_CloseStopsGoroutines(t *testing.T) {
	b := newTestBroker(t, map[string]string{"d1": testKey(11)})
	base := runtime.NumGoroutine()
	c, _ := newClient(t, b, "d1", nil)
	c.Handle("ping", func(context.Context, json.RawMessage) (int, []byte) { return 200, nil })
	c.OnDesired(func(map[string]any, int64) {})
	connect(t, c)
	if _, _, err := c.GetTwin(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	b.sendMethod(t, "d1", "ping", "1", nil)
	b.methodResponse(t, "1")
	if n := runtime.NumGoroutine(); n <= base {
		t.Fatalf("goroutines while connected: got %d, want more than %d", n, base)
	}
	_ = c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("goroutines after Close: got %d, want at most %d\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		runtime.Gosched()
		time.Sleep(10 * time.Millisecond)
	}
}

func TestClient_ReconnectRetriesWhileRefused(t *testing.T) {
	b := newTestBroker(t, map[string]string{"d1": testKey(12)})
	c, events := newClient(t, b, "d1", nil)
	connect(t, c)
	nextEvent(t, events)
	b.hub.mu.Lock()
	b.hub.refuse = true
	b.hub.mu.Unlock()
	b.client(t, "d1").Stop(errors.New("kicked by test"))
	if e := nextEvent(t, events); e.connected {
		t.Fatalf("event after kick: got %+v, want disconnected", e)
	}
	b.waitFor(t, "three refused reconnects", func(h *hubHook) bool { return len(h.connects) >= 4 })
	if c.IsConnected() {
		t.Errorf("IsConnected while refused: got true, want false")
	}
	b.hub.mu.Lock()
	b.hub.refuse = false
	b.hub.mu.Unlock()
	if e := nextEvent(t, events); !e.connected {
		t.Errorf("event once accepted again: got %+v, want connected", e)
	}
	if _, err := c.UpdateReported(testCtx(t), map[string]any{"back": true}); err != nil {
		t.Errorf("UpdateReported after reconnect: %v", err)
	}
}
