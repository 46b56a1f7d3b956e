package emulator

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/hubflow/hubflow/iothub"
)

const (
	// connectDeadline bounds the TLS handshake and CONNECT of a new
	// connection; mochi sets no deadline before CONNECT.
	connectDeadline = 10 * time.Second
	// maxKeepAlive caps a client's keep-alive (s): the hub closes idle
	// connections after 1.5 × keep-alive and at most after 1767 s.
	maxKeepAlive = 1177
	// maxPacketSize bounds an MQTT packet: a 256 KB telemetry message plus
	// topic and headers. Bigger packets close the connection.
	maxPacketSize = 256*1024 + 4096
	// maxSubscriptions is the hub's limit per device.
	maxSubscriptions = 5
	// activityResolution is how finely lastActivityTime follows device
	// messages.
	activityResolution = time.Second
	// clientWritesPending is mochi's per-client outbound queue; the hub
	// writes directly to clients, so a small queue saves memory.
	clientWritesPending = 64
)

// Stop causes of connections the hub closes.
var (
	errTokenExpired    = errors.New("SAS token expired")
	errTopicDenied     = errors.New("topic not allowed for this device")
	errIdentityChanged = errors.New("device identity changed")
	errDeviceDeleted   = errors.New("device deleted")
)

func (h *Hub) startBroker(raw net.Listener, tlsCfg *tls.Config) error {
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumQos = 1
	caps.RetainAvailable = 0
	caps.MaximumPacketSize = maxPacketSize
	caps.MaximumClientWritesPending = clientWritesPending
	caps.MaximumSessionExpiryInterval = 7 * 24 * 3600
	caps.MinimumProtocolVersion = 4
	caps.SharedSubAvailable = 0
	caps.SubIDAvailable = 0
	caps.Compatibilities.ObscureNotAuthorized = false
	h.broker = mqtt.New(&mqtt.Options{
		Capabilities: caps,
		Logger:       slog.New(&levelHandler{min: slog.LevelError, Handler: h.log.Handler()}),
		// $SYS topics are unused; their default 1 s refresh costs a
		// ReadMemStats and 20 publishes every second.
		SysTopicResendInterval: 24 * 3600,
	})
	if err := h.broker.AddHook(&brokerHook{h: h}, nil); err != nil {
		return err
	}
	h.mqttLn = &mqttListener{id: "mqtts", ln: raw, tls: tlsCfg, deadline: h.opts.connectDeadline, conns: map[net.Conn]struct{}{}, served: make(chan struct{})}
	if h.mqttLn.deadline <= 0 {
		h.mqttLn.deadline = connectDeadline
	}
	if err := h.broker.AddListener(h.mqttLn); err != nil {
		return err
	}
	return h.broker.Serve()
}

// levelHandler passes on records at or above min only.
type levelHandler struct {
	min slog.Level
	slog.Handler
}

func (l *levelHandler) Enabled(ctx context.Context, lv slog.Level) bool {
	return lv >= l.min && l.Handler.Enabled(ctx, lv)
}

func (l *levelHandler) WithAttrs(a []slog.Attr) slog.Handler {
	return &levelHandler{min: l.min, Handler: l.Handler.WithAttrs(a)}
}

func (l *levelHandler) WithGroup(n string) slog.Handler {
	return &levelHandler{min: l.min, Handler: l.Handler.WithGroup(n)}
}

// mqttListener accepts TLS connections for mochi. Unlike mochi's own TCP
// listener it puts a deadline on the handshake and CONNECT, and its Close
// waits for every connection it handed out, so that the broker's Close
// never races a late accept.
type mqttListener struct {
	id       string
	ln       net.Listener
	tls      *tls.Config
	deadline time.Duration
	log      *slog.Logger
	served   chan struct{} // closed when Serve returns

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// Init, ID, Address and Protocol implement mochi's listeners.Listener.
func (l *mqttListener) Init(log *slog.Logger) error { l.log = log; return nil }
func (l *mqttListener) ID() string                  { return l.id }
func (l *mqttListener) Address() string             { return l.ln.Addr().String() }
func (l *mqttListener) Protocol() string            { return "tcp" }

// Serve accepts connections until Close, handing each to mochi after
// arming the CONNECT deadline.
func (l *mqttListener) Serve(establish listeners.EstablishFn) {
	defer close(l.served)
	for {
		c, err := l.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		_ = c.SetDeadline(time.Now().Add(l.deadline))
		tc := tls.Server(c, l.tls)
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			c.Close()
			return
		}
		l.conns[tc] = struct{}{}
		l.wg.Add(1)
		l.mu.Unlock()
		go func() {
			defer l.wg.Done()
			if err := establish(l.id, tc); err != nil {
				l.log.Debug("mqtt connection ended", "remote", c.RemoteAddr().String(), "error", err)
			}
			tc.Close()
			l.mu.Lock()
			delete(l.conns, tc)
			l.mu.Unlock()
		}()
	}
}

