package emulator

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/hubflow/hubflow/iothub"
)

func decodeDevice(t testing.TB, r response) iothub.Device {
	t.Helper()
	var d iothub.Device
	if err := json.Unmarshal(r.body, &d); err != nil {
		t.Fatalf("device JSON: %v: %s", err, r.body)
	}
	return d
}

func TestRegistry_CreateGetUpdateDelete(t *testing.T) {
	h := startHub(t, Options{})
	c := h.rest(t, PolicyOwner)

	// The Node SDK's create body: empty keys mean "generate them".
	create := `{"deviceId":"pump-1","status":"enabled","authentication":{"type":"sas","symmetricKey":{"primaryKey":"","secondaryKey":""}}}`
	r := c.do("PUT", "/devices/pump-1", create)
	wantStatus(t, r, http.StatusOK)
	d := decodeDevice(t, r)
	if d.DeviceID != "pump-1" || d.Status != "enabled" || d.ConnectionState != "Disconnected" {
		t.Fatalf("got %+v, want enabled, disconnected pump-1", d)
	}
	if d.Authentication == nil || d.Authentication.SymmetricKey == nil || !validKey(d.Authentication.SymmetricKey.PrimaryKey) || !validKey(d.Authentication.SymmetricKey.SecondaryKey) {
		t.Fatalf("got authentication %+v, want generated keys", d.Authentication)
	}

	wantError(t, c.do("PUT", "/devices/pump-1", create), http.StatusConflict, iothub.CodeDeviceAlreadyExists)

	got := decodeDevice(t, c.do("GET", "/devices/pump-1", nil))
	if got.Authentication.SymmetricKey.PrimaryKey != d.Authentication.SymmetricKey.PrimaryKey {
		t.Fatalf("GET returned another key than create")
	}

	// Update needs the current etag (quoted or bare) or "*".
	wantError(t, c.do("PUT", "/devices/pump-1", `{"deviceId":"pump-1","status":"disabled"}`, "If-Match", `"bm9wZQ=="`),
		http.StatusPreconditionFailed, iothub.CodePreconditionFailed)
	r = c.do("PUT", "/devices/pump-1", `{"deviceId":"pump-1","status":"disabled","statusReason":"maintenance"}`, "If-Match", `"`+d.ETag+`"`)
	wantStatus(t, r, http.StatusOK)
	upd := decodeDevice(t, r)
	if upd.Status != "disabled" || upd.ETag == d.ETag || upd.StatusReason != "maintenance" {
		t.Fatalf("got %+v, want disabled with a new etag", upd)
	}
	if upd.Authentication.SymmetricKey.PrimaryKey != d.Authentication.SymmetricKey.PrimaryKey {
		t.Fatalf("update without keys changed the keys")
	}

	wantError(t, c.do("PUT", "/devices/other", `{"deviceId":"pump-1"}`), http.StatusBadRequest, iothub.CodeArgumentInvalid)
	wantError(t, c.do("PUT", "/devices/bad%2Fid", `{}`), http.StatusBadRequest, iothub.CodeArgumentInvalid)
	wantError(t, c.do("PUT", "/devices/inline", `{}`), http.StatusBadRequest, iothub.CodeArgumentInvalid)

	r = c.do("DELETE", "/devices/pump-1", nil, "If-Match", `"*"`)
	wantStatus(t, r, http.StatusNoContent)
	wantError(t, c.do("GET", "/devices/pump-1", nil), http.StatusNotFound, iothub.CodeDeviceNotFound)
	wantError(t, c.do("DELETE", "/devices/pump-1", nil), http.StatusNotFound, iothub.CodeDeviceNotFound)
}

func TestRegistry_IDsWithEscapes(t *testing.T) {
	h := startHub(t, Options{})
	c := h.rest(t, PolicyOwner)
	// '#', '?' and '%' are legal in device ids and arrive percent-encoded.
	wantStatus(t, c.do("PUT", "/devices/a%23b%3Fc%25d", `{}`), http.StatusOK)
	d := decodeDevice(t, c.do("GET", "/devices/a%23b%3Fc%25d", nil))
	if d.DeviceID != "a#b?c%d" {
		t.Fatalf("got id %q, want a#b?c%%d", d.DeviceID)
	}
}

