package service_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/hubflow/hubflow/iothub"
	"github.com/hubflow/hubflow/iothub/service"
)

const docDevice = `{"deviceId":"d1","generationId":"638000","etag":"MQ==","connectionState":"Disconnected","status":"enabled",
"statusReason":null,"connectionStateUpdatedTime":"0001-01-01T00:00:00","statusUpdatedTime":"0001-01-01T00:00:00",
"lastActivityTime":"0001-01-01T00:00:00","cloudToDeviceMessageCount":0,
"authentication":{"symmetricKey":{"primaryKey":"cHJpbWFyeQ==","secondaryKey":"c2Vjb25kYXJ5"},"x509Thumbprint":{"primaryThumbprint":null,"secondaryThumbprint":null},"type":"sas"},
"capabilities":{"iotEdge":false}}`

func TestClient_Registry_Golden(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name       string
		status     int
		answer     string
		call       func(c *service.Client) error
		wantMethod string
		wantURI    string
		wantIf     string // "" means no If-Match
		wantBody   string
	}{
		{
			name: "create with generated keys", status: 200, answer: docDevice,
			call: func(c *service.Client) error {
				d, err := c.CreateDevice(ctx, iothub.Device{DeviceID: "d1", Status: "enabled", ETag: "ignored", ConnectionState: "Connected"})
				if err == nil && (d.Authentication == nil || d.Authentication.SymmetricKey.PrimaryKey != "cHJpbWFyeQ==") {
					t.Errorf("created device: got %+v, want the generated keys", d.Authentication)
				}
				return err
			},
			wantMethod: "PUT", wantURI: "/devices/d1?api-version=2021-04-12",
			wantBody: `{"deviceId":"d1","status":"enabled","authentication":{"type":"sas","symmetricKey":{"primaryKey":"","secondaryKey":""}}}`,
		},
		{
			name: "create with given keys", status: 200, answer: docDevice,
			call: func(c *service.Client) error {
				_, err := c.CreateDevice(ctx, iothub.Device{DeviceID: "a/b#c", Authentication: &iothub.Authentication{
					Type: "sas", SymmetricKey: &iothub.SymmetricKey{PrimaryKey: "cA==", SecondaryKey: "cw=="}}})
				return err
			},
			wantMethod: "PUT", wantURI: "/devices/a%2Fb%23c?api-version=2021-04-12",
			wantBody: `{"deviceId":"a/b#c","authentication":{"type":"sas","symmetricKey":{"primaryKey":"cA==","secondaryKey":"cw=="}}}`,
		},
		{
			name: "get", status: 200, answer: docDevice,
			call: func(c *service.Client) error {
				d, err := c.GetDevice(ctx, "d1")
				if err == nil && (d.DeviceID != "d1" || d.ETag != "MQ==") {
					t.Errorf("device: got %s %s, want d1 MQ==", d.DeviceID, d.ETag)
				}
				return err
			},
			wantMethod: "GET", wantURI: "/devices/d1?api-version=2021-04-12",
		},
		{
			name: "list with top", status: 200, answer: `[` + docDevice + `,{"deviceId":"d2"}]`,
			call: func(c *service.Client) error {
				ds, err := c.ListDevices(ctx, 5)
				if err == nil && (len(ds) != 2 || ds[1].DeviceID != "d2") {
					t.Errorf("devices: got %+v, want d1 and d2", ds)
				}
				return err
			},
			wantMethod: "GET", wantURI: "/devices?api-version=2021-04-12&top=5",
		},
		{
			name: "list without top", status: 200, answer: `[]`,
			call: func(c *service.Client) error {
				ds, err := c.ListDevices(ctx, 0)
				if err == nil && (ds == nil || len(ds) != 0) {
					t.Errorf("devices: got %#v, want an empty list", ds)
				}
				return err
			},
			wantMethod: "GET", wantURI: "/devices?api-version=2021-04-12",
		},
		{
			name: "delete unconditionally", status: 204,
			call:       func(c *service.Client) error { return c.DeleteDevice(ctx, "a/b#c", "") },
			wantMethod: "DELETE", wantURI: "/devices/a%2Fb%23c?api-version=2021-04-12", wantIf: `"*"`,
		},
		{
			name: "delete with etag", status: 204,
			call:       func(c *service.Client) error { return c.DeleteDevice(ctx, "d1", "MQ==") },
			wantMethod: "DELETE", wantURI: "/devices/d1?api-version=2021-04-12", wantIf: `"MQ=="`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newFakeHub(t, func(w http.ResponseWriter, r *http.Request, n int) {
				if tt.status == 204 {
					w.WriteHeader(204)
					return
				}
				answer(w, tt.status, tt.answer)
			})
			c := h.client(t, service.Config{})
			if err := tt.call(c); err != nil {
				t.Fatalf("call: %v", err)
			}
			r := h.last(t)
			if r.Method != tt.wantMethod || r.RequestURI != tt.wantURI {
				t.Errorf("request: got %s %s, want %s %s", r.Method, r.RequestURI, tt.wantMethod, tt.wantURI)
			}
			gotIf, hasIf := r.Header["If-Match"]
			switch {
			case tt.wantIf == "" && hasIf:
				t.Errorf("If-Match: got %q, want none", gotIf)
			case tt.wantIf != "" && r.Header.Get("If-Match") != tt.wantIf:
				t.Errorf("If-Match: got %q, want %s", gotIf, tt.wantIf)
			}
			if string(r.Body) != tt.wantBody {
				t.Errorf("body:\n got %s\nwant %s", r.Body, tt.wantBody)
			}
			checkCommonHeaders(t, r, h.host(), time.Now())
		})
	}
}

