package emulator

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hubflow/hubflow/iothub"
)

func TestMethods_Answered(t *testing.T) {
	h := startHub(t, Options{})
	h.mustCreate(t, "d1")
	c := h.rest(t, PolicyService)
	d := h.connect(t, "d1")
	d.subscribe(iothub.TopicMethodsFilter)

	tests := []struct {
		name        string
		body        string
		wantPayload string // what the device receives
		status      int
		answer      string // what the device sends back
		want        string // the HTTP answer
	}{
		{"Node null payload", `{"methodName":"reboot","payload":null,"responseTimeoutInSeconds":30,"connectTimeoutInSeconds":0}`, `null`, 200, `{"Response":"ok"}`, `{"status":200,"payload":{"Response":"ok"}}`},
		{"Go SDK omits payload, capitalised names", `{"MethodName":"reboot","ResponseTimeoutInSeconds":30}`, `null`, 200, `"plain string"`, `{"status":200,"payload":"plain string"}`},
		{"Python empty string payload", `{"methodName":"reboot","payload":""}`, `null`, 404, `{"error":"no handler"}`, `{"status":404,"payload":{"error":"no handler"}}`},
		{"object payload", `{"methodName":"firmwareUpdate","payload":{"fwPackageUri":"https://x/fw.bin"}}`, `{"fwPackageUri":"https://x/fw.bin"}`, 200, ``, `{"status":200,"payload":null}`},
		{"device answers text that is not JSON", `{"methodName":"m","payload":1}`, `1`, 500, `oops`, `{"status":500,"payload":"oops"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ch := c.invoke("d1", tt.body)
			_, rid, payload := d.nextMethod()
			if string(payload) != tt.wantPayload {
				t.Fatalf("device got payload %q, want %q", payload, tt.wantPayload)
			}
			d.respond(tt.status, rid, tt.answer)
			r := recv(t, ch)
			wantStatus(t, r, http.StatusOK)
			if string(r.body) != tt.want {
				t.Fatalf("got %s, want %s", r.body, tt.want)
			}
		})
	}
	inv := h.Invocations()
	if len(inv) != len(tests) {
		t.Fatalf("got %d invocations, want %d", len(inv), len(tests))
	}
	first := inv[0]
	if first.DeviceID != "d1" || first.Method != "reboot" || first.RID == "" || first.Outcome != OutcomeAnswered || first.Status != 200 || first.Sent.IsZero() || first.Answered.IsZero() {
		t.Fatalf("got invocation %+v", first)
	}
	if s := h.Stats(); s.MethodsInvoked != int64(len(tests)) || s.MethodsAnswered != int64(len(tests)) {
		t.Fatalf("got stats %+v", s)
	}
}

func TestMethods_Failures(t *testing.T) {
	h := startHub(t, Options{})
	h.mustCreate(t, "d1", "off")
	c := h.rest(t, PolicyService)
	d := h.connect(t, "d1")
	d.subscribe(iothub.TopicMethodsFilter)
	h.connect(t, "off") // connected but not subscribed to methods: offline for methods

	t.Run("unknown device", func(t *testing.T) {
		wantError(t, recv(t, c.invoke("ghost", `{"methodName":"m"}`)), http.StatusNotFound, iothub.CodeDeviceNotFound)
	})
	t.Run("offline", func(t *testing.T) {
		r := recv(t, c.invoke("off", `{"methodName":"m"}`))
		wantError(t, r, http.StatusNotFound, iothub.CodeDeviceNotOnline)
		e := iothub.ParseError(r.status, r.header, r.body)
		if e.Message != "Timed out waiting for device to connect." || !strings.Contains(string(r.body), `\"timeout\":\"00:00:00\"`) {
			t.Fatalf("got %s", r.body)
		}
		if r.header.Get("iothub-errorcode") != "DeviceNotOnline" {
			t.Fatalf("got iothub-errorcode %q", r.header.Get("iothub-errorcode"))
		}
	})
	t.Run("response timeout", func(t *testing.T) {
		ch := c.invoke("d1", `{"methodName":"slow","responseTimeoutInSeconds":5}`)
		d.nextMethod()
		h.timers.waitArmed(t, 5*time.Second)
		h.timers.fire(5 * time.Second)
		r := recv(t, ch)
		wantError(t, r, http.StatusGatewayTimeout, iothub.CodeGatewayTimeout)
		if e := iothub.ParseError(r.status, r.header, r.body); e.Message != "Timed out waiting for the response from device." {
			t.Fatalf("got message %q", e.Message)
		}
	})
	t.Run("device disconnects during the call", func(t *testing.T) {
		ch := c.invoke("d1", `{"methodName":"m"}`)
		d.nextMethod()
		d.c.Disconnect(0)
		r := recv(t, ch)
		wantError(t, r, http.StatusNotFound, iothub.CodeDeviceNotOnline)
		if e := iothub.ParseError(r.status, r.header, r.body); e.Message != "Device unavailable." {
			t.Fatalf("got message %q, want Device unavailable.", e.Message)
		}
	})
	bad := []struct {
		name, body string
		status     int
		code       int
	}{
		{"payload over 128 KB", `{"methodName":"m","payload":"` + strings.Repeat("x", iothub.MaxMethodPayload) + `"}`, http.StatusRequestEntityTooLarge, iothub.CodeMessageTooLarge},
		{"response timeout too short", `{"methodName":"m","responseTimeoutInSeconds":4}`, http.StatusBadRequest, iothub.CodeArgumentInvalid},
		{"response timeout too long", `{"methodName":"m","responseTimeoutInSeconds":301}`, http.StatusBadRequest, iothub.CodeArgumentInvalid},
		{"negative connect timeout", `{"methodName":"m","connectTimeoutInSeconds":-1}`, http.StatusBadRequest, iothub.CodeArgumentInvalid},
		{"missing name", `{"payload":1}`, http.StatusBadRequest, iothub.CodeArgumentInvalid},
		{"name with a slash", `{"methodName":"a/b"}`, http.StatusBadRequest, iothub.CodeArgumentInvalid},
		{"name with a wildcard", `{"methodName":"a#"}`, http.StatusBadRequest, iothub.CodeArgumentInvalid},
		{"not JSON", `{"methodName":`, http.StatusBadRequest, iothub.CodeIotHubFormatError},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			wantError(t, recv(t, c.invoke("d1", tt.body)), tt.status, tt.code)
		})
	}
}