func TestRegistry_ListBulkAndStatistics(t *testing.T) {
	h := startHub(t, Options{})
	c := h.rest(t, PolicyOwner)
	h.mustCreate(t, "c", "a")

	bulk := `[{"id":"bulk-1","importMode":"create","authentication":{"type":"sas","symmetricKey":{"primaryKey":"","secondaryKey":""}}},
	          {"status":"disabled","id":"bulk-2","importMode":"create","authentication":{"type":"sas","symmetricKey":{"primaryKey":"","secondaryKey":""}}}]`
	r := c.do("POST", "/devices", bulk)
	wantStatus(t, r, http.StatusOK)
	if m := r.json(t); m["isSuccessful"] != true {
		t.Fatalf("got %s, want isSuccessful", r.body)
	}
	r = c.do("POST", "/devices", `[{"id":"a","importMode":"create"},{"id":"bulk-3","importMode":"create"}]`)
	wantStatus(t, r, http.StatusBadRequest)
	var res bulkResult
	if err := json.Unmarshal(r.body, &res); err != nil {
		t.Fatal(err)
	}
	if res.IsSuccessful || len(res.Errors) != 1 || res.Errors[0].DeviceID != "a" || res.Errors[0].ErrorCode != "DeviceAlreadyExists" {
		t.Fatalf("got %s, want one DeviceAlreadyExists error for a", r.body)
	}

	var list []iothub.Device
	if err := json.Unmarshal(c.do("GET", "/devices", nil).body, &list); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, d := range list {
		ids = append(ids, d.DeviceID)
	}
	if want := `["a","bulk-1","bulk-2","bulk-3","c"]`; mustJSON(t, ids) != want {
		t.Fatalf("got ids %s, want %s", mustJSON(t, ids), want)
	}
	r = c.do("GET", "/statistics/devices", nil)
	if got := string(r.body); got != `{"disabledDeviceCount":1,"enabledDeviceCount":4,"totalDeviceCount":5}` {
		t.Fatalf("got statistics %s", got)
	}
	r = c.do("GET", "/statistics/service", nil)
	if got := string(r.body); got != `{"connectedDeviceCount":0}` {
		t.Fatalf("got service statistics %s", got)
	}
}

func TestHub_CreateDeviceAndConnectionStrings(t *testing.T) {
	h := startHub(t, Options{})
	if _, err := h.CreateDevice("d1"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.CreateDevice("d1"); !errors.Is(err, ErrDeviceExists) {
		t.Fatalf("got %v, want ErrDeviceExists", err)
	}
	if _, err := h.DeviceConnectionString("nope"); !errors.Is(err, ErrDeviceNotFound) {
		t.Fatalf("got %v, want ErrDeviceNotFound", err)
	}
	csText, err := h.DeviceConnectionString("d1")
	if err != nil {
		t.Fatal(err)
	}
	cs, err := iothub.ParseConnectionString(csText)
	if err != nil {
		t.Fatal(err)
	}
	if cs.HostName != h.HostName() || cs.DeviceID != "d1" || cs.GatewayHostName == "" {
		t.Fatalf("got %s, want host %s, device d1 and a gateway", cs.Redacted(), h.HostName())
	}
	svc, err := iothub.ParseConnectionString(h.ServiceConnectionString())
	if err != nil {
		t.Fatal(err)
	}
	if svc.SharedAccessKeyName != PolicyOwner {
		t.Fatalf("got policy %q, want iothubowner", svc.SharedAccessKeyName)
	}
	if _, err := h.PolicyConnectionString("nope"); err == nil {
		t.Fatal("got no error for an unknown policy")
	}
}

func TestRegistry_ValidDeviceID(t *testing.T) {
	tests := []struct {
		id string
		ok bool
	}{
		{"pump-7", true},
		{"a:b.c+d%e_f#g*h?i!j(k)l,m=n@o;p$q'r", true},
		{strings.Repeat("x", 128), true},
		{strings.Repeat("x", 129), false},
		{"", false},
		{"a/b", false},
		{"a b", false},
		{"é", false},
		{"inline", false},
	}
	for _, tt := range tests {
		if err := validDeviceID(tt.id); (err == nil) != tt.ok {
			t.Errorf("validDeviceID(%q): got %v, want ok=%v", tt.id, err, tt.ok)
		}
	}
}

func TestHub_HostWithPort(t *testing.T) {
	tests := []struct{ addr, def, want string }{
		{"127.0.0.1:8443", "443", "localhost:8443"},
		{"127.0.0.1:443", "443", "localhost"},
		{"[::1]:8883", "8883", "localhost"},
		{"[::1]:18883", "8883", "localhost:18883"},
	}
	for _, tt := range tests {
		if got := hostWithPort("localhost", tt.addr, tt.def); got != tt.want {
			t.Errorf("hostWithPort(%q): got %q, want %q", tt.addr, got, tt.want)
		}
	}
}
