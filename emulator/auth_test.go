package emulator

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/hubflow/hubflow/iothub"
)

func TestAuth_ServiceTokens(t *testing.T) {
	h := startHub(t, Options{})
	h.mustCreate(t, "d1")
	owner := h.rest(t, PolicyOwner)
	service := h.rest(t, PolicyService)
	expired, err := iothub.NewServiceSAS(h.HostName(), PolicyOwner, owner.key, h.clock.Now().Add(-time.Second))
	if err != nil {
		t.Fatal(err)
	}
	wrongKey, err := iothub.NewServiceSAS(h.HostName(), PolicyOwner, service.key, h.clock.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	otherHost, err := iothub.NewServiceSAS("myhub.azure-devices.net", PolicyOwner, owner.key, h.clock.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	// The token's host is compared without its port and case.
	plainHost, err := iothub.NewServiceSAS("LOCALHOST", PolicyOwner, owner.key, h.clock.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	deviceTok := h.deviceToken(t, "d1", time.Hour)

	tests := []struct {
		name   string
		token  string
		status int
	}{
		{"valid", owner.token(), http.StatusOK},
		{"host without port", plainHost, http.StatusOK},
		{"missing", "", http.StatusUnauthorized},
		{"garbage", "Bearer abc", http.StatusUnauthorized},
		{"expired", expired, http.StatusUnauthorized},
		{"signed with another policy's key", wrongKey, http.StatusUnauthorized},
		{"another hub", otherHost, http.StatusUnauthorized},
		{"device token", deviceTok, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := owner.doToken(tt.token, "GET", "/twins/d1", nil)
			wantStatus(t, r, tt.status)
			if tt.status == http.StatusUnauthorized {
				if code := r.errorCode(t); code != iothub.CodeIotHubUnauthorizedAccess {
					t.Fatalf("got code %d, want %d", code, iothub.CodeIotHubUnauthorizedAccess)
				}
				if tt.token != "" && strings.Contains(string(r.body), tt.token) {
					t.Fatal("the error body echoes the token")
				}
			}
		})
	}
}

func TestAuth_PolicyRights(t *testing.T) {
	h := startHub(t, Options{})
	h.mustCreate(t, "d1")
	tests := []struct {
		policy, method, path string
		body                 any
		status               int
	}{
		{PolicyRegistryRead, "GET", "/devices/d1", nil, http.StatusOK},
		{PolicyRegistryRead, "PUT", "/devices/d2", `{}`, http.StatusUnauthorized},
		{PolicyRegistryRead, "DELETE", "/devices/d1", nil, http.StatusUnauthorized},
		{PolicyRegistryRead, "POST", "/twins/d1/methods", `{"methodName":"x"}`, http.StatusUnauthorized},
		{PolicyRegistryReadWrite, "PUT", "/devices/d3", `{}`, http.StatusOK},
		{PolicyService, "GET", "/devices", nil, http.StatusUnauthorized},
		{PolicyService, "GET", "/twins/d1", nil, http.StatusOK},
		{PolicyService, "PATCH", "/twins/d1", `{"tags":{"a":1}}`, http.StatusOK},
		{PolicyService, "POST", "/devices/query", `{"query":"SELECT * FROM devices"}`, http.StatusOK},
		{PolicyDevice, "GET", "/twins/d1", nil, http.StatusUnauthorized},
		{PolicyOwner, "GET", "/jobs/v2/query", nil, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.policy+" "+tt.method+" "+tt.path, func(t *testing.T) {
			r := h.rest(t, tt.policy).do(tt.method, tt.path, tt.body)
			wantStatus(t, r, tt.status)
		})
	}
}

func TestAuth_DeviceConnect(t *testing.T) {
	h := startHub(t, Options{})
	h.mustCreate(t, "d1", "d2", "off")
	owner := h.rest(t, PolicyOwner)
	off := decodeDevice(t, owner.do("GET", "/devices/off", nil))
	wantStatus(t, owner.do("PUT", "/devices/off", `{"deviceId":"off","status":"disabled"}`, "If-Match", off.ETag), http.StatusOK)
	devPolicy := h.rest(t, PolicyDevice)
	policyTok, err := iothub.NewSAS(iothub.DeviceResource(h.HostName(), "d1", ""), PolicyDevice, devPolicy.key, h.clock.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	serviceTok, err := iothub.NewSAS(iothub.DeviceResource(h.HostName(), "d1", ""), PolicyService, h.rest(t, PolicyService).key, h.clock.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	user := func(id string) string { return h.HostName() + "/" + id + "/?api-version=2021-04-12" }
	tests := []struct {
		name string
		id   string
		o    deviceOpts
		rc   byte
	}{
		{"valid", "d1", deviceOpts{}, 0},
		{"Go SDK username without ?", "d1", deviceOpts{username: h.HostName() + "/d1/api-version=2020-09-30"}, 0},
		{"device policy token", "d1", deviceOpts{token: policyTok}, 0},
		{"service policy token", "d1", deviceOpts{token: serviceTok}, 5},
		{"expired token", "d1", deviceOpts{token: h.deviceToken(t, "d1", -time.Second)}, 5},
		{"other device's token", "d1", deviceOpts{token: h.deviceToken(t, "d2", time.Hour)}, 5},
		{"garbage password", "d1", deviceOpts{token: "secret"}, 5},
		{"client id differs from username", "d1", deviceOpts{clientID: "d2", username: user("d1")}, 5},
		{"username for another hub", "d1", deviceOpts{username: "myhub.azure-devices.net/d1/?api-version=2021-04-12"}, 5},
		{"unknown device", "ghost", deviceOpts{token: h.deviceToken(t, "d1", time.Hour), username: user("ghost")}, 5},
		{"disabled device", "off", deviceOpts{}, 5},
		{"reserved id", "inline", deviceOpts{token: h.deviceToken(t, "d1", time.Hour), username: user("inline")}, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, tok := h.dial(t, tt.id, tt.o)
			ct := tok.(*paho.ConnectToken)
			if ct.ReturnCode() != tt.rc {
				t.Fatalf("got CONNACK %d (%v), want %d", ct.ReturnCode(), tok.Error(), tt.rc)
			}
			if tt.rc == 0 {
				d.c.Disconnect(0)
			}
		})
	}
}

func TestAuth_DeviceTokenEncodings(t *testing.T) {
	h := startHub(t, Options{})
	h.mustCreate(t, "d:1")
	cs, err := iothub.ParseConnectionString(mustDeviceCS(t, h, "d:1"))
	if err != nil {
		t.Fatal(err)
	}
	// Node's encodeURIComponent and Go's QueryEscape both escape ':' and
	// '/'; the hub verifies over the sr text exactly as sent.
	sr := url.QueryEscape(h.HostName() + "/devices/d:1")
	tok, err := iothub.NewSAS(h.HostName()+"/devices/d:1", "", cs.SharedAccessKey, h.clock.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(tok, "sr="+sr+"&") {
		t.Fatalf("token %q does not carry sr=%s", tok, sr)
	}
	_, ctok := h.dial(t, "d:1", deviceOpts{token: tok})
	if err := ctok.Error(); err != nil {
		t.Fatalf("connect: %v", err)
	}
}

func mustDeviceCS(t testing.TB, h *testHub, id string) string {
	t.Helper()
	s, err := h.DeviceConnectionString(id)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
