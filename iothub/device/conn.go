package device

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/hubflow/hubflow/iothub"
)

// Topic prefixes of what the hub sends; each is its filter without "#".
const (
	methodPrefix  = "$iothub/methods/POST/"
	twinResPrefix = "$iothub/twin/res/"
	desiredPrefix = "$iothub/twin/PATCH/properties/desired/"
)

// subscriptions are requested at QoS 0, as the Node SDK does: every request
// is confirmed by its own answer topic, so a PUBACK would only add a packet,
// and QoS 0 keeps paho's session store empty for every idle client.
var subscriptions = map[string]byte{
	iothub.TopicMethodsFilter:      0,
	iothub.TopicTwinResponseFilter: 0,
	iothub.TopicDesiredFilter:      0,
}

// conn is one MQTT connection. A Client makes a new one for every
// (re)connect, so nothing of a dead connection's state leaks into the next.
type conn struct {
	pc    paho.Client
	since time.Time   // set when installed
	renew *time.Timer // guarded by Client.mu

	lostCh  chan struct{} // closed by fail
	mu      sync.Mutex
	err     error
	pending map[string]chan twinAnswer // by $rid
}

// twinAnswer is the hub's answer on $iothub/twin/res/<status>/?$rid=…
type twinAnswer struct {
	status  int
	version int64
	body    []byte
}

// fail marks cn dead with err (the first error wins); requests waiting on it
// see lostCh closed.
func (cn *conn) fail(err error) {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if cn.err != nil {
		return
	}
	cn.err = err
	cn.pending = nil
	close(cn.lostCh)
}

func (cn *conn) lostErr() error {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return cn.err
}

func (cn *conn) isLost() bool { return cn.lostErr() != nil }

func (cn *conn) stopRenewal() {
	if cn.renew != nil {
		cn.renew.Stop()
	}
}

func (cn *conn) register(rid string, ch chan twinAnswer) bool {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if cn.pending == nil {
		return false
	}
	cn.pending[rid] = ch
	return true
}

func (cn *conn) unregister(rid string) {
	cn.mu.Lock()
	delete(cn.pending, rid)
	cn.mu.Unlock()
}

func (cn *conn) deliver(rid string, a twinAnswer) bool {
	cn.mu.Lock()
	ch, ok := cn.pending[rid]
	delete(cn.pending, rid)
	cn.mu.Unlock()
	if ok {
		ch <- a // buffered, one answer per rid
	}
	return ok
}

// dial opens a TLS connection, sends CONNECT and subscribes. It returns the
// connection and when its token was issued. ctx aborts every step: the
// socket is closed when ctx is done before the subscription is confirmed.
func (c *Client) dial(ctx context.Context) (*conn, time.Time, error) {
	password, issued, err := c.token()
	if err != nil {
		return nil, issued, err
	}
	cn := &conn{lostCh: make(chan struct{}), pending: map[string]chan twinAnswer{}}

	// stopAbort is set by paho's connect goroutine before the connect token
	// completes, and read here only after that.
	var stopAbort func() bool
	opts := paho.NewClientOptions().
		AddBroker("tls://" + c.addr).
		SetClientID(c.clientID).
		SetUsername(c.username).
		SetPassword(password).
		SetCleanSession(false).
		SetProtocolVersion(4). // 3.1.1 only: no silent retry as 3.1 after a refusal
		SetKeepAlive(c.keepAlive).
		SetAutoReconnect(false). // the Client reconnects itself, with a fresh token
		SetConnectRetry(false).
		SetConnectTimeout(connectTimeout).
		SetWriteTimeout(writeTimeout).
		SetOrderMatters(true).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { c.route(cn, m) }).
		SetConnectionLostHandler(func(_ paho.Client, err error) { c.lost(cn, err) }).
		SetCustomOpenConnectionFn(func(*url.URL, paho.ClientOptions) (net.Conn, error) {
			dctx, cancel := context.WithTimeout(ctx, connectTimeout)
			defer cancel()
			d := tls.Dialer{Config: c.tlsConf}
			nc, err := d.DialContext(dctx, "tcp", c.addr)
			if err != nil {
				return nil, err
			}
			stopAbort = context.AfterFunc(ctx, func() { _ = nc.Close() })
			return nc, nil
		})
	cn.pc = paho.NewClient(opts)

	tok := cn.pc.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		<-tok.Done() // ctx closed the socket or aborted the dial: this is quick
	}
	if err := tok.Error(); err != nil || ctx.Err() != nil {
		if stopAbort != nil {
			stopAbort()
		}
		cn.pc.Disconnect(0)
		cn.fail(ErrConnectionLost)
		if ctx.Err() != nil {
			return nil, issued, fmt.Errorf("connect: %w", ctx.Err())
		}
		return nil, issued, connectError(tok.(*paho.ConnectToken))
	}

	st := cn.pc.SubscribeMultiple(subscriptions, nil)
	err = waitToken(ctx, st, cn.lostCh)
	if err == nil {
		for filter, code := range st.(*paho.SubscribeToken).Result() {
			if code > 2 {
				err = fmt.Errorf("hub refused the subscription to %s (SUBACK 0x%02x)", filter, code)
			}
		}
	}
	if stopAbort != nil && !stopAbort() && err == nil {
		err = ctx.Err()
	}
	if err != nil {
		cn.pc.Disconnect(0)
		cn.fail(ErrConnectionLost)
		return nil, issued, fmt.Errorf("subscribe: %w", err)
	}
	return cn, issued, nil
}

// connectError describes a failed CONNECT without any credential in it.
func connectError(tok *paho.ConnectToken) error {
	switch rc := tok.ReturnCode(); rc {
	case packets.ErrRefusedBadUsernameOrPassword, packets.ErrRefusedNotAuthorised:
		return fmt.Errorf("connect: %w (CONNACK %d)", ErrUnauthorized, rc)
	case packets.Accepted, packets.ErrNetworkError:
		return fmt.Errorf("connect: %w", tok.Error())
	default:
		return fmt.Errorf("connect: hub refused the connection (CONNACK %d: %v)", rc, tok.Error())
	}
}

// waitToken waits for a paho token, ctx, or the connection's loss.
func waitToken(ctx context.Context, tok paho.Token, lost <-chan struct{}) error {
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	case <-lost:
		return ErrConnectionLost
	}
}

// route dispatches what the hub sends. It runs on paho's router goroutine,
// so it never blocks: method calls get their own goroutine, callbacks go
// through the event queue and twin answers into buffered channels.
func (c *Client) route(cn *conn, m paho.Message) {
	topic := m.Topic()
	switch {
	case strings.HasPrefix(topic, twinResPrefix):
		c.twinAnswer(cn, topic, m.Payload())
	case strings.HasPrefix(topic, methodPrefix):
		c.methodCall(cn, topic, m.Payload())
	case strings.HasPrefix(topic, desiredPrefix):
		c.desired(topic, m.Payload())
	default:
		c.log.Debug("ignoring message on an unexpected topic", "topic", topic)
	}
}