// Close stops accepting, lets mochi disconnect its clients, closes
// connections still before CONNECT and waits for all of them.
func (l *mqttListener) Close(closeClients listeners.CloseFn) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	l.mu.Unlock()
	l.ln.Close()
	<-l.served
	closeClients(l.id)
	l.mu.Lock()
	for c := range l.conns {
		c.Close()
	}
	l.mu.Unlock()
	l.wg.Wait()
}

// brokerHook is where the hub's MQTT behaviour lives: authentication, topic
// rules, presence, and the handling of every device publish.
type brokerHook struct {
	mqtt.HookBase
	h *Hub
}

// ID names the hook in mochi's logs.
func (k *brokerHook) ID() string { return "hubflow-iothub" }

// Provides lists the events the hook handles.
func (k *brokerHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnSessionEstablish,
		mqtt.OnSessionEstablished, mqtt.OnDisconnect, mqtt.OnPacketRead, mqtt.OnPublish,
		mqtt.OnSubscribed, mqtt.OnUnsubscribed:
		return true
	}
	return false
}

// OnConnect accepts MQTT 3.1.1 only and caps the keep-alive, so that every
// connection has a read deadline.
func (k *brokerHook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	if pk.ProtocolVersion != 4 {
		_ = k.h.broker.SendConnack(cl, packets.ErrUnsupportedProtocolVersion, false, nil)
		return packets.ErrUnsupportedProtocolVersion
	}
	if cl.State.Keepalive == 0 || cl.State.Keepalive > maxKeepAlive {
		cl.State.Keepalive = maxKeepAlive
	}
	return nil
}

// OnConnectAuthenticate checks the username, client id and SAS password. A
// refusal is CONNACK 5 (not authorized), which SDKs do not retry.
func (k *brokerHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	h := k.h
	fail := func(reason string) bool {
		h.log.Debug("mqtt connection refused", "client", pk.Connect.ClientIdentifier, "reason", reason)
		return false
	}
	host, id, module, err := iothub.ParseMQTTUsername(string(pk.Connect.Username))
	switch {
	case err != nil:
		return fail("username is not <host>/<deviceId>/?api-version=…")
	case module != "":
		return fail("modules are not supported")
	case !h.hostAllowed(host):
		return fail("username names another hub")
	case id != pk.Connect.ClientIdentifier:
		return fail("client id does not match the username's device id")
	case id == reservedClientID:
		return fail("client id is reserved")
	}
	d := h.reg.get(id)
	if d == nil {
		return fail("device not registered")
	}
	d.mu.Lock()
	enabled := d.status == "enabled"
	d.mu.Unlock()
	if !enabled {
		return fail("device disabled")
	}
	expiry, err := h.authorizeDevice(d, host, string(pk.Connect.Password))
	if err != nil {
		return fail(err.Error())
	}
	h.pendingAuth.Store(cl, expiry)
	return true
}

// OnSessionEstablish runs once the device is authenticated, before mochi
// takes over an existing session and sends CONNACK. The new client becomes
// the device's current one first, so that the old connection's disconnect
// is recognised as superseded, and the device shows as connected by the
// time it sees CONNACK.
func (k *brokerHook) OnSessionEstablish(cl *mqtt.Client, pk packets.Packet) {
	h := k.h
	v, _ := h.pendingAuth.LoadAndDelete(cl)
	expiry, _ := v.(time.Time)
	d := h.reg.get(cl.ID)
	if d == nil {
		return
	}
	now := h.now()
	d.mu.Lock()
	d.client = cl
	d.established = false
	d.methodsOn = false
	d.tokenExpiry = expiry
	if !d.connected {
		d.connected = true
		h.stats.connected.Add(1)
	}
	d.connTime, d.lastActivity = now, now
	d.invalidate(false)
	d.notifyLocked()
	d.mu.Unlock()
}

// OnSessionEstablished runs after CONNACK is written: only now may the hub
// send the device anything. An inherited persistent session may already
// hold the methods subscription, which makes the device method-online at
// once.
func (k *brokerHook) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	h := k.h
	d := h.reg.get(cl.ID)
	if d == nil {
		cl.Stop(errDeviceDeleted)
		return
	}
	d.mu.Lock()
	if d.client != cl || d.deleted {
		d.mu.Unlock()
		return
	}
	d.established = true
	d.methodsOn = hasSub(cl, iothub.TopicMethodsFilter)
	d.notifyLocked()
	d.mu.Unlock()
	h.log.Debug("device connected", "device", d.id, "session_present", cl.State.Subscriptions.Len() > 0)
}

// OnDisconnect marks the device disconnected unless a newer connection has
// already taken over its session.
func (k *brokerHook) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	k.h.pendingAuth.Delete(cl)
	if d := k.h.reg.get(cl.ID); d != nil {
		k.h.clientGone(d, cl)
	}
}

// clientGone handles the end of cl's connection for d: offline, pending
// method calls answered as device unavailable.
func (h *Hub) clientGone(d *device, cl *mqtt.Client) {
	d.mu.Lock()
	if d.client != cl {
		d.mu.Unlock()
		return
	}
	d.client = nil
	d.established = false
	d.methodsOn = false
	if d.connected {
		d.connected = false
		h.stats.connected.Add(-1)
	}
	d.connTime = h.now()
	calls := d.pending
	d.pending = map[string]*call{}
	d.invalidate(false)
	d.notifyLocked()
	d.mu.Unlock()
	for _, c := range calls {
		c.finish(callResult{unavailable: true})
	}
	h.log.Debug("device disconnected", "device", d.id)
}

