package emulator

import (
	"net/http"
	"testing"
	"time"

	"github.com/hubflow/hubflow/iothub"
)

func TestFaults_FailRESTAndThrottle(t *testing.T) {
	h := startHub(t, Options{})
	h.mustCreate(t, "d1")
	c := h.rest(t, PolicyOwner)

	h.Faults().FailREST(500, time.Minute)
	wantError(t, c.do("GET", "/twins/d1", nil), http.StatusInternalServerError, iothub.CodeServerError)
	// Outages come before authentication.
	wantError(t, c.doToken("", "GET", "/devices/d1", nil), http.StatusInternalServerError, iothub.CodeServerError)
	h.clock.Advance(time.Minute)
	wantStatus(t, c.do("GET", "/twins/d1", nil), http.StatusOK)

	h.Faults().FailREST(418, time.Minute) // not a 5xx: taken as 503
	wantError(t, c.do("GET", "/twins/d1", nil), http.StatusServiceUnavailable, iothub.CodeServiceUnavailable)
	h.Faults().ClearAll()

	h.Faults().Throttle(90 * time.Second)
	r := c.do("POST", "/devices/query", `{"query":"SELECT * FROM devices"}`)
	wantError(t, r, http.StatusTooManyRequests, iothub.CodeThrottlingException)
	if ra := r.header.Get("Retry-After"); ra != "90" {
		t.Fatalf("got Retry-After %q, want 90", ra)
	}
	d := h.connect(t, "d1")
	d.subscribe(iothub.TopicTwinResponseFilter)
	if st, _, _ := d.report(`{"a":1}`); st != 429 {
		t.Fatalf("got reported PATCH %d during a throttle storm, want 429", st)
	}
	h.clock.Advance(30 * time.Second)
	if ra := c.do("GET", "/twins/d1", nil).header.Get("Retry-After"); ra != "60" {
		t.Fatalf("got Retry-After %q, want 60", ra)
	}
	h.clock.Advance(time.Minute)
	wantStatus(t, c.do("GET", "/twins/d1", nil), http.StatusOK)
}

func TestFaults_Methods(t *testing.T) {
	h := startHub(t, Options{})
	h.mustCreate(t, "d1")
	c := h.rest(t, PolicyService)
	d := h.connect(t, "d1")
	d.subscribe(iothub.TopicMethodsFilter)
	d.handleMethods(func(string, []byte) (int, []byte) { return 200, []byte(`{}`) })

	t.Run("latency", func(t *testing.T) {
		h.Faults().MethodLatency(2 * time.Second)
		ch := c.invoke("d1", `{"methodName":"m"}`)
		h.timers.waitArmed(t, 2*time.Second)
		select {
		case r := <-ch:
			t.Fatalf("answered %d before the injected latency elapsed", r.status)
		default:
		}
		h.timers.fire(2 * time.Second)
		wantStatus(t, recv(t, ch), http.StatusOK)
		h.Faults().MethodLatency(0)
	})
	t.Run("latency beyond the response timeout", func(t *testing.T) {
		h.Faults().MethodLatency(time.Hour)
		ch := c.invoke("d1", `{"methodName":"m","responseTimeoutInSeconds":5}`)
		h.timers.waitArmed(t, time.Hour)
		h.timers.fire(5 * time.Second)
		wantError(t, recv(t, ch), http.StatusGatewayTimeout, iothub.CodeGatewayTimeout)
		h.Faults().MethodLatency(0)
	})
	t.Run("drop", func(t *testing.T) {
		h.Faults().DropMethods(1)
		ch := c.invoke("d1", `{"methodName":"m","responseTimeoutInSeconds":7}`)
		h.timers.waitArmed(t, 7*time.Second)
		h.timers.fire(7 * time.Second)
		wantError(t, recv(t, ch), http.StatusGatewayTimeout, iothub.CodeGatewayTimeout)
		inv := h.Invocations()
		if last := inv[len(inv)-1]; last.Outcome != OutcomeDropped || last.RID == "" {
			t.Fatalf("got %+v, want a dropped invocation", last)
		}
		h.Faults().DropMethods(0)
		wantStatus(t, recv(t, c.invoke("d1", `{"methodName":"m"}`)), http.StatusOK)
	})
}

func TestFaults_Disconnect(t *testing.T) {
	h := startHub(t, Options{})
	h.mustCreate(t, "d1", "d2", "d3")
	d1 := h.connect(t, "d1")
	d2 := h.connect(t, "d2")
	if h.Faults().DisconnectDevice("d3") {
		t.Fatal("DisconnectDevice reported a device that was not connected")
	}
	if !h.Faults().DisconnectDevice("d1") {
		t.Fatal("DisconnectDevice did not report d1")
	}
	d1.waitLost()
	eventually(t, "d1 is disconnected", func() bool { return h.Stats().ConnectedDevices == 1 })
	if n := h.Faults().DisconnectAll(); n != 1 {
		t.Fatalf("DisconnectAll closed %d, want 1", n)
	}
	d2.waitLost()
	// The sessions survive: a reconnect resumes them.
	h.connect(t, "d1")
}
