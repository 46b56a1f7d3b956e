package emulator

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/hubflow/hubflow/iothub"
)

func TestMQTT_TopicViolationsDisconnect(t *testing.T) {
	h := startHub(t, Options{})
	h.mustCreate(t, "d1", "d2")
	tests := []struct {
		name string
		act  func(d *testDevice)
	}{
		{"subscribe to another device's C2D", func(d *testDevice) { d.c.Subscribe("devices/d2/messages/devicebound/#", 0, nil) }},
		{"subscribe to a wildcard", func(d *testDevice) { d.c.Subscribe("#", 0, nil) }},
		{"subscribe to $iothub/twin/res/+", func(d *testDevice) { d.c.Subscribe("$iothub/twin/res/+", 0, nil) }},
		{"publish another device's telemetry", func(d *testDevice) { d.c.Publish("devices/d2/messages/events/", 1, false, "x") }},
		{"publish on a desired topic", func(d *testDevice) { d.c.Publish("$iothub/twin/PATCH/properties/desired/?$version=1", 0, false, "{}") }},
		{"publish a method request", func(d *testDevice) { d.c.Publish("$iothub/methods/POST/reboot/?$rid=1", 0, false, "null") }},
		{"publish at QoS 2", func(d *testDevice) { d.c.Publish("devices/d1/messages/events/", 2, false, "x") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := h.connect(t, "d1")
			tt.act(d)
			d.waitLost()
		})
	}
	t.Run("own topics are fine", func(t *testing.T) {
		d := h.connect(t, "d1")
		d.subscribe(iothub.TopicMethodsFilter, iothub.TopicTwinResponseFilter, iothub.TopicDesiredFilter, "devices/d1/messages/devicebound/#")
		d.subscribe(iothub.TopicMethodsFilter) // a repeated SUBSCRIBE is accepted
		if tok := d.c.Publish("devices/d1/messages/events/a=b", 1, false, "x"); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
			t.Fatalf("telemetry publish: %v", tok.Error())
		}
		if st, _ := d.twinGet(); st != 200 {
			t.Fatalf("got twin GET status %d, want 200", st)
		}
	})
}

func TestMQTT_PersistentSessionKeepsSubscriptions(t *testing.T) {
	h := startHub(t, Options{})
	h.mustCreate(t, "d1")
	d := h.connect(t, "d1")
	d.subscribe(iothub.TopicMethodsFilter, iothub.TopicTwinResponseFilter)
	d.c.Disconnect(0)

	// A token renewal: new connection, CleanSession 0, and no SUBSCRIBE.
	d2, tok := h.dial(t, "d1", deviceOpts{})
	if err := tok.Error(); err != nil {
		t.Fatal(err)
	}
	if !tok.(*paho.ConnectToken).SessionPresent() {
		t.Fatal("got sessionPresent false, want true")
	}
	d2.handleMethods(func(name string, _ []byte) (int, []byte) { return 200, []byte(`"` + name + `"`) })
	r := recv(t, h.rest(t, PolicyService).invoke("d1", map[string]any{"methodName": "reboot"}))
	wantStatus(t, r, http.StatusOK)
	if st, _ := d2.twinGet(); st != 200 {
		t.Fatalf("got twin GET status %d after reconnect, want 200", st)
	}

	// CleanSession 1 starts over.
	d2.c.Disconnect(0)
	d3, tok := h.dial(t, "d1", deviceOpts{clean: true})
	if err := tok.Error(); err != nil {
		t.Fatal(err)
	}
	if tok.(*paho.ConnectToken).SessionPresent() {
		t.Fatal("got sessionPresent true for a clean session")
	}
	wantError(t, recv(t, h.rest(t, PolicyService).invoke("d1", map[string]any{"methodName": "reboot"})), http.StatusNotFound, iothub.CodeDeviceNotOnline)
	d3.c.Disconnect(0)
}

