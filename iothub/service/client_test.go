package service_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hubflow/hubflow/iothub"
	"github.com/hubflow/hubflow/iothub/service"
)

// testKey is the policy key of every fake hub; tests look for it in error
// strings.
var testKey = base64.StdEncoding.EncodeToString([]byte("hubflow-test-policy-key-0123456789"))

const testPolicy = "service"

// recorded is one request as the fake hub saw it.
type recorded struct {
	Method     string
	RequestURI string
	Header     http.Header
	Body       []byte
	Time       time.Time
}

// fakeHub is a TLS server that records requests and answers with respond.
type fakeHub struct {
	srv     *httptest.Server
	mu      sync.Mutex
	reqs    []recorded
	count   atomic.Int64
	respond func(w http.ResponseWriter, r *http.Request, n int)
}

func newFakeHub(t testing.TB, respond func(w http.ResponseWriter, r *http.Request, n int)) *fakeHub {
	t.Helper()
	h := &fakeHub{respond: respond}
	h.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		n := int(h.count.Add(1)) - 1
		h.mu.Lock()
		h.reqs = append(h.reqs, recorded{Method: r.Method, RequestURI: r.RequestURI, Header: r.Header.Clone(), Body: body, Time: time.Now()})
		h.mu.Unlock()
		h.respond(w, r, n)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *fakeHub) host() string { return h.srv.Listener.Addr().String() }

func (h *fakeHub) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(h.srv.Certificate())
	return p
}

func (h *fakeHub) requests() []recorded {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]recorded(nil), h.reqs...)
}

func (h *fakeHub) last(t testing.TB) recorded {
	t.Helper()
	rs := h.requests()
	if len(rs) == 0 {
		t.Fatal("got no request, want one")
	}
	return rs[len(rs)-1]
}

func (h *fakeHub) connString() *iothub.ConnectionString {
	return &iothub.ConnectionString{HostName: h.host(), SharedAccessKeyName: testPolicy, SharedAccessKey: testKey}
}

// client returns a Client for h; cfg's ConnectionString and RootCAs are
// filled in.
func (h *fakeHub) client(t testing.TB, cfg service.Config) *service.Client {
	t.Helper()
	cfg.ConnectionString = h.connString()
	if cfg.HTTPClient == nil {
		cfg.RootCAs = h.pool()
	}
	c, err := service.New(cfg)
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// answer writes a JSON body with status.
func answer(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

// checkCommonHeaders verifies what every request carries: a service SAS
// signed over the raw host with the policy key, a Request-Id, the user
// agent, and Content-Type exactly when there is a body.
func checkCommonHeaders(t testing.TB, r recorded, host string, now time.Time) {
	t.Helper()
	tok, err := iothub.ParseSAS(r.Header.Get("Authorization"))
	if err != nil {
		t.Fatalf("parse Authorization: %v", err)
	}
	if err := tok.Verify(testKey, now); err != nil {
		t.Errorf("verify Authorization: got %v, want nil", err)
	}
	if tok.RawResource != host {
		t.Errorf("sr: got %q, want %q", tok.RawResource, host)
	}
	if tok.KeyName != testPolicy {
		t.Errorf("skn: got %q, want %q", tok.KeyName, testPolicy)
	}
	if id := r.Header.Get("Request-Id"); len(id) != 36 || strings.Count(id, "-") != 4 {
		t.Errorf("Request-Id: got %q, want a UUID", id)
	}
	if ua := r.Header.Get("User-Agent"); !strings.HasPrefix(ua, "hubflow/") {
		t.Errorf("User-Agent: got %q, want hubflow/<version>", ua)
	}
	ct, hasCT := r.Header["Content-Type"]
	switch {
	case len(r.Body) > 0 && (!hasCT || ct[0] != "application/json; charset=utf-8"):
		t.Errorf("Content-Type with a body: got %q, want %q", ct, "application/json; charset=utf-8")
	case len(r.Body) == 0 && hasCT:
		t.Errorf("Content-Type without a body: got %q, want none", ct)
	}
}

func TestNew_Config(t *testing.T) {
	good := &iothub.ConnectionString{HostName: "hub.example:8443", SharedAccessKeyName: "service", SharedAccessKey: testKey}
	insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	tests := []struct {
		name string
		cfg  service.Config
		want string // substring of the error; "" means success
	}{
		{"ok", service.Config{ConnectionString: good}, ""},
		{"custom client", service.Config{ConnectionString: good, HTTPClient: &http.Client{}}, ""},
		{"no connection string", service.Config{}, "connection string is missing"},
		{"device string", service.Config{ConnectionString: &iothub.ConnectionString{HostName: "h", DeviceID: "d", SharedAccessKey: testKey}}, "device connection string"},
		{"no policy", service.Config{ConnectionString: &iothub.ConnectionString{HostName: "h", SharedAccessKey: testKey}}, "SharedAccessKeyName"},
		{"no key", service.Config{ConnectionString: &iothub.ConnectionString{HostName: "h", SharedAccessKeyName: "service"}}, "SharedAccessKey"},
		{"bad key", service.Config{ConnectionString: &iothub.ConnectionString{HostName: "h", SharedAccessKeyName: "service", SharedAccessKey: "not base64!"}}, "not valid base64"},
		{"host with path", service.Config{ConnectionString: &iothub.ConnectionString{HostName: "h/evil", SharedAccessKeyName: "service", SharedAccessKey: testKey}}, "not a host name"},
		{"host with scheme", service.Config{ConnectionString: &iothub.ConnectionString{HostName: "http://h", SharedAccessKeyName: "service", SharedAccessKey: testKey}}, "not a host name"},
		{"roots and client", service.Config{ConnectionString: good, HTTPClient: &http.Client{}, RootCAs: x509.NewCertPool()}, "RootCAs cannot be combined"},
		{"insecure client", service.Config{ConnectionString: good, HTTPClient: insecure}, "skips TLS verification"},
		{"negative conns", service.Config{ConnectionString: good, MaxConns: -1}, "MaxConns"},
		{"negative ttl", service.Config{ConnectionString: good, TokenTTL: -time.Second}, "TokenTTL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := service.New(tt.cfg)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("got error %v, want nil", err)
				}
				c.Close()
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got error %v, want one containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), testKey) {
				t.Errorf("error %q contains the key", err)
			}
		})
	}
}

