package device

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hubflow/hubflow/iothub"
)

// Defaults applied by New to zero Config fields.
const (
	// DefaultTokenTTL is the lifetime of a signed token, as in the SDKs.
	DefaultTokenTTL = iothub.DefaultTokenTTL
	// DefaultKeepAlive is the MQTT keep-alive, as in the Python SDK.
	DefaultKeepAlive = 60 * time.Second
	// DefaultReconnectMin is the first reconnect delay (before jitter).
	DefaultReconnectMin = 100 * time.Millisecond
	// DefaultReconnectMax caps the reconnect delay.
	DefaultReconnectMax = 30 * time.Second
	// DefaultPort is dialled when the host names no port (MQTT over TLS).
	DefaultPort = "8883"
)

const (
	// renewFraction of the token lifetime passes before the client reconnects
	// with a fresh token, leaving a fifth of it for the reconnect to succeed.
	renewFraction = 0.8
	// connectTimeout bounds the TLS handshake plus CONNECT/CONNACK when the
	// caller's context has no earlier deadline.
	connectTimeout = 30 * time.Second
	// writeTimeout bounds one PUBLISH write, so a stalled socket fails the
	// request instead of hanging it.
	writeTimeout = 30 * time.Second
	// quiesce is how long a clean disconnect waits for DISCONNECT to be written.
	quiesce = 250 // milliseconds
	// resyncTimeout bounds the twin re-read after a reconnect.
	resyncTimeout = 30 * time.Second
	attrDevice    = "device"
)

// Errors returned by Client methods. Callers branch on them with errors.Is.
var (
	// ErrNotConnected: the client is not connected and is not trying to be
	// (Connect was not called, failed, or Disconnect was called).
	ErrNotConnected = errors.New("device not connected")
	// ErrConnectionLost: the connection dropped (or was replaced to renew the
	// token) while a request was waiting for its answer.
	ErrConnectionLost = errors.New("connection lost")
	// ErrClosed: Close was called.
	ErrClosed = errors.New("device client closed")
	// ErrUnauthorized: the hub refused the credentials (CONNACK 4 or 5):
	// wrong key, expired token, or an unknown or disabled device.
	ErrUnauthorized = errors.New("hub refused the device credentials")
)

// Config configures a Client. Only ConnectionString is required.
type Config struct {
	// ConnectionString identifies the device (or module): HostName and
	// DeviceId, with a SharedAccessKey (tokens are signed and renewed) or a
	// ready-made SharedAccessSignature (used as is until it expires; it
	// cannot be renewed). GatewayHostName, when set, is the host dialled.
	ConnectionString *iothub.ConnectionString
	// RootCAs are the roots trusted for the hub's certificate; nil means the
	// system roots. To trust a private CA (the emulator's) on top of the
	// system roots, pass x509.SystemCertPool with that CA added.
	RootCAs *x509.CertPool
	// TokenTTL is the lifetime of each signed token (default 1h, at least 1s).
	// The client reconnects with a fresh token after 80% of it.
	TokenTTL time.Duration
	// KeepAlive is the MQTT keep-alive sent in CONNECT (default 60s, whole
	// seconds, at least 1s).
	KeepAlive time.Duration
	// ReconnectMin and ReconnectMax bound the exponential backoff between
	// reconnect attempts (defaults 100ms and 30s). Each delay is drawn
	// between half and all of min·2ⁿ, capped at max. A connection that
	// stayed up for ReconnectMax resets the exponent.
	ReconnectMin, ReconnectMax time.Duration
	// Logger receives connection events (Debug) and problems the caller
	// cannot see otherwise (Warn). nil discards. Secrets are never logged.
	Logger *slog.Logger
	// Now is the clock used to sign tokens; nil means time.Now.
	Now func() time.Time
}

// MethodHandler answers one direct-method call. payload is the request's
// JSON (never empty: an absent payload arrives as null). The returned
// status is sent to the caller as is, and response must be JSON (nil sends
// null). A response over iothub.MaxMethodPayload, or one that is not JSON,
// is not sent: the caller gets status 500 with an error message instead, and
// the problem is logged. ctx is cancelled when the Client is closed.
type MethodHandler func(ctx context.Context, payload json.RawMessage) (status int, response []byte)