func TestClient_Registry_BadInputAndAnswers(t *testing.T) {
	ctx := context.Background()
	h := newFakeHub(t, func(w http.ResponseWriter, r *http.Request, n int) { answer(w, 200, `{"deviceId":"d1"}`) })
	c := h.client(t, service.Config{})
	for name, err := range map[string]error{
		"create empty id": func() error { _, err := c.CreateDevice(ctx, iothub.Device{}); return err }(),
		"get empty id":    func() error { _, err := c.GetDevice(ctx, ""); return err }(),
		"delete empty id": c.DeleteDevice(ctx, "", ""),
		"list negative":   func() error { _, err := c.ListDevices(ctx, -1); return err }(),
		"list too many":   func() error { _, err := c.ListDevices(ctx, 1001); return err }(),
	} {
		if !errors.Is(err, service.ErrInvalidInput) {
			t.Errorf("%s: got %v, want ErrInvalidInput", name, err)
		}
	}
	if got := h.count.Load(); got != 0 {
		t.Errorf("requests sent: got %d, want 0", got)
	}

	tests := []struct {
		name string
		body string
		call func(c *service.Client) error
	}{
		{"create answers a list", `[]`, func(c *service.Client) error {
			_, err := c.CreateDevice(ctx, iothub.Device{DeviceID: "d1"})
			return err
		}},
		{"get answers no id", `{"status":"enabled"}`, func(c *service.Client) error { _, err := c.GetDevice(ctx, "d1"); return err }},
		{"list answers an object", `{"deviceId":"d1"}`, func(c *service.Client) error { _, err := c.ListDevices(ctx, 0); return err }},
		{"list answers null", `null`, func(c *service.Client) error { _, err := c.ListDevices(ctx, 0); return err }},
		{"list item without id", `[{"deviceId":"d1"},{}]`, func(c *service.Client) error { _, err := c.ListDevices(ctx, 0); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newFakeHub(t, func(w http.ResponseWriter, r *http.Request, n int) { answer(w, 200, tt.body) })
			if err := tt.call(h.client(t, service.Config{})); !errors.Is(err, service.ErrUnexpectedResponse) {
				t.Errorf("got %v, want ErrUnexpectedResponse", err)
			}
		})
	}
}
