package emulator

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/hubflow/hubflow/iothub"
)

// waitTimeout bounds every wait for a network event in tests; it is a
// safety net, not a timing assertion.
const waitTimeout = 10 * time.Second

// fakeClock is an adjustable clock for Options.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fakeTimers replaces time.After for method and connect timeouts: a test
// fires them when it wants the timeout to happen.
type fakeTimers struct {
	mu      sync.Mutex
	pending map[time.Duration][]chan time.Time
	armed   chan time.Duration
}

func newFakeTimers() *fakeTimers {
	return &fakeTimers{pending: map[time.Duration][]chan time.Time{}, armed: make(chan time.Duration, 1024)}
}

func (f *fakeTimers) timer(d time.Duration) (<-chan time.Time, func()) {
	ch := make(chan time.Time, 1)
	f.mu.Lock()
	f.pending[d] = append(f.pending[d], ch)
	f.mu.Unlock()
	select {
	case f.armed <- d:
	default:
	}
	return ch, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		chs := f.pending[d]
		for i, c := range chs {
			if c == ch {
				f.pending[d] = append(chs[:i:i], chs[i+1:]...)
				break
			}
		}
	}
}

// waitArmed blocks until a timer of duration d has been created.
func (f *fakeTimers) waitArmed(t testing.TB, d time.Duration) {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		f.mu.Lock()
		n := len(f.pending[d])
		f.mu.Unlock()
		if n > 0 {
			return
		}
		select {
		case <-f.armed:
		case <-deadline:
			t.Fatalf("no timer of %v was armed", d)
		}
	}
}

// fire expires every timer of duration d armed so far.
func (f *fakeTimers) fire(d time.Duration) {
	f.mu.Lock()
	chs := f.pending[d]
	delete(f.pending, d)
	f.mu.Unlock()
	for _, ch := range chs {
		ch <- time.Time{}
	}
}

type testHub struct {
	*Hub
	clock  *fakeClock
	timers *fakeTimers
}

// startHub starts a hub on loopback with a fake clock and fake timers and
// closes it when the test ends.
func startHub(t testing.TB, opts Options) *testHub {
	t.Helper()
	th := &testHub{clock: newFakeClock(), timers: newFakeTimers()}
	if opts.Now == nil {
		opts.Now = th.clock.Now
	}
	opts.timer = th.timers.timer
	h, err := Start(context.Background(), opts)
	if err != nil {
		t.Fatalf("start hub: %v", err)
	}
	th.Hub = h
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("close hub: %v", err)
		}
	})
	return th
}

// restClient talks to the hub's REST front end with a policy token.
type restClient struct {
	t      testing.TB
	h      *testHub
	policy string
	key    string
	http   *http.Client
}

func (h *testHub) rest(t testing.TB, policy string) *restClient {
	t.Helper()
	csText, err := h.PolicyConnectionString(policy)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := iothub.ParseConnectionString(csText)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: h.CAPool(), ServerName: "localhost"},
		MaxIdleConnsPerHost: 512,
		ForceAttemptHTTP2:   false,
	}
	c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	t.Cleanup(tr.CloseIdleConnections)
	return &restClient{t: t, h: h, policy: policy, key: cs.SharedAccessKey, http: c}
}

func (c *restClient) token() string {
	tok, err := iothub.NewServiceSAS(c.h.HostName(), c.policy, c.key, c.h.clock.Now().Add(time.Hour))
	if err != nil {
		c.t.Fatal(err)
	}
	return tok
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("answer is not a JSON object: %v: %s", err, r.body)
	}
	return m
}

// errorCode returns the errorCode inside the hub's error body.
func (r response) errorCode(t testing.TB) int {
	t.Helper()
	e := iothub.ParseError(r.status, r.header, r.body)
	return e.Code
}

// do sends a request; body may be nil, a string (sent verbatim) or a value
// to encode. headers are name/value pairs.
func (c *restClient) do(method, path string, body any, headers ...string) response {
	c.t.Helper()
	return c.doToken(c.token(), method, path, body, headers...)
}

