package service_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hubflow/hubflow/iothub"
	"github.com/hubflow/hubflow/iothub/service"
)

// docTwin is the twin example of the protocol reference.
const docTwin = `{"deviceId":"pump-7","etag":"AAAAAAAAAAM=","deviceEtag":"MQ==","status":"enabled",
 "statusUpdateTime":"0001-01-01T00:00:00Z","connectionState":"Connected",
 "lastActivityTime":"2025-05-01T10:00:00.1234567Z","cloudToDeviceMessageCount":0,
 "authenticationType":"sas","x509Thumbprint":{"primaryThumbprint":null,"secondaryThumbprint":null},
 "version":5,"tags":{"site":"north"},
 "properties":{
  "desired":{"fw":{"version":"2.1"},"$metadata":{"$lastUpdated":"2025-05-01T09:00:00.0000000Z","$lastUpdatedVersion":2},"$version":2},
  "reported":{"fw":{"version":"2.0"},"$metadata":{"$lastUpdated":"2025-05-01T09:01:00.0000000Z"},"$version":3}}}`

func TestClient_GetTwin_Golden(t *testing.T) {
	h := newFakeHub(t, func(w http.ResponseWriter, r *http.Request, n int) { answer(w, 200, docTwin) })
	c := h.client(t, service.Config{UserAgent: "hubflow/test"})
	tw, err := c.GetTwin(context.Background(), "a/b#c")
	if err != nil {
		t.Fatalf("get twin: %v", err)
	}
	r := h.last(t)
	if r.Method != http.MethodGet || r.RequestURI != "/twins/a%2Fb%23c?api-version=2021-04-12" {
		t.Errorf("request: got %s %s, want GET /twins/a%%2Fb%%23c?api-version=2021-04-12", r.Method, r.RequestURI)
	}
	if len(r.Body) != 0 {
		t.Errorf("body: got %q, want none", r.Body)
	}
	if got := r.Header.Get("User-Agent"); got != "hubflow/test" {
		t.Errorf("User-Agent: got %q, want hubflow/test", got)
	}
	if _, ok := r.Header["If-Match"]; ok {
		t.Errorf("If-Match: got %q, want none", r.Header.Get("If-Match"))
	}
	checkCommonHeaders(t, r, h.host(), time.Now())
	if tw.DeviceID != "pump-7" || tw.ETag != "AAAAAAAAAAM=" || tw.Version != 5 || tw.Tags["site"] != "north" {
		t.Errorf("twin: got %+v, want pump-7 AAAAAAAAAAM= v5 site=north", tw)
	}
	if got := iothub.SectionVersion(tw.Properties.Reported); got != 3 {
		t.Errorf("reported $version: got %d, want 3", got)
	}
}

