package emulator

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/hubflow/hubflow/iothub"
)

func TestQuota_TierLimits(t *testing.T) {
	tests := []struct {
		tier  string
		units int
		o     op
		rate  float64
		burst int
	}{
		{"S1", 1, opQuery, 20.0 / 60, 3},
		{"S1", 2, opRegistry, 200.0 / 60, 33},
		{"S1", 1, opMethod, 40, 40},
		{"S1", 4, opTwinRead, 100, 100},
		{"S2", 20, opTwinRead, 200, 200},
		{"S2", 2, opTwinUpdate, 50, 50},
		{"S2", 1, opMethod, 120, 120},
		{"S3", 1, opQuery, 1000.0 / 60, 166},
		{"S3", 2, opTwinUpdate, 500, 500},
		{"F1", 1, opTwinUpdate, 50, 50},
	}
	for _, tt := range tests {
		l, err := tierLimits(tt.tier, tt.units)
		if err != nil {
			t.Fatal(err)
		}
		got := l[tt.o]
		if diff := got.perSecond - tt.rate; diff > 1e-9 || diff < -1e-9 || got.burst != tt.burst {
			t.Errorf("%s×%d %s: got %.4f/s burst %d, want %.4f/s burst %d", tt.tier, tt.units, tt.o, got.perSecond, got.burst, tt.rate, tt.burst)
		}
	}
	if _, err := newQuotas("X9", 1); err == nil {
		t.Error("unknown tier accepted")
	}
	if _, err := newQuotas("F1", 2); err == nil {
		t.Error("F1 with 2 units accepted")
	}
	if q, err := newQuotas("", 0); err != nil || q != nil {
		t.Errorf("got %v %v, want quotas off", q, err)
	}
}

func TestQuota_MethodCost(t *testing.T) {
	for _, tt := range []struct{ n, want int }{{0, 1}, {4, 1}, {4096, 1}, {4097, 2}, {128 * 1024, 32}} {
		if got := methodCost(tt.n); got != tt.want {
			t.Errorf("methodCost(%d): got %d, want %d", tt.n, got, tt.want)
		}
	}
}

func TestQuota_Throttles(t *testing.T) {
	h := startHub(t, Options{Tier: "S1", Units: 1})
	h.mustCreate(t, "d1")
	c := h.rest(t, PolicyOwner)

	// S1: 20 queries a minute, three at once.
	for range 3 {
		wantStatus(t, c.do("POST", "/devices/query", `{"query":"SELECT * FROM devices"}`), http.StatusOK)
	}
	r := c.do("POST", "/devices/query", `{"query":"SELECT * FROM devices"}`)
	wantError(t, r, http.StatusTooManyRequests, iothub.CodeThrottlingException)
	if ra := r.header.Get("Retry-After"); ra != "3" {
		t.Fatalf("got Retry-After %q, want 3 (one query per 3 s)", ra)
	}
	h.clock.Advance(3 * time.Second)
	wantStatus(t, c.do("POST", "/devices/query", `{"query":"SELECT * FROM devices"}`), http.StatusOK)

	// Twin reads: 100 a second, REST and MQTT together.
	d := h.connect(t, "d1")
	d.subscribe(iothub.TopicTwinResponseFilter)
	for range 99 {
		wantStatus(t, c.do("GET", "/twins/d1", nil), http.StatusOK)
	}
	if st, _ := d.twinGet(); st != 200 {
		t.Fatalf("got twin GET %d, want 200", st)
	}
	wantError(t, c.do("GET", "/twins/d1", nil), http.StatusTooManyRequests, iothub.CodeThrottlingException)
	st, _, body := d.twinRequest("$iothub/twin/GET/", []byte(" "))
	var e struct{ ErrorCode int }
	if err := json.Unmarshal(body, &e); st != 429 || err != nil || e.ErrorCode != iothub.CodeThrottlingException {
		t.Fatalf("got MQTT twin GET %d %s, want 429 with errorCode 429001", st, body)
	}
	if s := h.Stats(); s.Throttled != 3 {
		t.Fatalf("got %d throttled, want 3", s.Throttled)
	}

	// Methods: 40 units of 4 KB a second; a 128 KB payload costs 32.
	d.subscribe(iothub.TopicMethodsFilter)
	d.handleMethods(func(string, []byte) (int, []byte) { return 200, nil })
	bigPayload := `{"methodName":"m","payload":"` + randomText(120*1024) + `"}`
	wantStatus(t, recv(t, c.invoke("d1", bigPayload)), http.StatusOK)
	wantError(t, recv(t, c.invoke("d1", bigPayload)), http.StatusTooManyRequests, iothub.CodeThrottlingException)
}

func randomText(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a' + byte(i%26)
	}
	return string(b)
}

func TestQuota_OffByDefault(t *testing.T) {
	h := startHub(t, Options{})
	h.mustCreate(t, "d1")
	c := h.rest(t, PolicyOwner)
	for range 30 {
		wantStatus(t, c.do("POST", "/devices/query", `{"query":"SELECT * FROM devices"}`), http.StatusOK)
	}
}

func TestStart_RejectsBadOptions(t *testing.T) {
	tests := []struct {
		name string
		o    Options
	}{
		{"unknown tier", Options{Tier: "P1"}},
		{"remote https", Options{HTTPSAddr: "0.0.0.0:0"}},
		{"remote mqtt", Options{MQTTAddr: ":0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := Start(context.Background(), tt.o)
			if err == nil {
				h.Close()
				t.Fatal("got no error")
			}
		})
	}
}