// Client is one device's connection to the hub. Create it with New, then
// Connect. All methods are safe for concurrent use.
//
// Callbacks registered with OnDesired and OnConnectionChange run one at a
// time, in the order of the events, on a goroutine of the client's (never
// paho's), so they may call GetTwin or UpdateReported. Method handlers run
// each in their own goroutine.
type Client struct {
	clientID   string
	username   string
	resource   string
	key        string
	fixedToken string
	fixedUntil time.Time
	addr       string // host:port dialled
	tlsConf    *tls.Config
	ttl        time.Duration
	keepAlive  time.Duration
	backMin    time.Duration
	backMax    time.Duration
	log        *slog.Logger
	now        func() time.Time

	ctx       context.Context // cancelled by Close: handlers, waits, attempts
	cancel    context.CancelFunc
	sem       chan struct{} // held by the one connection attempt in progress
	rid       atomic.Uint64
	closeOnce sync.Once
	wg        sync.WaitGroup // every goroutine the client starts

	mu             sync.Mutex
	methods        map[string]MethodHandler
	onDesired      func(patch map[string]any, version int64)
	onConn         func(connected bool, err error)
	conn           *conn              // live connection, nil when down
	want           bool               // Connect succeeded and Disconnect/Close not called
	closing        bool               // Close has begun
	stopped        bool               // no goroutine may be started any more
	episode        context.CancelFunc // stops the running reconnect loop
	changed        chan struct{}      // closed and replaced on every state change
	desiredVersion int64              // highest desired $version seen
	twinSeen       bool               // a twin or notification set desiredVersion
	streak         int                // backoff exponent for the next reconnect
	up             bool               // last state given to onConn
	events         []func()
	draining       bool
}

