package hubadapter_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hubflow/hubflow/internal/hubadapter"
	"github.com/hubflow/hubflow/iothub"
	"github.com/hubflow/hubflow/iothub/service"
	"github.com/hubflow/hubflow/runner"
)

// answer is what the fake hub sends for one request.
type answer struct {
	status int
	header map[string]string
	body   string
}

// fakeHub answers each "METHOD path" with the next of its answers and
// records the bodies it was sent.
type fakeHub struct {
	mu      sync.Mutex
	answers map[string][]answer
	sent    []string // "METHOD path body"
}

func (f *fakeHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	key := r.Method + " " + r.URL.Path
	f.mu.Lock()
	f.sent = append(f.sent, key+" "+string(body))
	as := f.answers[key]
	a := answer{status: http.StatusNotFound, body: `{"Message":"ErrorCode:DeviceNotFound;no such device"}`}
	if len(as) > 0 {
		a, f.answers[key] = as[0], as[1:]
	}
	f.mu.Unlock()
	for k, v := range a.header {
		w.Header().Set(k, v)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(a.status)
	io.WriteString(w, a.body)
}

func (f *fakeHub) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.sent...)
}

// newHub serves answers on 127.0.0.1 over TLS and returns the adapter on a
// client of that server.
func newHub(t testing.TB, answers map[string][]answer) (runner.Hub, *fakeHub) {
	t.Helper()
	fake := &fakeHub{answers: answers}
	srv := httptest.NewTLSServer(fake)
	t.Cleanup(srv.Close)
	cs, err := iothub.ParseConnectionString("HostName=" + srv.Listener.Addr().String() + ";SharedAccessKeyName=service;SharedAccessKey=c2VjcmV0LWtleQ==")
	if err != nil {
		t.Fatal(err)
	}
	c, err := service.New(service.Config{ConnectionString: cs, HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return hubadapter.New(c), fake
}

func ok(body string) []answer { return []answer{{status: http.StatusOK, body: body}} }

func TestHub_InvokeMethod(t *testing.T) {
	h, fake := newHub(t, map[string][]answer{
		"POST /twins/d1/methods": ok(`{"status":202,"payload":{"accepted":true}}`),
	})
	resp, err := h.InvokeMethod(context.Background(), "d1", runner.MethodCall{
		Name: "rebootDevice", Payload: json.RawMessage(`{"delay": 5}`), ResponseTimeout: 20 * time.Second, ConnectTimeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 202 || string(resp.Payload) != `{"accepted":true}` {
		t.Errorf("got status %d payload %s, want 202 {\"accepted\":true}", resp.Status, resp.Payload)
	}
	want := `POST /twins/d1/methods {"methodName":"rebootDevice","payload":{"delay":5},"responseTimeoutInSeconds":20,"connectTimeoutInSeconds":10}`
	if got := fake.requests(); len(got) != 1 || got[0] != want {
		t.Errorf("got requests %q, want [%q]", got, want)
	}
}

func TestHub_PatchDesired(t *testing.T) {
	h, fake := newHub(t, map[string][]answer{
		"PATCH /twins/d1": ok(`{"deviceId":"d1","properties":{"desired":{"fw":"2.1"}}}`),
	})
	if err := h.PatchDesired(context.Background(), "d1", map[string]any{"fw": "2.1"}); err != nil {
		t.Fatal(err)
	}
	got := fake.requests()
	if len(got) != 1 || !strings.HasPrefix(got[0], "PATCH /twins/d1 ") {
		t.Fatalf("got requests %q, want one PATCH of d1", got)
	}
	var patch struct {
		Properties struct {
			Desired map[string]any `json:"desired"`
		} `json:"properties"`
	}
	if err := json.Unmarshal([]byte(strings.TrimPrefix(got[0], "PATCH /twins/d1 ")), &patch); err != nil {
		t.Fatal(err)
	}
	if patch.Properties.Desired["fw"] != "2.1" {
		t.Errorf("got desired %v, want fw=2.1", patch.Properties.Desired)
	}
}

func TestHub_GetTwin(t *testing.T) {
	h, _ := newHub(t, map[string][]answer{
		"GET /twins/d1": ok(`{"deviceId":"d1","tags":{"site":"osaka"}}`),
	})
	twin, err := h.GetTwin(context.Background(), "d1")
	if err != nil {
		t.Fatal(err)
	}
	if twin.DeviceID != "d1" || twin.Tags["site"] != "osaka" {
		t.Errorf("got twin %+v, want d1 at osaka", twin)
	}
}

func TestHub_QueryTwins(t *testing.T) {
	h, fake := newHub(t, map[string][]answer{
		"POST /devices/query": {
			{status: http.StatusOK, header: map[string]string{"x-ms-continuation": "page2"}, body: `[{"deviceId":"a"},{"deviceId":"b"}]`},
			{status: http.StatusOK, body: `[{"deviceId":"c"}]`},
		},
	})
	pages := h.QueryTwins(context.Background(), "SELECT * FROM devices")
	var ids []string
	for pages.More() {
		twins, err := pages.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, tw := range twins {
			ids = append(ids, tw.DeviceID)
		}
	}
	if got := strings.Join(ids, ","); got != "a,b,c" {
		t.Errorf("got devices %s, want a,b,c", got)
	}
	if n := len(fake.requests()); n != 2 {
		t.Errorf("got %d requests, want 2 pages", n)
	}
}

// TestHub_Errors checks which errors the runner is told not to retry: the
// client's input errors are refused, the hub's answers and odd pages are
// not.
func TestHub_Errors(t *testing.T) {
	ctx := context.Background()
	notTwins := map[string][]answer{"POST /devices/query": ok(`[{"n":3}]`)}
	cases := []struct {
		name    string
		answers map[string][]answer
		call    func(h runner.Hub) error
		refused bool
		kind    iothub.Kind
		sends   int
	}{
		{"bad method name", nil, func(h runner.Hub) error {
			_, err := h.InvokeMethod(ctx, "d1", runner.MethodCall{Name: "re boot"})
			return err
		}, true, iothub.KindOther, 0},
		{"empty patch", nil, func(h runner.Hub) error {
			return h.PatchDesired(ctx, "d1", map[string]any{})
		}, true, iothub.KindOther, 0},
		{"empty query", nil, func(h runner.Hub) error {
			_, err := h.QueryTwins(ctx, " ").Next(ctx)
			return err
		}, true, iothub.KindOther, 0},
		{"unknown device", nil, func(h runner.Hub) error {
			_, err := h.GetTwin(ctx, "ghost")
			return err
		}, false, iothub.KindDeviceNotFound, 1},
		{"method on unknown device", nil, func(h runner.Hub) error {
			_, err := h.InvokeMethod(ctx, "ghost", runner.MethodCall{Name: "rebootDevice"})
			return err
		}, false, iothub.KindDeviceNotFound, 1},
		{"query items that are not twins", notTwins, func(h runner.Hub) error {
			_, err := h.QueryTwins(ctx, "SELECT COUNT() AS n FROM devices").Next(ctx)
			if !errors.Is(err, service.ErrUnexpectedResponse) {
				t.Errorf("got %v, want service.ErrUnexpectedResponse", err)
			}
			return err
		}, false, iothub.KindOther, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, fake := newHub(t, tc.answers)
			err := tc.call(h)
			if err == nil {
				t.Fatal("got no error")
			}
			if got := errors.Is(err, runner.ErrRefused); got != tc.refused {
				t.Errorf("got refused %v, want %v (%v)", got, tc.refused, err)
			}
			if tc.refused && !errors.Is(err, service.ErrInvalidInput) {
				t.Errorf("got %v, want it to keep service.ErrInvalidInput", err)
			}
			if got := iothub.KindOf(err); got != tc.kind {
				t.Errorf("got kind %s, want %s", got, tc.kind)
			}
			if got := len(fake.requests()); got != tc.sends {
				t.Errorf("got %d requests sent, want %d", got, tc.sends)
			}
		})
	}
}
