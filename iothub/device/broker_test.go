package device_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/hubflow/hubflow/iothub"
)

// testHost is the hub name in connection strings; the socket address goes in
// GatewayHostName, as it would with a real gateway.
const testHost = "testhub.azure-devices.net"

// testBroker is a mochi broker with a TLS listener on 127.0.0.1:0 and a hook
// that plays a minimal hub: it checks SAS passwords, records what devices
// send, and answers twin GETs and reported PATCHes.
type testBroker struct {
	srv  *mqtt.Server
	addr string
	pool *x509.CertPool
	ca   []byte // the CA certificate, DER
	hub  *hubHook
	// resumed counts TLS handshakes that resumed an earlier session.
	resumed *atomic.Int32
}

type connectRec struct {
	ClientID, Username, Password string
	Clean                        bool
	Accepted                     bool
}

type publishRec struct {
	ClientID, Topic string
	Payload         []byte
}

// hubHook records and answers; every field after mu is guarded by it.
type hubHook struct {
	mqtt.HookBase
	srv  *mqtt.Server
	keys map[string]string // device id → key
	// anyKey, when set, is the key of every device id not in keys.
	anyKey string

	mu         sync.Mutex
	changed    chan struct{}
	refuse     bool
	connects   []connectRec
	subscribes [][]string // filters of each SUBSCRIBE packet
	publishes  []publishRec
	desired    map[string]any
	reported   map[string]any
	reportedV  int64
	// twinStatus, when not 0, answers twin requests with it and errBody.
	twinStatus int
	errBody    []byte
	// silent, when set, leaves twin requests unanswered.
	silent bool
}

func (h *hubHook) ID() string { return "testhub" }

func (h *hubHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnSubscribe, mqtt.OnPublish:
		return true
	}
	return false
}

func (h *hubHook) signalLocked() {
	close(h.changed)
	h.changed = make(chan struct{})
}

func (h *hubHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	rec := connectRec{
		ClientID: pk.Connect.ClientIdentifier,
		Username: string(pk.Connect.Username),
		Password: string(pk.Connect.Password),
		Clean:    pk.Connect.Clean,
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	rec.Accepted = !h.refuse && h.verify(rec)
	h.connects = append(h.connects, rec)
	h.signalLocked()
	return rec.Accepted
}

func (h *hubHook) verify(rec connectRec) bool {
	key, ok := h.keys[rec.ClientID]
	if !ok {
		if h.anyKey == "" {
			return false
		}
		key = h.anyKey
	}
	sas, err := iothub.ParseSAS(rec.Password)
	if err != nil || sas.KeyName != "" {
		return false
	}
	return sas.Verify(key, time.Now()) == nil && sas.Covers(iothub.DeviceResource(testHost, rec.ClientID, ""))
}

func (h *hubHook) OnACLCheck(*mqtt.Client, string, bool) bool { return true }

func (h *hubHook) OnSubscribe(_ *mqtt.Client, pk packets.Packet) packets.Packet {
	var filters []string
	for _, f := range pk.Filters {
		filters = append(filters, f.Filter)
	}
	h.mu.Lock()
	h.subscribes = append(h.subscribes, filters)
	h.signalLocked()
	h.mu.Unlock()
	return pk
}

func (h *hubHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.publishes = append(h.publishes, publishRec{cl.ID, pk.TopicName, append([]byte(nil), pk.Payload...)})
	h.signalLocked()
	dt, err := iothub.ParseDeviceTopic(pk.TopicName, cl.ID)
	if err != nil || h.silent {
		return pk, packets.CodeSuccessIgnore
	}
	switch {
	case dt.Kind != iothub.TopicTwinGet && dt.Kind != iothub.TopicTwinReported:
	case h.twinStatus != 0:
		write(cl, iothub.TwinResponseTopic(h.twinStatus, dt.RID, 0), h.errBody)
	case dt.Kind == iothub.TopicTwinGet:
		d := copyMap(h.desired)
		r := copyMap(h.reported)
		r["$version"] = h.reportedV
		body, _ := json.Marshal(map[string]any{"desired": d, "reported": r})
		write(cl, iothub.TwinResponseTopic(200, dt.RID, 0), body)
	case dt.Kind == iothub.TopicTwinReported:
		var patch map[string]any
		if json.Unmarshal(pk.Payload, &patch) != nil {
			write(cl, iothub.TwinResponseTopic(400, dt.RID, 0), []byte(`{"errorCode":400004,"message":"bad patch"}`))
			break
		}
		for k, v := range patch {
			h.reported[k] = v
		}
		h.reportedV++
		write(cl, iothub.TwinResponseTopic(204, dt.RID, h.reportedV), nil)
	}
	return pk, packets.CodeSuccessIgnore
}

func copyMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// write sends a QoS 0 PUBLISH straight to one client, as the hub does.
func write(cl *mqtt.Client, topic string, body []byte) {
	_ = cl.WritePacket(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish},
		TopicName:   topic,
		Payload:     body,
	})
}