// New checks cfg and returns a disconnected Client. It does no I/O.
func New(cfg Config) (*Client, error) {
	cs := cfg.ConnectionString
	if cs == nil {
		return nil, errors.New("new device client: no connection string")
	}
	if !cs.IsDevice() {
		return nil, errors.New("new device client: the connection string is not a device's (no DeviceId)")
	}
	if cs.SharedAccessKey == "" && cs.SharedAccessSignature == "" {
		return nil, errors.New("new device client: the connection string has neither SharedAccessKey nor SharedAccessSignature")
	}
	c := &Client{
		clientID:  cs.DeviceID,
		username:  iothub.MQTTUsername(cs.HostName, cs.DeviceID, cs.ModuleID),
		resource:  iothub.DeviceResource(cs.HostName, cs.DeviceID, cs.ModuleID),
		key:       cs.SharedAccessKey,
		ttl:       orDefault(cfg.TokenTTL, DefaultTokenTTL),
		keepAlive: orDefault(cfg.KeepAlive, DefaultKeepAlive),
		backMin:   orDefault(cfg.ReconnectMin, DefaultReconnectMin),
		backMax:   orDefault(cfg.ReconnectMax, DefaultReconnectMax),
		log:       cfg.Logger,
		now:       cfg.Now,
		sem:       make(chan struct{}, 1),
		methods:   map[string]MethodHandler{},
		changed:   make(chan struct{}),
	}
	if cs.ModuleID != "" {
		c.clientID += "/" + cs.ModuleID
	}
	switch {
	case c.ttl < time.Second:
		return nil, fmt.Errorf("new device client: token TTL %v is under 1s", c.ttl)
	case c.keepAlive < time.Second:
		return nil, fmt.Errorf("new device client: keep-alive %v is under 1s", c.keepAlive)
	case c.backMax < c.backMin:
		return nil, fmt.Errorf("new device client: ReconnectMax %v is below ReconnectMin %v", c.backMax, c.backMin)
	}
	if cs.SharedAccessSignature != "" {
		t, err := iothub.ParseSAS(cs.SharedAccessSignature)
		if err != nil {
			return nil, fmt.Errorf("new device client: %w", err)
		}
		c.fixedToken, c.fixedUntil = cs.SharedAccessSignature, t.Expiry
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.log = c.log.With(attrDevice, c.clientID)
	if c.now == nil {
		c.now = time.Now
	}
	host, port, err := net.SplitHostPort(cs.DialHost())
	if err != nil {
		host, port = cs.DialHost(), DefaultPort
	}
	c.addr = net.JoinHostPort(host, port)
	c.tlsConf = &tls.Config{
		RootCAs:    cfg.RootCAs,
		ServerName: host,
		MinVersion: tls.VersionTLS12,
		// Classical X25519 first: the hybrid post-quantum default costs more
		// CPU per handshake than anything else a fleet of thousands does
		// while it (re)connects.
		CurvePreferences: []tls.CurveID{tls.X25519, tls.CurveP256, tls.CurveP384},
		// A reconnect (after a reboot, a dropped link, a token renewal)
		// resumes the last session: neither side signs or verifies a
		// certificate chain again. One entry: a client talks to one hub.
		ClientSessionCache: tls.NewLRUClientSessionCache(1),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// Handle registers h for the direct method name, replacing any earlier
// handler; a nil h removes it. It may be called at any time. Calls to a
// method without a handler are answered with status 404 and
// {"message":"Unknown method: <name>"}.
func (c *Client) Handle(method string, h MethodHandler) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if h == nil {
		delete(c.methods, method)
		return
	}
	c.methods[method] = h
}

// OnDesired sets the callback for desired-property notifications (nil
// removes it). patch is the notification body without its "$version"
// member (deleted properties appear as nil) and version is that $version.
// Notifications whose version is not above the highest one already seen
// (from GetTwin or an earlier notification) are dropped. After a reconnect
// the client reads the twin again and, if the desired version moved while
// it was away, calls f with the whole desired section as the patch.
func (c *Client) OnDesired(f func(patch map[string]any, version int64)) {
	c.mu.Lock()
	c.onDesired = f
	c.mu.Unlock()
}

// OnConnectionChange sets the callback for connection state changes (nil
// removes it): (true, nil) once connected and subscribed, (false, err) when
// the connection drops (a reconnect follows) or a reconnect gives up, and
// (false, nil) after Disconnect or Close. A token renewal that reconnects at
// once is not reported.
func (c *Client) OnConnectionChange(f func(connected bool, err error)) {
	c.mu.Lock()
	c.onConn = f
	c.mu.Unlock()
}

// IsConnected reports whether the client has a live, subscribed connection.
func (c *Client) IsConnected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn != nil
}

// Connect dials the hub (GatewayHostName or HostName, port 8883 unless the
// host names one), authenticates with a fresh token, subscribes to method
// calls, twin responses and desired notifications, and returns once all of
// that is done. It makes one attempt: on error the client stays
// disconnected. Once connected, the client keeps itself connected until
// Disconnect or Close. Connect on a connected client returns nil. A refused
// token gives an error wrapping ErrUnauthorized.
func (c *Client) Connect(ctx context.Context) error {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return ErrClosed
	}
	c.want = true
	c.mu.Unlock()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(c.ctx, cancel)()
	err := c.connectOnce(ctx)
	if err != nil {
		c.mu.Lock()
		if c.conn == nil {
			c.want = false
			c.stopEpisodeLocked()
			c.signalLocked()
		}
		c.mu.Unlock()
		if c.ctx.Err() != nil {
			return ErrClosed
		}
	}
	return err
}

// Disconnect sends DISCONNECT and closes the connection; pending requests
// fail with ErrNotConnected and no reconnect follows. Connect may be called
// again afterwards. Method handlers still running keep running, but their
// answers are dropped unless the client is connected again by then.
func (c *Client) Disconnect(ctx context.Context) error {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return nil
	}
	c.want = false
	c.stopEpisodeLocked()
	c.signalLocked()
	c.mu.Unlock()
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("disconnect: %w", ctx.Err())
	}
	defer func() { <-c.sem }()
	c.dropConn(nil, ErrNotConnected)
	return nil
}

// Close disconnects, stops every goroutine the client started (waiting for
// running method handlers, whose context it cancels, and callbacks) and
// makes later calls fail with ErrClosed. It is idempotent and always
// returns nil. Because it waits for them, a method handler or callback that
// wants the client closed must call Close on another goroutine.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closing, c.want = true, false
		c.stopEpisodeLocked()
		c.signalLocked()
		c.mu.Unlock()
		c.cancel() // aborts any attempt in progress, so the semaphore frees soon
		c.sem <- struct{}{}
		c.dropConn(nil, ErrClosed)
		<-c.sem
		c.mu.Lock()
		c.stopped = true
		c.mu.Unlock()
		c.wg.Wait()
	})
	return nil
}