func TestMethods_ConnectTimeoutWaitsForDevice(t *testing.T) {
	h := startHub(t, Options{})
	h.mustCreate(t, "d1")
	c := h.rest(t, PolicyService)

	ch := c.invoke("d1", `{"methodName":"wake","connectTimeoutInSeconds":60}`)
	h.timers.waitArmed(t, time.Minute)
	d := h.connect(t, "d1")
	d.handleMethods(func(name string, _ []byte) (int, []byte) { return 200, []byte(`"` + name + `"`) })
	d.subscribe(iothub.TopicMethodsFilter)
	r := recv(t, ch)
	wantStatus(t, r, http.StatusOK)
	if string(r.body) != `{"status":200,"payload":"wake"}` {
		t.Fatalf("got %s", r.body)
	}

	// Nobody connects: 404103 with the connect timeout in info.
	h.mustCreate(t, "d2")
	ch = c.invoke("d2", `{"methodName":"wake","connectTimeoutInSeconds":90}`)
	h.timers.waitArmed(t, 90*time.Second)
	h.timers.fire(90 * time.Second)
	r = recv(t, ch)
	wantError(t, r, http.StatusNotFound, iothub.CodeDeviceNotOnline)
	if !strings.Contains(string(r.body), `\"timeout\":\"00:01:30\"`) {
		t.Fatalf("got %s, want info.timeout 00:01:30", r.body)
	}
	inv := h.Invocations()
	if last := inv[len(inv)-1]; last.Outcome != OutcomeOffline || last.RID != "" || !last.Sent.IsZero() {
		t.Fatalf("got %+v, want an offline invocation that was never sent", last)
	}
}

func TestMethods_DevicePayloadForms(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "null"},
		{"  ", "null"},
		{`{"a":1}`, `{"a":1}`},
		{` 42 `, `42`},
		{`not json`, `"not json"`},
		{"\xff", "\"\uFFFD\""},
	}
	for _, tt := range tests {
		if got := string(devicePayload([]byte(tt.in))); got != tt.want {
			t.Errorf("devicePayload(%q): got %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestMethods_CloseEndsWaitingCalls(t *testing.T) {
	h := startHub(t, Options{})
	h.mustCreate(t, "d1")
	c := h.rest(t, PolicyService)
	ch := c.invoke("d1", `{"methodName":"m","connectTimeoutInSeconds":300}`)
	h.timers.waitArmed(t, 300*time.Second)
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	wantError(t, recv(t, ch), http.StatusServiceUnavailable, iothub.CodeServiceUnavailable)
	if inv := h.Invocations(); len(inv) != 1 || inv[0].Outcome != OutcomeCancelled {
		t.Fatalf("got %+v, want one cancelled invocation", inv)
	}
}
