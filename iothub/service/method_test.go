package service_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hubflow/hubflow/iothub"
	"github.com/hubflow/hubflow/iothub/service"
)

func TestClient_InvokeMethod_Golden(t *testing.T) {
	tests := []struct {
		name     string
		device   string
		call     service.MethodCall
		wantURI  string
		wantBody string
	}{
		{
			name:     "object payload is compacted",
			device:   "pump-7",
			call:     service.MethodCall{Name: "reboot", Payload: json.RawMessage("{ \"delay\" : 5,\n \"why\": \"a<b&c\" }")},
			wantURI:  "/twins/pump-7/methods?api-version=2021-04-12",
			wantBody: `{"methodName":"reboot","payload":{"delay":5,"why":"a<b&c"},"responseTimeoutInSeconds":30,"connectTimeoutInSeconds":0}`,
		},
		{
			name:     "empty payload is null",
			device:   "d1",
			call:     service.MethodCall{Name: "rebootDevice"},
			wantURI:  "/twins/d1/methods?api-version=2021-04-12",
			wantBody: `{"methodName":"rebootDevice","payload":null,"responseTimeoutInSeconds":30,"connectTimeoutInSeconds":0}`,
		},
		{
			name:     "escaped id and timeouts rounded up",
			device:   "a/b#c",
			call:     service.MethodCall{Name: "fw.update", Payload: json.RawMessage(`"x"`), ResponseTimeout: 299500 * time.Millisecond, ConnectTimeout: 10 * time.Second},
			wantURI:  "/twins/a%2Fb%23c/methods?api-version=2021-04-12",
			wantBody: `{"methodName":"fw.update","payload":"x","responseTimeoutInSeconds":300,"connectTimeoutInSeconds":10}`,
		},
		{
			name:     "id with percent, space and question mark",
			device:   "50% ?x",
			call:     service.MethodCall{Name: "m", Payload: json.RawMessage(`[1, 2]`), ResponseTimeout: 5 * time.Second},
			wantURI:  "/twins/50%25%20%3Fx/methods?api-version=2021-04-12",
			wantBody: `{"methodName":"m","payload":[1,2],"responseTimeoutInSeconds":5,"connectTimeoutInSeconds":0}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newFakeHub(t, func(w http.ResponseWriter, r *http.Request, n int) {
				answer(w, 200, `{"status":201,"payload":{"done":true}}`)
			})
			c := h.client(t, service.Config{})
			res, err := c.InvokeMethod(context.Background(), tt.device, tt.call)
			if err != nil {
				t.Fatalf("invoke: %v", err)
			}
			if res.Status != 201 || string(res.Payload) != `{"done":true}` {
				t.Errorf("result: got %d %s, want 201 {\"done\":true}", res.Status, res.Payload)
			}
			r := h.last(t)
			if r.Method != http.MethodPost {
				t.Errorf("method: got %s, want POST", r.Method)
			}
			if r.RequestURI != tt.wantURI {
				t.Errorf("request URI: got %s, want %s", r.RequestURI, tt.wantURI)
			}
			if string(r.Body) != tt.wantBody {
				t.Errorf("body:\n got %s\nwant %s", r.Body, tt.wantBody)
			}
			if _, ok := r.Header["If-Match"]; ok {
				t.Errorf("If-Match: got %q, want none", r.Header.Get("If-Match"))
			}
			checkCommonHeaders(t, r, h.host(), time.Now())
		})
	}
}

// deadlineTransport answers every request at once and records the deadline
// of its context, to show how long the client would wait.
type deadlineTransport struct {
	left   time.Duration
	scheme string
}

func (d *deadlineTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if dl, ok := r.Context().Deadline(); ok {
		d.left = time.Until(dl)
	}
	d.scheme = r.URL.Scheme
	return &http.Response{
		StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}},
		Body: http.NoBody, Request: r,
	}, nil
}

func TestClient_InvokeMethod_Deadline(t *testing.T) {
	tests := []struct {
		name string
		call service.MethodCall
		want time.Duration
	}{
		{"defaults", service.MethodCall{Name: "m"}, 40 * time.Second},
		{"response and connect", service.MethodCall{Name: "m", ResponseTimeout: 120 * time.Second, ConnectTimeout: 60 * time.Second}, 190 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := &deadlineTransport{}
			c, err := service.New(service.Config{
				ConnectionString: &iothub.ConnectionString{HostName: "hub.example", SharedAccessKeyName: testPolicy, SharedAccessKey: testKey},
				HTTPClient:       &http.Client{Transport: tr},
			})
			if err != nil {
				t.Fatal(err)
			}
			// The empty body makes the call fail after the request was seen.
			_, err = c.InvokeMethod(context.Background(), "d1", tt.call)
			if !errors.Is(err, service.ErrUnexpectedResponse) {
				t.Errorf("got %v, want ErrUnexpectedResponse", err)
			}
			if tr.left > tt.want || tr.left < tt.want-5*time.Second {
				t.Errorf("deadline: got %s from now, want about %s", tr.left, tt.want)
			}
			if tr.scheme != "https" {
				t.Errorf("scheme: got %q, want https", tr.scheme)
			}
		})
	}
}

func TestClient_InvokeMethod_BadInput(t *testing.T) {
	big := `"` + strings.Repeat("x", iothub.MaxMethodPayload-1) + `"` // one byte over once quoted
	justFits := `"` + strings.Repeat("x", iothub.MaxMethodPayload-2) + `"`
	tests := []struct {
		name   string
		device string
		call   service.MethodCall
		want   string
	}{
		{"empty device", "", service.MethodCall{Name: "m"}, "device id is empty"},
		{"long device", strings.Repeat("d", 129), service.MethodCall{Name: "m"}, "over the hub's 128"},
		{"control char in device", "d\n1", service.MethodCall{Name: "m"}, "control character"},
		{"empty name", "d1", service.MethodCall{}, "method name is empty"},
		{"slash in name", "d1", service.MethodCall{Name: "a/b"}, `contains '/'`},
		{"space in name", "d1", service.MethodCall{Name: "a b"}, `contains ' '`},
		{"dollar in name", "d1", service.MethodCall{Name: "$x"}, `contains '$'`},
		{"quote in name", "d1", service.MethodCall{Name: `a"b`}, `contains '"'`},
		{"wildcard in name", "d1", service.MethodCall{Name: "a#"}, `contains '#'`},
		{"control in name", "d1", service.MethodCall{Name: "a\x01"}, `contains`},
		{"not json", "d1", service.MethodCall{Name: "m", Payload: json.RawMessage(`{delay:5}`)}, "payload is not valid JSON"},
		{"two values", "d1", service.MethodCall{Name: "m", Payload: json.RawMessage(`1 2`)}, "payload is not valid JSON"},
		{"truncated", "d1", service.MethodCall{Name: "m", Payload: json.RawMessage(`{"a":`)}, "payload is not valid JSON"},
		{"too large", "d1", service.MethodCall{Name: "m", Payload: json.RawMessage(big)}, "over the hub's 131072"},
		{"response timeout short", "d1", service.MethodCall{Name: "m", ResponseTimeout: 4 * time.Second}, "response timeout 4s"},
		{"response timeout long", "d1", service.MethodCall{Name: "m", ResponseTimeout: 301 * time.Second}, "response timeout 5m1s"},
		{"response timeout negative", "d1", service.MethodCall{Name: "m", ResponseTimeout: -time.Second}, "response timeout"},
		{"connect timeout negative", "d1", service.MethodCall{Name: "m", ConnectTimeout: -time.Second}, "connect timeout"},
		{"connect timeout long", "d1", service.MethodCall{Name: "m", ConnectTimeout: 301 * time.Second}, "connect timeout"},
	}
	h := newFakeHub(t, func(w http.ResponseWriter, r *http.Request, n int) { answer(w, 200, `{"status":200,"payload":null}`) })
	c := h.client(t, service.Config{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.InvokeMethod(context.Background(), tt.device, tt.call)
			if !errors.Is(err, service.ErrInvalidInput) {
				t.Fatalf("got %v, want ErrInvalidInput", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %q, want it to contain %q", err, tt.want)
			}
		})
	}
	if got := h.count.Load(); got != 0 {
		t.Errorf("requests sent: got %d, want 0", got)
	}
	// The largest payload that fits is sent.
	if _, err := c.InvokeMethod(context.Background(), "d1", service.MethodCall{Name: "m", Payload: json.RawMessage(justFits)}); err != nil {
		t.Fatalf("payload of exactly %d bytes: got %v, want nil", iothub.MaxMethodPayload, err)
	}
}

func TestClient_InvokeMethod_UnexpectedAnswer(t *testing.T) {
	tests := []struct {
		name string
		body string
	}{
		{"not json", `<html>gateway</html>`},
		{"empty", ``},
		{"array", `[]`},
		{"null", `null`},
		{"no status", `{"payload":{"a":1}}`},
		{"status is a string", `{"status":"200","payload":null}`},
		{"status is fractional", `{"status":200.5}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newFakeHub(t, func(w http.ResponseWriter, r *http.Request, n int) { answer(w, 200, tt.body) })
			c := h.client(t, service.Config{})
			res, err := c.InvokeMethod(context.Background(), "d1", service.MethodCall{Name: "m"})
			if !errors.Is(err, service.ErrUnexpectedResponse) {
				t.Fatalf("got %v, %v; want ErrUnexpectedResponse", res, err)
			}
			if !strings.HasPrefix(err.Error(), `invoke method "m" on device "d1": `) {
				t.Errorf("got %q, want it to name the operation", err)
			}
		})
	}
}