// OnSubscribed and OnUnsubscribed re-evaluate method presence before the
// SUBACK (UNSUBACK) is written, so a device that has its SUBACK is already
// reachable for method calls.
func (k *brokerHook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, reasonCodes []byte) {
	k.h.refreshMethods(cl)
}

func (k *brokerHook) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	k.h.refreshMethods(cl)
}

func (h *Hub) refreshMethods(cl *mqtt.Client) {
	d := h.reg.get(cl.ID)
	if d == nil {
		return
	}
	d.mu.Lock()
	if d.client == cl && d.established {
		if on := hasSub(cl, iothub.TopicMethodsFilter); on != d.methodsOn {
			d.methodsOn = on
			d.notifyLocked()
		}
	}
	d.mu.Unlock()
}

// forgetSession closes d's connection and drops its persistent MQTT
// session, so that a device registered later under the same id starts
// clean.
func (h *Hub) forgetSession(d *device) {
	d.mu.Lock()
	cl := d.client
	calls := d.pending
	d.pending = map[string]*call{}
	d.mu.Unlock()
	for _, c := range calls {
		c.finish(callResult{unavailable: true})
	}
	if cl != nil {
		cl.Stop(errDeviceDeleted)
		h.clientGone(d, cl)
	}
	if old, ok := h.broker.Clients.Get(d.id); ok {
		old.Stop(errDeviceDeleted)
		h.broker.UnsubscribeClient(old)
		h.broker.Clients.Delete(d.id)
	}
}

// OnPacketRead closes the connection on a QoS 2 PUBLISH, as the hub does.
func (k *brokerHook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type == packets.Publish && pk.FixedHeader.Qos == 2 {
		k.h.log.Debug("mqtt QoS 2 publish refused; closing", "device", cl.ID)
		return pk, packets.ErrRejectPacket
	}
	return pk, nil
}

// OnACLCheck lets a device publish only its own twin, method-response and
// telemetry topics and subscribe only the documented filters; anything else
// ends the connection, as on the hub.
func (k *brokerHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if write {
		if _, err := iothub.ParseDeviceTopic(topic, cl.ID); err == nil {
			return true
		}
	} else if allowedFilter(topic, cl.ID) {
		if _, held := cl.State.Subscriptions.Get(topic); held || cl.State.Subscriptions.Len() < maxSubscriptions {
			return true
		}
	}
	k.h.log.Debug("mqtt topic refused; closing", "device", cl.ID, "topic", topic, "publish", write)
	cl.Stop(errTopicDenied)
	return false
}

// allowedFilter reports whether device id may subscribe to (or receive on)
// filter.
func allowedFilter(filter, id string) bool {
	switch filter {
	case iothub.TopicMethodsFilter, iothub.TopicTwinResponseFilter, iothub.TopicDesiredFilter:
		return true
	}
	prefix := "devices/" + id + "/messages/devicebound/"
	return filter == prefix+"#" || strings.HasPrefix(filter, prefix) && !strings.ContainsAny(filter[len(prefix):], "#+")
}

// OnPublish handles every device publish; nothing is routed to other
// clients.
func (k *brokerHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil
	}
	h := k.h
	dt, err := iothub.ParseDeviceTopic(pk.TopicName, cl.ID)
	if err != nil {
		return pk, packets.ErrRejectPacket
	}
	d := h.reg.get(cl.ID)
	if d == nil {
		cl.Stop(errDeviceDeleted)
		return pk, packets.ErrRejectPacket
	}
	now := h.now()
	d.mu.Lock()
	// Activity is recorded to the second, so that a chatty device does not
	// re-render its twin for every message.
	if now.Sub(d.lastActivity) >= activityResolution || now.Before(d.lastActivity) {
		d.lastActivity = now
		d.invalidate(false)
	}
	d.mu.Unlock()
	switch dt.Kind {
	case iothub.TopicTwinGet:
		h.mqttTwinGet(cl, d, dt.RID)
	case iothub.TopicTwinReported:
		h.mqttReported(cl, d, dt.RID, pk.Payload)
	case iothub.TopicMethodResponse:
		h.methodAnswered(d, dt.RID, dt.Status, pk.Payload)
	}
	return pk, packets.CodeSuccessIgnore
}

// hasSub reports whether cl holds a subscription to filter.
func hasSub(cl *mqtt.Client, filter string) bool {
	_, ok := cl.State.Subscriptions.Get(filter)
	return ok
}

// writePublish writes a QoS 0 PUBLISH to exactly one client. Hub-to-device
// $iothub messages must never be routed: every device subscribes to the
// same filters.
func writePublish(cl *mqtt.Client, topic string, payload []byte) error {
	return cl.WritePacket(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish},
		TopicName:   topic,
		Payload:     payload,
	})
}