// dropConn closes the live connection after a local decision, reporting
// (false, report) to the callback. The caller holds the semaphore.
func (c *Client) dropConn(report error, pendingErr error) {
	c.mu.Lock()
	cn := c.conn
	if cn == nil {
		c.mu.Unlock()
		return
	}
	c.conn = nil
	cn.stopRenewal()
	c.signalLocked()
	c.notifyLocked(false, report)
	c.mu.Unlock()
	cn.pc.Disconnect(quiesce)
	cn.fail(pendingErr)
	c.log.Debug("disconnected")
}

// connectOnce makes one connection attempt unless one is live already.
func (c *Client) connectOnce(ctx context.Context) error {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("connect: %w", ctx.Err())
	}
	defer func() { <-c.sem }()
	c.mu.Lock()
	switch {
	case c.closing:
		c.mu.Unlock()
		return ErrClosed
	case c.conn != nil:
		c.mu.Unlock()
		return nil
	}
	c.mu.Unlock()

	cn, issued, err := c.dial(ctx)
	if err != nil {
		return err
	}
	c.mu.Lock()
	if c.closing || cn.isLost() {
		c.mu.Unlock()
		cn.pc.Disconnect(0)
		cn.fail(ErrConnectionLost)
		if c.closing {
			return ErrClosed
		}
		return fmt.Errorf("connect: %w", ErrConnectionLost)
	}
	c.conn = cn
	cn.since = time.Now()
	c.scheduleRenewalLocked(cn, issued)
	c.signalLocked()
	c.notifyLocked(true, nil)
	resync := c.onDesired != nil && c.twinSeen
	if resync {
		c.goLocked(c.resync)
	}
	c.mu.Unlock()
	c.log.Debug("connected", "addr", c.addr)
	return nil
}

// lost handles paho's report that cn dropped.
func (c *Client) lost(cn *conn, err error) {
	cn.fail(fmt.Errorf("%w: %w", ErrConnectionLost, err))
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != cn {
		return
	}
	c.conn = nil
	cn.stopRenewal()
	c.signalLocked()
	if time.Since(cn.since) >= c.backMax {
		c.streak = 0
	}
	c.notifyLocked(false, err)
	c.log.Debug("connection lost", "err", err)
	if c.want && !c.closing {
		c.startEpisodeLocked()
	}
}

// startEpisodeLocked starts a reconnect loop, stopping any earlier one.
func (c *Client) startEpisodeLocked() {
	c.stopEpisodeLocked()
	ctx, cancel := context.WithCancel(c.ctx)
	c.episode = cancel
	c.goLocked(func() { c.reconnectLoop(ctx, false) })
}

func (c *Client) stopEpisodeLocked() {
	if c.episode != nil {
		c.episode()
		c.episode = nil
	}
}

// reconnectLoop retries until connected, stopped by ctx, or the token can
// no longer be valid. immediate skips the delay before the first attempt.
func (c *Client) reconnectLoop(ctx context.Context, immediate bool) {
	for attempt := 0; ; attempt++ {
		if !immediate || attempt > 0 {
			c.mu.Lock()
			d := backoff(c.streak, c.backMin, c.backMax, rand.Int64N)
			if c.streak < 62 {
				c.streak++
			}
			c.mu.Unlock()
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return
			}
		}
		err := c.connectOnce(ctx)
		if err == nil || ctx.Err() != nil || errors.Is(err, ErrClosed) {
			return
		}
		if errors.Is(err, iothub.ErrTokenExpired) {
			c.log.Warn("giving up reconnecting: the connection string's shared access signature has expired")
			c.mu.Lock()
			if c.episode != nil && ctx.Err() == nil {
				c.want = false
				c.signalLocked()
				c.up = false
				if f := c.onConn; f != nil {
					c.enqueueLocked(func() { f(false, err) })
				}
			}
			c.mu.Unlock()
			return
		}
		if errors.Is(err, ErrUnauthorized) {
			c.log.Warn("reconnect refused", "err", err)
		} else {
			c.log.Debug("reconnect failed", "err", err)
		}
		c.mu.Lock()
		c.notifyLocked(false, err) // once: after a renewal, the first failure shows
		c.mu.Unlock()
	}
}