func TestMQTT_TakeOver(t *testing.T) {
	h := startHub(t, Options{})
	h.mustCreate(t, "d1")
	old := h.connect(t, "d1")
	old.subscribe(iothub.TopicMethodsFilter)
	d := h.connect(t, "d1")
	old.waitLost()
	d.handleMethods(func(string, []byte) (int, []byte) { return 201, []byte(`{"new":true}`) })
	r := recv(t, h.rest(t, PolicyService).invoke("d1", map[string]any{"methodName": "m"}))
	wantStatus(t, r, http.StatusOK)
	if got := string(r.body); got != `{"status":201,"payload":{"new":true}}` {
		t.Fatalf("got %s", got)
	}
	if s := h.Stats(); s.ConnectedDevices != 1 {
		t.Fatalf("got %d connected devices, want 1", s.ConnectedDevices)
	}
}

func TestMQTT_ConnectionStateAndActivity(t *testing.T) {
	h := startHub(t, Options{})
	h.mustCreate(t, "d1")
	c := h.rest(t, PolicyOwner)
	tw := c.do("GET", "/twins/d1", nil).json(t)
	if tw["connectionState"] != "Disconnected" {
		t.Fatalf("got %v, want Disconnected", tw["connectionState"])
	}
	d := h.connect(t, "d1")
	tw = c.do("GET", "/twins/d1", nil).json(t)
	if tw["connectionState"] != "Connected" || tw["lastActivityTime"] != iothub.FormatTime(h.clock.Now()) {
		t.Fatalf("got state %v activity %v, want Connected at %s", tw["connectionState"], tw["lastActivityTime"], iothub.FormatTime(h.clock.Now()))
	}
	h.clock.Advance(time.Minute)
	d.subscribe(iothub.TopicTwinResponseFilter)
	d.twinGet()
	dev := decodeDevice(t, c.do("GET", "/devices/d1", nil))
	if dev.ConnectionState != "Connected" || dev.LastActivityTime != iothub.FormatTime(h.clock.Now()) {
		t.Fatalf("got %s at %s, want Connected at %s", dev.ConnectionState, dev.LastActivityTime, iothub.FormatTime(h.clock.Now()))
	}
	d.c.Disconnect(0)
	eventually(t, "the device shows Disconnected", func() bool {
		return c.do("GET", "/twins/d1", nil).json(t)["connectionState"] == "Disconnected"
	})
	if s := h.Stats(); s.ConnectedDevices != 0 {
		t.Fatalf("got %d connected devices, want 0", s.ConnectedDevices)
	}
}

func TestMQTT_TokenExpiryClosesSession(t *testing.T) {
	h := startHub(t, Options{})
	h.mustCreate(t, "d1")
	d, tok := h.dial(t, "d1", deviceOpts{token: h.deviceToken(t, "d1", time.Minute)})
	if err := tok.Error(); err != nil {
		t.Fatal(err)
	}
	d.subscribe(iothub.TopicMethodsFilter)
	h.sweep()
	if !d.c.IsConnectionOpen() {
		t.Fatal("connection closed before the token expired")
	}
	h.clock.Advance(time.Minute)
	h.sweep()
	d.waitLost()
	// The SDK reconnects with a fresh token and keeps its session.
	_, tok = h.dial(t, "d1", deviceOpts{})
	if err := tok.Error(); err != nil || !tok.(*paho.ConnectToken).SessionPresent() {
		t.Fatalf("reconnect: err %v, session present %v; want a resumed session", err, tok.(*paho.ConnectToken).SessionPresent())
	}
}

func TestMQTT_DeadlineBeforeConnect(t *testing.T) {
	h := startHub(t, Options{connectDeadline: 50 * time.Millisecond})
	c, err := tls.Dial("tcp", h.MQTTAddr(), &tls.Config{RootCAs: h.CAPool(), ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(waitTimeout))
	// Send nothing: the hub must close the idle connection.
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("got data, want the connection closed")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the hub kept an idle connection open without CONNECT")
	}
}