func TestClient_UpdateTwin_Golden(t *testing.T) {
	tests := []struct {
		name        string
		etag        string
		patch       iothub.TwinPatch
		wantIfMatch string
		wantBody    string
	}{
		{
			name: "no etag", etag: "", wantIfMatch: `"*"`,
			patch:    iothub.TwinPatch{Properties: &iothub.TwinPatchProperties{Desired: map[string]any{"maintenanceWindow": map[string]any{"start": "02:00", "note": "<night> & calm"}}}},
			wantBody: `{"properties":{"desired":{"maintenanceWindow":{"note":"<night> & calm","start":"02:00"}}}}`,
		},
		{
			name: "bare etag is quoted", etag: "AAAAAAAAAAI=", wantIfMatch: `"AAAAAAAAAAI="`,
			patch:    iothub.TwinPatch{Tags: map[string]any{"site": "north"}, Properties: &iothub.TwinPatchProperties{Desired: map[string]any{"x": 1}}},
			wantBody: `{"tags":{"site":"north"},"properties":{"desired":{"x":1}}}`,
		},
		{
			name: "quoted etag kept", etag: `"AAAAAAAAAAI="`, wantIfMatch: `"AAAAAAAAAAI="`,
			patch:    iothub.TwinPatch{Tags: map[string]any{"ring": nil}},
			wantBody: `{"tags":{"ring":null}}`,
		},
		{
			name: "star", etag: "*", wantIfMatch: `"*"`,
			patch:    iothub.TwinPatch{Tags: map[string]any{"a": true}},
			wantBody: `{"tags":{"a":true}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newFakeHub(t, func(w http.ResponseWriter, r *http.Request, n int) { answer(w, 200, docTwin) })
			c := h.client(t, service.Config{})
			tw, err := c.UpdateTwin(context.Background(), "pump-7", tt.patch, tt.etag)
			if err != nil {
				t.Fatalf("update twin: %v", err)
			}
			if tw.DeviceID != "pump-7" {
				t.Errorf("twin: got %q, want pump-7", tw.DeviceID)
			}
			r := h.last(t)
			if r.Method != http.MethodPatch || r.RequestURI != "/twins/pump-7?api-version=2021-04-12" {
				t.Errorf("request: got %s %s, want PATCH /twins/pump-7?api-version=2021-04-12", r.Method, r.RequestURI)
			}
			if got := r.Header.Get("If-Match"); got != tt.wantIfMatch {
				t.Errorf("If-Match: got %s, want %s", got, tt.wantIfMatch)
			}
			if string(r.Body) != tt.wantBody {
				t.Errorf("body:\n got %s\nwant %s", r.Body, tt.wantBody)
			}
			checkCommonHeaders(t, r, h.host(), time.Now())
		})
	}
}

func TestClient_Twin_BadInputAndAnswers(t *testing.T) {
	h := newFakeHub(t, func(w http.ResponseWriter, r *http.Request, n int) { answer(w, 200, `{"deviceId":"d1"}`) })
	c := h.client(t, service.Config{})
	ctx := context.Background()
	for name, err := range map[string]error{
		"get empty id": func() error { _, err := c.GetTwin(ctx, ""); return err }(),
		"update empty id": func() error {
			_, err := c.UpdateTwin(ctx, "", iothub.TwinPatch{Tags: map[string]any{"a": 1}}, "")
			return err
		}(),
		"update empty": func() error { _, err := c.UpdateTwin(ctx, "d1", iothub.TwinPatch{}, ""); return err }(),
		"update no desired": func() error {
			_, err := c.UpdateTwin(ctx, "d1", iothub.TwinPatch{Properties: &iothub.TwinPatchProperties{}}, "")
			return err
		}(),
		"update unencodable": func() error {
			_, err := c.UpdateTwin(ctx, "d1", iothub.TwinPatch{Tags: map[string]any{"f": func() {}}}, "")
			return err
		}(),
	} {
		if !errors.Is(err, service.ErrInvalidInput) {
			t.Errorf("%s: got %v, want ErrInvalidInput", name, err)
		}
	}
	if got := h.count.Load(); got != 0 {
		t.Errorf("requests sent: got %d, want 0", got)
	}

	for _, body := range []string{`{}`, `null`, `[]`, `"twin"`, `{"deviceId":5}`, `{"deviceId":"d1","tags":[1]}`} {
		t.Run(body, func(t *testing.T) {
			h := newFakeHub(t, func(w http.ResponseWriter, r *http.Request, n int) { answer(w, 200, body) })
			c := h.client(t, service.Config{})
			_, err := c.GetTwin(ctx, "d1")
			if !errors.Is(err, service.ErrUnexpectedResponse) || !strings.HasPrefix(err.Error(), `get twin "d1": `) {
				t.Errorf("get twin: got %v, want ErrUnexpectedResponse naming the operation", err)
			}
			_, err = c.UpdateTwin(ctx, "d1", iothub.TwinPatch{Tags: map[string]any{"a": 1}}, "")
			if !errors.Is(err, service.ErrUnexpectedResponse) {
				t.Errorf("update twin: got %v, want ErrUnexpectedResponse", err)
			}
		})
	}
}