// newTestBroker starts a broker whose devices are the ids in keys.
func newTestBroker(t testing.TB, keys map[string]string) *testBroker {
	t.Helper()
	serverCert, pool, ca := testCerts(t)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := mqtt.New(&mqtt.Options{
		Logger:                 quiet,
		SysTopicResendInterval: 3600,
		InlineClient:           true,
	})
	srv.Options.Capabilities.MaximumSessionExpiryInterval = 3600
	srv.Options.Capabilities.MaximumClientWritesPending = 64
	hook := &hubHook{
		srv: srv, keys: keys, changed: make(chan struct{}),
		desired:   map[string]any{"$version": float64(1)},
		reported:  map[string]any{},
		reportedV: 1,
	}
	if err := srv.AddHook(hook, nil); err != nil {
		t.Fatalf("add hook: %v", err)
	}
	resumed := new(atomic.Int32)
	l := listeners.NewTCP(listeners.Config{ID: "tls", Address: "127.0.0.1:0", TLSConfig: &tls.Config{
		Certificates: []tls.Certificate{serverCert},
		MinVersion:   tls.VersionTLS12,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if cs.DidResume {
				resumed.Add(1)
			}
			return nil
		},
	}})
	if err := srv.AddListener(l); err != nil {
		t.Fatalf("add listener: %v", err)
	}
	if err := srv.Serve(); err != nil { // returns once its goroutines run
		t.Fatalf("serve: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return &testBroker{srv: srv, addr: l.Address(), pool: pool, ca: ca, hub: hook, resumed: resumed}
}

// connString is the connection string of device id with key, dialling the
// broker through GatewayHostName.
func (b *testBroker) connString(t testing.TB, id, key string) *iothub.ConnectionString {
	t.Helper()
	cs, err := iothub.ParseConnectionString("HostName=" + testHost + ";DeviceId=" + id + ";SharedAccessKey=" + key + ";GatewayHostName=" + b.addr)
	if err != nil {
		t.Fatalf("parse connection string: %v", err)
	}
	return cs
}

// waitFor blocks until cond (called with the hook locked) holds, failing
// the test after a generous deadline.
func (b *testBroker) waitFor(t testing.TB, what string, cond func(h *hubHook) bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		b.hub.mu.Lock()
		ok := cond(b.hub)
		ch := b.hub.changed
		b.hub.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// client returns the live broker-side client for id.
func (b *testBroker) client(t testing.TB, id string) *mqtt.Client {
	t.Helper()
	cl, ok := b.srv.Clients.Get(id)
	if !ok || cl.Closed() {
		t.Fatalf("device %s is not connected to the broker", id)
	}
	return cl
}

// sendMethod delivers a method call to device id.
func (b *testBroker) sendMethod(t testing.TB, id, name, rid string, payload []byte) {
	t.Helper()
	write(b.client(t, id), iothub.MethodRequestTopic(name, rid), payload)
}

// methodResponse waits for the device's answer to rid.
func (b *testBroker) methodResponse(t testing.TB, rid string) (status int, body []byte) {
	t.Helper()
	b.waitFor(t, "method response "+rid, func(h *hubHook) bool {
		for _, p := range h.publishes {
			if s, r, err := iothub.ParseMethodResponseTopic(p.Topic); err == nil && r == rid {
				status, body = s, p.Payload
				return true
			}
		}
		return false
	})
	return status, body
}

func (b *testBroker) connects() []connectRec {
	b.hub.mu.Lock()
	defer b.hub.mu.Unlock()
	return append([]connectRec(nil), b.hub.connects...)
}

func (b *testBroker) publishes() []publishRec {
	b.hub.mu.Lock()
	defer b.hub.mu.Unlock()
	return append([]publishRec(nil), b.hub.publishes...)
}

func (b *testBroker) subscribes() [][]string {
	b.hub.mu.Lock()
	defer b.hub.mu.Unlock()
	return append([][]string(nil), b.hub.subscribes...)
}

// testKey is a fixed device key (32 bytes, base64).
func testKey(seed byte) string {
	k := make([]byte, 32)
	for i := range k {
		k[i] = seed + byte(i)
	}
	return base64.StdEncoding.EncodeToString(k)
}

// testCerts makes a CA and a server certificate for localhost and
// 127.0.0.1, and returns the server certificate, a pool with the CA and
// the CA certificate (DER).
func testCerts(t testing.TB) (tls.Certificate, *x509.CertPool, []byte) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generate CA key: %v", err)
	}
	ca := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "hubflow test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatalf("create CA: %v", err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatalf("create certificate: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool, caDER
}

// hasPrefixTopic reports whether some publish by id has a topic with prefix.
func hasPrefixTopic(ps []publishRec, prefix string) bool {
	for _, p := range ps {
		if strings.HasPrefix(p.Topic, prefix) {
			return true
		}
	}
	return false
}