func TestMQTT_ProtocolVersion(t *testing.T) {
	h := startHub(t, Options{})
	h.mustCreate(t, "d1")
	opts := paho.NewClientOptions().AddBroker("ssl://" + h.MQTTAddr()).SetClientID("d1").
		SetUsername(h.HostName() + "/d1/?api-version=2021-04-12").SetPassword(h.deviceToken(t, "d1", time.Hour)).
		SetTLSConfig(&tls.Config{RootCAs: h.CAPool(), ServerName: "localhost"}).SetProtocolVersion(3)
	c := paho.NewClient(opts)
	tok := c.Connect()
	tok.WaitTimeout(waitTimeout)
	if rc := tok.(*paho.ConnectToken).ReturnCode(); rc != 1 {
		t.Fatalf("got CONNACK %d for MQTT 3.1, want 1 (unacceptable protocol version)", rc)
	}
}

func TestMQTT_IdentityChangesEndTheConnection(t *testing.T) {
	h := startHub(t, Options{})
	h.mustCreate(t, "del", "dis")
	c := h.rest(t, PolicyOwner)

	d := h.connect(t, "del")
	d.subscribe(iothub.TopicMethodsFilter)
	wantStatus(t, c.do("DELETE", "/devices/del", nil, "If-Match", "*"), http.StatusNoContent)
	d.waitLost()
	// Registered again, the id starts with a clean session and new keys.
	wantStatus(t, c.do("PUT", "/devices/del", `{}`), http.StatusOK)
	_, tok := h.dial(t, "del", deviceOpts{})
	if err := tok.Error(); err != nil {
		t.Fatal(err)
	}
	if tok.(*paho.ConnectToken).SessionPresent() {
		t.Fatal("a re-created device inherited the deleted device's session")
	}

	d = h.connect(t, "dis")
	dev := decodeDevice(t, c.do("GET", "/devices/dis", nil))
	wantStatus(t, c.do("PUT", "/devices/dis", `{"deviceId":"dis","status":"disabled"}`, "If-Match", dev.ETag), http.StatusOK)
	d.waitLost()
	_, tok = h.dial(t, "dis", deviceOpts{})
	if rc := tok.(*paho.ConnectToken).ReturnCode(); rc != 5 {
		t.Fatalf("got CONNACK %d for a disabled device, want 5", rc)
	}
}

func TestMQTT_KeepAliveCappedAndPacketSizeLimited(t *testing.T) {
	h := startHub(t, Options{})
	h.mustCreate(t, "d1")
	d := h.connect(t, "d1") // paho sends keep-alive 60
	cl, ok := h.broker.Clients.Get("d1")
	if !ok || cl.State.Keepalive != 60 {
		t.Fatalf("got keep-alive %d, want the client's 60", cl.State.Keepalive)
	}
	d.c.Disconnect(0)

	c, err := tls.Dial("tcp", h.MQTTAddr(), &tls.Config{RootCAs: h.CAPool(), ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	str := func(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }
	vh := append(str("MQTT"), 4, 0xC0, 0, 0) // keep-alive 0: "never"
	vh = append(vh, str("d1")...)
	vh = append(vh, str(h.HostName()+"/d1/?api-version=2021-04-12")...)
	vh = append(vh, str(h.deviceToken(t, "d1", time.Hour))...)
	if _, err := c.Write(packet(0x10, vh)); err != nil {
		t.Fatal(err)
	}
	ack := make([]byte, 4)
	if _, err := io.ReadFull(c, ack); err != nil || ack[3] != 0 {
		t.Fatalf("CONNACK %x: %v", ack, err)
	}
	eventually(t, "the session is established", func() bool {
		cl, ok := h.broker.Clients.Get("d1")
		return ok && !cl.Closed() && cl.State.Keepalive == maxKeepAlive
	})

	// A PUBLISH bigger than the packet limit closes the connection.
	topic := str("devices/d1/messages/events/")
	big := packet(0x30, append(topic, make([]byte, maxPacketSize)...))
	_, _ = c.Write(big)
	_ = c.SetReadDeadline(time.Now().Add(waitTimeout))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("the hub answered an oversized packet instead of closing")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the hub kept the connection after an oversized packet")
	}
}