func TestClient_Token(t *testing.T) {
	h := newFakeHub(t, func(w http.ResponseWriter, r *http.Request, n int) { answer(w, 200, `{"deviceId":"d1"}`) })
	var mu sync.Mutex
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	c := h.client(t, service.Config{Now: clock, TokenTTL: time.Hour})
	ctx := context.Background()

	get := func() *iothub.SAS {
		t.Helper()
		if _, err := c.GetTwin(ctx, "d1"); err != nil {
			t.Fatalf("get twin: %v", err)
		}
		tok, err := iothub.ParseSAS(h.last(t).Header.Get("Authorization"))
		if err != nil {
			t.Fatalf("parse token: %v", err)
		}
		if err := tok.Verify(testKey, clock()); err != nil {
			t.Fatalf("verify token: %v", err)
		}
		return tok
	}
	first := get()
	if want := time.Unix(1_700_000_000+3600, 0).UTC(); !first.Expiry.Equal(want) {
		t.Errorf("expiry: got %v, want %v", first.Expiry, want)
	}
	advance(54 * time.Minute) // 6 minutes left: still cached
	if tok := get(); !tok.Expiry.Equal(first.Expiry) {
		t.Errorf("after 54m: got a new token expiring %v, want the cached one (%v)", tok.Expiry, first.Expiry)
	}
	advance(2 * time.Minute) // 4 minutes left: renewed
	if tok := get(); !tok.Expiry.Equal(clock().Add(time.Hour).UTC()) {
		t.Errorf("after 56m: got expiry %v, want %v", tok.Expiry, clock().Add(time.Hour).UTC())
	}
}

func TestClient_Close(t *testing.T) {
	h := newFakeHub(t, func(w http.ResponseWriter, r *http.Request, n int) { answer(w, 200, `{"deviceId":"d1"}`) })
	c := h.client(t, service.Config{})
	if _, err := c.GetTwin(context.Background(), "d1"); err != nil {
		t.Fatalf("get twin: %v", err)
	}
	c.Close()
	if _, err := c.GetTwin(context.Background(), "d1"); err != nil {
		t.Fatalf("get twin after Close: got %v, want nil", err)
	}
}

func TestClient_RequestTimeout(t *testing.T) {
	release := make(chan struct{})
	h := newFakeHub(t, func(w http.ResponseWriter, r *http.Request, n int) {
		<-release
		answer(w, 200, `{"deviceId":"d1"}`)
	})
	t.Cleanup(func() { close(release) })
	c := h.client(t, service.Config{RequestTimeout: 50 * time.Millisecond})
	_, err := c.GetTwin(context.Background(), "d1")
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no answer from the hub within 50ms") {
		t.Fatalf("got %v, want a deadline error naming the 50ms bound", err)
	}
}

// TestClient_UntrustedServer checks that a hub whose certificate is not
// signed by a trusted root is refused.
func TestClient_UntrustedServer(t *testing.T) {
	h := newFakeHub(t, func(w http.ResponseWriter, r *http.Request, n int) { answer(w, 200, `{"deviceId":"d1"}`) })
	c, err := service.New(service.Config{ConnectionString: h.connString(), RootCAs: x509.NewCertPool()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.GetTwin(context.Background(), "d1")
	var uerr x509.UnknownAuthorityError
	if !errors.As(err, &uerr) {
		t.Fatalf("got %v, want an unknown-authority error", err)
	}
	if got := h.count.Load(); got != 0 {
		t.Errorf("requests served: got %d, want 0", got)
	}
}