// backoff returns the delay before reconnect attempt n: between half and
// all of min·2ⁿ, capped at max. randN(k) returns a value in [0, k).
func backoff(n int, min, max time.Duration, randN func(int64) int64) time.Duration {
	d := max
	if n < 62 && min<<n > 0 && min<<n < max {
		d = min << n
	}
	half := d / 2
	return half + time.Duration(randN(int64(d-half)+1))
}

// scheduleRenewalLocked arms the token renewal of cn.
func (c *Client) scheduleRenewalLocked(cn *conn, issued time.Time) {
	if c.fixedToken != "" {
		return
	}
	d := time.Duration(float64(c.ttl)*renewFraction) - c.now().Sub(issued)
	cn.renew = time.AfterFunc(d, func() { c.renew(cn) })
}

// renew replaces cn by a connection with a fresh token: DISCONNECT, then
// CONNECT again at once, as the SDKs do. A failed reconnect continues as an
// ordinary reconnect loop.
func (c *Client) renew(cn *conn) {
	c.mu.Lock()
	if c.conn != cn || !c.want || c.closing {
		c.mu.Unlock()
		return
	}
	c.stopEpisodeLocked()
	ctx, cancel := context.WithCancel(c.ctx)
	c.episode = cancel
	c.goLocked(func() {
		select {
		case c.sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		c.mu.Lock()
		current := c.conn == cn
		if current {
			c.conn = nil
			c.signalLocked()
		}
		c.mu.Unlock()
		if current {
			c.log.Debug("renewing token")
			cn.pc.Disconnect(quiesce)
			cn.fail(fmt.Errorf("%w: reconnecting to renew the token", ErrConnectionLost))
		}
		<-c.sem
		if current {
			c.reconnectLoop(ctx, true)
		}
	})
	c.mu.Unlock()
}

// token returns the CONNECT password and when it was issued.
func (c *Client) token() (string, time.Time, error) {
	now := c.now()
	if c.fixedToken != "" {
		if !now.Before(c.fixedUntil) {
			return "", now, fmt.Errorf("connect: %w", iothub.ErrTokenExpired)
		}
		return c.fixedToken, now, nil
	}
	// Round the expiry up so a short TTL is never cut by truncation to seconds.
	exp := now.Add(c.ttl)
	if t := exp.Truncate(time.Second); t.Before(exp) {
		exp = t.Add(time.Second)
	}
	tok, err := iothub.NewSAS(c.resource, "", c.key, exp)
	if err != nil {
		return "", now, fmt.Errorf("connect: %w", err)
	}
	return tok, now, nil
}

// signalLocked wakes everything waiting for a state change.
func (c *Client) signalLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// goLocked runs f on a tracked goroutine unless the client has stopped.
func (c *Client) goLocked(f func()) {
	if c.stopped {
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		f()
	}()
}

// notifyLocked reports a change of the connected state; a state already
// reported is not reported again (a token renewal reconnects without a
// visible change).
func (c *Client) notifyLocked(connected bool, err error) {
	if connected == c.up {
		return
	}
	c.up = connected
	if f := c.onConn; f != nil {
		c.enqueueLocked(func() { f(connected, err) })
	}
}

// enqueueLocked queues a callback. Callbacks run one at a time in order on
// a goroutine that exists only while the queue is not empty, so an idle
// client costs no goroutine for them.
func (c *Client) enqueueLocked(f func()) {
	if c.stopped {
		return
	}
	c.events = append(c.events, f)
	if !c.draining {
		c.draining = true
		c.goLocked(c.drain)
	}
}

func (c *Client) drain() {
	for {
		c.mu.Lock()
		if len(c.events) == 0 {
			c.draining = false
			c.events = nil
			c.mu.Unlock()
			return
		}
		f := c.events[0]
		c.events[0] = nil
		c.events = c.events[1:]
		c.mu.Unlock()
		f()
	}
}

// waitConn returns the live connection, waiting while a reconnect is under
// way.
func (c *Client) waitConn(ctx context.Context) (*conn, error) {
	for {
		c.mu.Lock()
		cn, want, closing, ch := c.conn, c.want, c.closing, c.changed
		c.mu.Unlock()
		switch {
		case closing:
			return nil, ErrClosed
		case cn != nil:
			return cn, nil
		case !want:
			return nil, ErrNotConnected
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.ctx.Done():
			return nil, ErrClosed
		}
	}
}