func (c *restClient) doToken(token, method, path string, body any, headers ...string) response {
	c.t.Helper()
	r, err := c.send(token, method, path, body, headers...)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

// send is doToken without failing the test, for use off the test goroutine.
func (c *restClient) send(token, method, path string, body any, headers ...string) (response, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return response{}, err
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, "https://"+c.h.HTTPSAddr()+path+"?api-version="+iothub.APIVersion, rd)
	if err != nil {
		return response{}, err
	}
	if token != "" {
		req.Header.Set("Authorization", token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := c.http.Do(req)
	if err != nil {
		return response{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return response{}, fmt.Errorf("read body: %w", err)
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		c.t.Errorf("%s %s: Content-Type = %q, want application/json; charset=utf-8", method, path, ct)
	}
	return response{status: res.StatusCode, header: res.Header, body: b}, nil
}

func wantStatus(t testing.TB, r response, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("got status %d, want %d; body %s", r.status, status, r.body)
	}
}

func wantError(t testing.TB, r response, status, code int) {
	t.Helper()
	wantStatus(t, r, status)
	if got := r.errorCode(t); got != code {
		t.Fatalf("got error code %d, want %d; body %s", got, code, r.body)
	}
}

// testDevice is a device on paho, driven by the test.
type testDevice struct {
	t    testing.TB
	id   string
	h    *testHub
	c    paho.Client
	mu   sync.Mutex
	rid  int
	wait map[string]chan paho.Message // twin responses by rid

	desired chan paho.Message
	methods chan paho.Message
	lost    chan error
	// answer, when set, answers method calls from paho's goroutine.
	answer func(name string, payload []byte) (int, []byte)
}

type deviceOpts struct {
	token    string // password; "" signs a fresh device token
	clientID string // "" = device id
	username string // "" = the proper username
	clean    bool
}

// deviceToken signs a token for id with its primary key, valid for ttl on
// the hub clock.
func (h *testHub) deviceToken(t testing.TB, id string, ttl time.Duration) string {
	t.Helper()
	csText, err := h.DeviceConnectionString(id)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := iothub.ParseConnectionString(csText)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := iothub.NewSAS(iothub.DeviceResource(cs.HostName, id, ""), "", cs.SharedAccessKey, h.clock.Now().Add(ttl))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// dial connects device id and returns the device and its CONNECT token.
func (h *testHub) dial(t testing.TB, id string, o deviceOpts) (*testDevice, paho.Token) {
	t.Helper()
	if o.token == "" {
		o.token = h.deviceToken(t, id, time.Hour)
	}
	if o.clientID == "" {
		o.clientID = id
	}
	if o.username == "" {
		o.username = h.HostName() + "/" + id + "/?api-version=2021-04-12&DeviceClientType=hubflow-test"
	}
	d := &testDevice{
		t: t, id: id, h: h,
		wait:    map[string]chan paho.Message{},
		desired: make(chan paho.Message, 64),
		methods: make(chan paho.Message, 1024),
		lost:    make(chan error, 1),
	}
	opts := paho.NewClientOptions().
		AddBroker("ssl://" + h.MQTTAddr()).
		SetClientID(o.clientID).
		SetUsername(o.username).
		SetPassword(o.token).
		SetTLSConfig(&tls.Config{RootCAs: h.CAPool(), ServerName: "localhost"}).
		SetCleanSession(o.clean).
		SetProtocolVersion(4).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(waitTimeout).
		SetKeepAlive(60 * time.Second).
		SetOrderMatters(false).
		SetDefaultPublishHandler(d.onMessage).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			select {
			case d.lost <- err:
			default:
			}
		})
	d.c = paho.NewClient(opts)
	tok := d.c.Connect()
	if !tok.WaitTimeout(waitTimeout) {
		t.Fatalf("connect %s: no CONNACK", id)
	}
	t.Cleanup(func() {
		if d.c.IsConnectionOpen() {
			d.c.Disconnect(0)
		}
	})
	return d, tok
}

// connect connects id and fails the test unless CONNACK is 0.
func (h *testHub) connect(t testing.TB, id string) *testDevice {
	t.Helper()
	d, tok := h.dial(t, id, deviceOpts{})
	if err := tok.Error(); err != nil {
		t.Fatalf("connect %s: %v", id, err)
	}
	return d
}

func (d *testDevice) onMessage(_ paho.Client, m paho.Message) {
	topic := m.Topic()
	switch {
	case strings.HasPrefix(topic, "$iothub/twin/res/"):
		_, rid, _, err := iothub.ParseTwinResponseTopic(topic)
		if err != nil {
			return
		}
		d.mu.Lock()
		ch := d.wait[rid]
		delete(d.wait, rid)
		d.mu.Unlock()
		if ch != nil {
			ch <- m
		}
	case strings.HasPrefix(topic, "$iothub/twin/PATCH/properties/desired/"):
		d.desired <- m
	case strings.HasPrefix(topic, "$iothub/methods/POST/"):
		d.mu.Lock()
		answer := d.answer
		d.mu.Unlock()
		if answer != nil {
			name, rid, err := iothub.ParseMethodRequestTopic(topic)
			if err != nil {
				return
			}
			status, body := answer(name, m.Payload())
			d.c.Publish(iothub.MethodResponseTopic(status, rid), 0, false, body)
			return
		}
		d.methods <- m
	}
}

func (d *testDevice) subscribe(filters ...string) {
	d.t.Helper()
	for _, f := range filters {
		tok := d.c.Subscribe(f, 0, nil)
		if !tok.WaitTimeout(waitTimeout) {
			d.t.Fatalf("subscribe %s: no SUBACK", f)
		}
		if err := tok.Error(); err != nil {
			d.t.Fatalf("subscribe %s: %v", f, err)
		}
	}
}

func (d *testDevice) handleMethods(answer func(name string, payload []byte) (int, []byte)) {
	d.mu.Lock()
	d.answer = answer
	d.mu.Unlock()
}

// twinRequest publishes on topic with a fresh rid and waits for the answer.
func (d *testDevice) twinRequest(prefix string, body []byte) (status int, version int64, payload []byte) {
	d.t.Helper()
	d.mu.Lock()
	d.rid++
	rid := strconv.Itoa(d.rid)
	ch := make(chan paho.Message, 1)
	d.wait[rid] = ch
	d.mu.Unlock()
	d.c.Publish(prefix+"?$rid="+rid, 0, false, body)
	select {
	case m := <-ch:
		st, _, v, err := iothub.ParseTwinResponseTopic(m.Topic())
		if err != nil {
			d.t.Fatalf("twin response topic %q: %v", m.Topic(), err)
		}
		return st, v, m.Payload()
	case <-time.After(waitTimeout):
		d.t.Fatalf("no twin response on %s", prefix)
	}
	return 0, 0, nil
}

func (d *testDevice) twinGet() (int, map[string]any) {
	d.t.Helper()
	st, _, body := d.twinRequest("$iothub/twin/GET/", []byte(" "))
	var m map[string]any
	if st == 200 {
		if err := json.Unmarshal(body, &m); err != nil {
			d.t.Fatalf("twin GET body: %v", err)
		}
	}
	return st, m
}

func (d *testDevice) report(patch string) (int, int64, []byte) {
	d.t.Helper()
	return d.twinRequest("$iothub/twin/PATCH/properties/reported/", []byte(patch))
}

// waitLost waits until the hub closes the device's connection.
func (d *testDevice) waitLost() {
	d.t.Helper()
	select {
	case <-d.lost:
	case <-time.After(waitTimeout):
		d.t.Fatalf("device %s was not disconnected", d.id)
	}
}

// nextDesired waits for a desired-properties notification.
func (d *testDevice) nextDesired() paho.Message {
	d.t.Helper()
	select {
	case m := <-d.desired:
		return m
	case <-time.After(waitTimeout):
		d.t.Fatalf("device %s got no desired notification", d.id)
	}
	return nil
}

// nextMethod waits for a method request the test answers itself.
func (d *testDevice) nextMethod() (name, rid string, payload []byte) {
	d.t.Helper()
	select {
	case m := <-d.methods:
		name, rid, err := iothub.ParseMethodRequestTopic(m.Topic())
		if err != nil {
			d.t.Fatalf("method topic %q: %v", m.Topic(), err)
		}
		return name, rid, m.Payload()
	case <-time.After(waitTimeout):
		d.t.Fatalf("device %s got no method request", d.id)
	}
	return "", "", nil
}

func (d *testDevice) respond(status int, rid string, body string) {
	d.c.Publish(iothub.MethodResponseTopic(status, rid), 0, false, []byte(body))
}

// eventually polls cond until it holds; for state that changes after a
// network event the test cannot observe directly.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// mustCreate registers ids in-process.
func (h *testHub) mustCreate(t testing.TB, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if _, err := h.CreateDevice(id); err != nil {
			t.Fatal(err)
		}
	}
}

// invoke starts a method call in the background and returns its answer
// channel.
func (c *restClient) invoke(id string, body any) <-chan response {
	ch := make(chan response, 1)
	tok := c.token()
	go func() {
		r, err := c.send(tok, "POST", "/twins/"+id+"/methods", body)
		if err != nil {
			r = response{status: -1, body: []byte(err.Error())}
		}
		ch <- r
	}()
	return ch
}

func recv(t testing.TB, ch <-chan response) response {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(waitTimeout):
		t.Fatal("no REST answer")
	}
	return response{}
}

func path(m map[string]any, keys ...string) any {
	var v any = m
	for _, k := range keys {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = mm[k]
	}
	return v
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
