package emulator

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/hubflow/hubflow/iothub"
)

func TestPersist_RestartKeepsRegistryTwinsAndCertificates(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	clock := newFakeClock()
	h1, err := Start(context.Background(), Options{DataDir: dir, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	th := &testHub{Hub: h1, clock: clock, timers: newFakeTimers()}
	c := th.rest(t, PolicyOwner)
	wantStatus(t, c.do("PUT", "/devices/d1", `{}`), http.StatusOK)
	wantStatus(t, c.do("PATCH", "/twins/d1", `{"tags":{"site":"north"},"properties":{"desired":{"fw":"2.1"}}}`), http.StatusOK)
	d := th.connect(t, "d1")
	d.subscribe(iothub.TopicTwinResponseFilter)
	d.report(`{"fw":"2.0"}`)
	before := c.do("GET", "/twins/d1", nil).json(t)
	deviceCS := mustDeviceCS(t, th, "d1")
	serviceCS := h1.ServiceConnectionString()
	ca, err := os.ReadFile(h1.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	if err := h1.Close(); err != nil {
		t.Fatal(err)
	}
	d.waitLost()

	for name, want := range map[string]os.FileMode{".": 0o700, caKeyFile: 0o600, serverKeyFile: 0o600, stateFile: 0o600} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: got mode %o, want %o", name, got, want)
		}
	}

	// Restart on other ports: ids, keys, twins and the CA survive.
	th2 := startHub(t, Options{DataDir: dir, Now: clock.Now})
	ca2, err := os.ReadFile(th2.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ca, ca2) {
		t.Fatal("the CA changed across restarts")
	}
	cs1, _ := iothub.ParseConnectionString(serviceCS)
	cs2, _ := iothub.ParseConnectionString(th2.ServiceConnectionString())
	if cs1.SharedAccessKey != cs2.SharedAccessKey {
		t.Fatal("the iothubowner key changed across restarts")
	}
	dcs1, _ := iothub.ParseConnectionString(deviceCS)
	dcs2, _ := iothub.ParseConnectionString(mustDeviceCS(t, th2, "d1"))
	if dcs1.SharedAccessKey != dcs2.SharedAccessKey {
		t.Fatal("the device key changed across restarts")
	}
	after := th2.rest(t, PolicyOwner).do("GET", "/twins/d1", nil).json(t)
	for _, k := range []string{"tags", "version", "etag"} {
		if mustJSON(t, after[k]) != mustJSON(t, before[k]) {
			t.Errorf("%s: got %s, want %s", k, mustJSON(t, after[k]), mustJSON(t, before[k]))
		}
	}
	if mustJSON(t, path(after, "properties", "reported")) != mustJSON(t, path(before, "properties", "reported")) ||
		mustJSON(t, path(after, "properties", "desired")) != mustJSON(t, path(before, "properties", "desired")) {
		t.Errorf("properties changed across restarts:\n got %s\nwant %s", mustJSON(t, after["properties"]), mustJSON(t, before["properties"]))
	}
	if after["connectionState"] != "Disconnected" {
		t.Errorf("got %v after restart, want Disconnected", after["connectionState"])
	}
	// The device reconnects with its old key.
	th2.connect(t, "d1")
}

func TestPersist_Snapshot(t *testing.T) {
	dir := t.TempDir()
	h := startHub(t, Options{DataDir: dir})
	h.mustCreate(t, "d1")
	if err := h.save(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"id":"d1"`)) {
		t.Fatalf("snapshot lacks d1: %.200s", b)
	}
}

func TestPersist_TemporaryDirRemoved(t *testing.T) {
	h, err := Start(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := h.DataDir()
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary data dir %s still exists (%v)", dir, err)
	}
	if err := h.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestStart_PortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = Start(context.Background(), Options{MQTTAddr: ln.Addr().String()})
	var le *ListenError
	if !errors.As(err, &le) || le.Which != "mqtt" || !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("got %v, want a ListenError for mqtt wrapping EADDRINUSE", err)
	}
	if want := "listen mqtt on " + ln.Addr().String() + ": the port is already in use"; len(err.Error()) < len(want) || err.Error()[:len(want)] != want {
		t.Fatalf("got %q, want it to start with %q", err, want)
	}
}

func TestCerts_ServerCertificate(t *testing.T) {
	dir := t.TempDir()
	b, err := loadOrCreateCerts(dir)
	if err != nil {
		t.Fatal(err)
	}
	leaf := b.server.Leaf
	if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != "localhost" || len(leaf.IPAddresses) != 2 {
		t.Fatalf("got SANs %v %v", leaf.DNSNames, leaf.IPAddresses)
	}
	for _, ip := range []string{"127.0.0.1", "::1"} {
		if err := leaf.VerifyHostname(ip); err != nil {
			t.Errorf("certificate does not cover %s: %v", ip, err)
		}
	}
	// A second load reuses both; a damaged server key is replaced.
	b2, err := loadOrCreateCerts(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b2.server.Leaf.Raw, leaf.Raw) {
		t.Fatal("server certificate regenerated although it was valid")
	}
	if err := os.WriteFile(filepath.Join(dir, serverKeyFile), []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	b3, err := loadOrCreateCerts(dir)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(b3.server.Leaf.Raw, leaf.Raw) {
		t.Fatal("damaged server key did not cause a new certificate")
	}
	if _, err := b3.server.Leaf.Verify(x509.VerifyOptions{Roots: b3.pool, DNSName: "localhost"}); err != nil {
		t.Fatalf("new server certificate does not chain to the CA: %v", err)
	}
}

func TestCerts_NoSNI(t *testing.T) {
	h := startHub(t, Options{})
	for _, addr := range []string{h.HTTPSAddr(), h.MQTTAddr()} {
		// Dialling an IP literal sends no SNI; the certificate must still
		// verify for 127.0.0.1.
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: h.CAPool()})
		if err != nil {
			t.Fatalf("TLS to %s without SNI: %v", addr, err)
		}
		c.Close()
	}
}
