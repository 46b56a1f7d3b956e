package emulator

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/hubflow/hubflow/iothub"
)

// timerFunc starts a timer of d and returns its channel and a stop function.
type timerFunc func(d time.Duration) (<-chan time.Time, func())

func realTimer(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTimer(d)
	return t.C, func() { t.Stop() }
}

// Default listen addresses: loopback, any free port.
const defaultAddr = "127.0.0.1:0"

// Options configure Start. The zero value is a usable hub on loopback with
// free ports, a temporary data directory and no quotas.
type Options struct {
	// HTTPSAddr and MQTTAddr are the listen addresses of the REST and MQTT
	// front ends; "" means 127.0.0.1:0. Non-loopback addresses are refused
	// unless AllowRemote is set.
	HTTPSAddr, MQTTAddr string
	// AllowRemote permits listening on non-loopback addresses (logged as a
	// warning: the CA key and every device key live in DataDir).
	AllowRemote bool
	// DataDir keeps the CA and server certificate (reused across starts)
	// and a snapshot of the registry and twins, written on Close and
	// periodically, so that a restart keeps devices and their keys. ""
	// uses a temporary directory that Close removes.
	DataDir string
	// Tier ("F1", "S1", "S2" or "S3") and Units turn on the hub's
	// throttling limits; "" leaves quotas off.
	Tier  string
	Units int
	// Logger receives operator-level events; nil discards them.
	Logger *slog.Logger
	// Now is the clock for token expiry, timestamps, quotas and fault
	// periods; nil means time.Now.
	Now func() time.Time
	// WitnessLimit caps the entries Invocations keeps (oldest dropped);
	// 0 means 200,000.
	WitnessLimit int

	// timer replaces real timers for method and connect timeouts in tests.
	timer timerFunc
	// snapshotEvery is the periodic persistence interval; 0 means 30 s.
	snapshotEvery time.Duration
	// connectDeadline bounds TLS handshake plus CONNECT; 0 means 10 s.
	connectDeadline time.Duration
}

// ListenError reports a front end that could not listen. Which is "https"
// or "mqtt".
type ListenError struct {
	Which string
	Addr  string
	Err   error
}

// Error says which front end failed and, for a port in use, what to do.
func (e *ListenError) Error() string {
	if errors.Is(e.Err, syscall.EADDRINUSE) {
		return fmt.Sprintf("listen %s on %s: the port is already in use (another emulator?); stop that process or choose another address (port 0 picks a free one)", e.Which, e.Addr)
	}
	return fmt.Sprintf("listen %s on %s: %v", e.Which, e.Addr, e.Err)
}

// Unwrap returns the listen error, so errors.Is(err, syscall.EADDRINUSE)
// works.
func (e *ListenError) Unwrap() error { return e.Err }

// Hub is a running emulator. Its methods are safe for concurrent use.
type Hub struct {
	opts    Options
	log     *slog.Logger
	now     func() time.Time
	timer   timerFunc
	dir     string
	tempDir bool
	certs   *certBundle

	hostName  string // HostName in connection strings
	gateway   string // GatewayHostName in device connection strings
	httpsAddr string
	mqttAddr  string

	policies map[string]*policy // fixed after Start
	reg      *registry

	broker  *mqtt.Server
	mqttLn  *mqttListener
	httpSrv *http.Server

	quota   *quotas
	faults  *Faults
	stats   counters
	witness witness
	queries queryCache

	ridSeq      atomic.Uint64
	changes     atomic.Int64 // bumped on every persisted change
	savedChange int64        // guarded by saveMu
	saveMu      sync.Mutex
	pendingAuth sync.Map // *mqtt.Client → token expiry, between auth and session

	done      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// Start starts a hub and returns once both front ends are listening. ctx
// bounds only the start-up; stop the hub with Close.
func Start(ctx context.Context, opts Options) (*Hub, error) {
	if opts.HTTPSAddr == "" {
		opts.HTTPSAddr = defaultAddr
	}
	if opts.MQTTAddr == "" {
		opts.MQTTAddr = defaultAddr
	}
	h := &Hub{
		opts:  opts,
		log:   opts.Logger,
		now:   opts.Now,
		timer: opts.timer,
		done:  make(chan struct{}),
		reg:   newRegistry(),
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.timer == nil {
		h.timer = realTimer
	}
	h.witness.limit = opts.WitnessLimit
	if h.witness.limit <= 0 {
		h.witness.limit = 200_000
	}
	q, err := newQuotas(opts.Tier, opts.Units)
	if err != nil {
		return nil, err
	}
	h.quota = q
	h.faults = &Faults{h: h}
	for _, a := range []struct{ which, addr string }{{"https", opts.HTTPSAddr}, {"mqtt", opts.MQTTAddr}} {
		if !isLoopback(a.addr) {
			if !opts.AllowRemote {
				return nil, fmt.Errorf("start emulator: %s address %s is not loopback; the emulator holds every key in plain form, so remote listening needs AllowRemote", a.which, a.addr)
			}
			h.log.Warn("emulator listening on a non-loopback address: anyone who can reach it and holds a key can use the hub", "front_end", a.which, "addr", a.addr)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	h.dir = opts.DataDir
	if h.dir == "" {
		dir, err := os.MkdirTemp("", "hubflow-emulator-")
		if err != nil {
			return nil, fmt.Errorf("create temporary data dir: %w", err)
		}
		h.dir, h.tempDir = dir, true
	}
	fail := func(err error) (*Hub, error) {
		if h.tempDir {
			os.RemoveAll(h.dir)
		}
		return nil, err
	}
	certs, err := loadOrCreateCerts(h.dir)
	if err != nil {
		return fail(fmt.Errorf("start emulator: %w", err))
	}
	h.certs = certs
	if err := h.load(); err != nil {
		return fail(fmt.Errorf("start emulator: %w", err))
	}

	var lc net.ListenConfig
	httpLn, err := lc.Listen(ctx, "tcp", opts.HTTPSAddr)
	if err != nil {
		return fail(&ListenError{Which: "https", Addr: opts.HTTPSAddr, Err: err})
	}
	mqttRaw, err := lc.Listen(ctx, "tcp", opts.MQTTAddr)
	if err != nil {
		httpLn.Close()
		return fail(&ListenError{Which: "mqtt", Addr: opts.MQTTAddr, Err: err})
	}
	h.httpsAddr = httpLn.Addr().String()
	h.mqttAddr = mqttRaw.Addr().String()
	h.hostName = hostWithPort("localhost", h.httpsAddr, "443")
	h.gateway = hostWithPort("localhost", h.mqttAddr, "8883")

	tlsCfg := &tls.Config{
		Certificates: []tls.Certificate{certs.server},
		MinVersion:   tls.VersionTLS12,
		// Classical key exchange only: on loopback the post-quantum hybrid
		// buys nothing and costs a third of a handshake, which is what
		// limits how fast a large simulated fleet connects.
		CurvePreferences: []tls.CurveID{tls.X25519, tls.CurveP256},
	}
	if err := h.startBroker(mqttRaw, tlsCfg.Clone()); err != nil {
		httpLn.Close()
		mqttRaw.Close()
		return fail(fmt.Errorf("start emulator: %w", err))
	}
	h.httpSrv = &http.Server{
		Handler:           h,
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(h.log.Handler(), slog.LevelDebug),
	}
	h.wg.Add(2)
	go func() {
		defer h.wg.Done()
		if err := h.httpSrv.ServeTLS(httpLn, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			h.log.Error("https front end stopped", "error", err)
		}
	}()
	go func() {
		defer h.wg.Done()
		h.housekeeping()
	}()
	h.log.Info("emulator started", "https", h.httpsAddr, "mqtt", h.mqttAddr, "data_dir", h.dir, "devices", h.reg.count(), "tier", opts.Tier)
	return h, nil
}

// isLoopback reports whether a listen address binds loopback only.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// hostWithPort names host with addr's port, leaving the port out when it
// is the protocol's default so that SDKs that cannot take a port still work.
func hostWithPort(host, addr, defaultPort string) string {
	_, port, _ := net.SplitHostPort(addr)
	if port == defaultPort || port == "" {
		return host
	}
	return net.JoinHostPort(host, port)
}

// housekeeping closes sessions whose token expired, repairs connection
// state, expires cached query results and snapshots the registry.
func (h *Hub) housekeeping() {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	every := h.opts.snapshotEvery
	if every <= 0 {
		every = 30 * time.Second
	}
	lastSave := time.Now()
	for {
		select {
		case <-h.done:
			return
		case <-tick.C:
			h.sweep()
			if time.Since(lastSave) >= every {
				lastSave = time.Now()
				if err := h.save(); err != nil {
					h.log.Error("snapshot emulator state", "error", err)
				}
			}
		}
	}
}

// sweep runs one housekeeping pass against the hub's clock.
func (h *Hub) sweep() {
	now := h.now()
	for _, d := range h.reg.ordered() {
		d.mu.Lock()
		cl := d.client
		expired := cl != nil && d.established && !d.tokenExpiry.IsZero() && !now.Before(d.tokenExpiry)
		stale := cl != nil && cl.Closed()
		d.mu.Unlock()
		switch {
		case stale:
			h.clientGone(d, cl)
		case expired:
			h.log.Debug("device token expired; closing its connection", "device", d.id)
			cl.Stop(errTokenExpired)
		}
	}
	h.queries.expire(now)
}

// Close stops both front ends, disconnects every device, ends pending method
// calls, writes a final snapshot (or removes a temporary data directory) and
// waits for the hub's goroutines. It is safe to call more than once.
func (h *Hub) Close() error {
	h.closeOnce.Do(func() {
		close(h.done)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := h.httpSrv.Shutdown(ctx); err != nil {
			h.httpSrv.Close()
		}
		if err := h.broker.Close(); err != nil {
			h.log.Error("stop mqtt broker", "error", err)
		}
		h.wg.Wait()
		if h.tempDir {
			if err := os.RemoveAll(h.dir); err != nil {
				h.closeErr = fmt.Errorf("remove temporary data dir: %w", err)
			}
		} else if err := h.save(); err != nil {
			h.closeErr = fmt.Errorf("snapshot emulator state: %w", err)
		}
		h.log.Info("emulator stopped")
	})
	return h.closeErr
}

// HostName is the HostName of every connection string: "localhost" with
// the HTTPS port (left out when it is 443).
func (h *Hub) HostName() string { return h.hostName }

// HTTPSAddr is the address the REST front end listens on.
func (h *Hub) HTTPSAddr() string { return h.httpsAddr }

// MQTTAddr is the address the MQTT front end listens on.
func (h *Hub) MQTTAddr() string { return h.mqttAddr }

// CAPool holds the emulator's CA, for clients' tls.Config.RootCAs.
func (h *Hub) CAPool() *x509.CertPool { return h.certs.pool.Clone() }

// CAFile is the path of the CA certificate (PEM), for other programs
// (for example NODE_EXTRA_CA_CERTS).
func (h *Hub) CAFile() string { return h.certs.caFile }

// DataDir is the directory holding certificates and snapshots.
func (h *Hub) DataDir() string { return h.dir }

// Faults returns the hub's fault injector.
func (h *Hub) Faults() *Faults { return h.faults }

// ServiceConnectionString is the connection string of the iothubowner
// policy.
func (h *Hub) ServiceConnectionString() string {
	s, _ := h.PolicyConnectionString(PolicyOwner)
	return s
}

// PolicyConnectionString is the connection string of one of the default
// policies: iothubowner, service, registryRead, registryReadWrite, device.
func (h *Hub) PolicyConnectionString(name string) (string, error) {
	p, ok := h.policies[name]
	if !ok {
		return "", fmt.Errorf("policy connection string: unknown policy %q", name)
	}
	cs := iothub.ConnectionString{HostName: h.hostName, SharedAccessKeyName: p.Name, SharedAccessKey: p.Primary}
	return cs.String(), nil
}

// DeviceConnectionString is a device's connection string with its primary
// key; GatewayHostName points at the MQTT front end.
func (h *Hub) DeviceConnectionString(id string) (string, error) {
	d := h.reg.get(id)
	if d == nil {
		return "", fmt.Errorf("device connection string for %q: %w", id, ErrDeviceNotFound)
	}
	d.mu.Lock()
	key := d.primaryKey
	d.mu.Unlock()
	cs := iothub.ConnectionString{HostName: h.hostName, DeviceID: id, SharedAccessKey: key, GatewayHostName: h.gateway}
	return cs.String(), nil
}

// CreateDevice registers an enabled device with generated keys, bypassing
// REST, authentication and quotas. It fails with ErrDeviceExists for a
// registered id.
func (h *Hub) CreateDevice(id string) (iothub.Device, error) {
	if err := validDeviceID(id); err != nil {
		return iothub.Device{}, fmt.Errorf("create device: %w", err)
	}
	d := newDevice(id, h.now())
	if err := h.reg.add(d); err != nil {
		return iothub.Device{}, fmt.Errorf("create device %q: %w", id, err)
	}
	h.changed()
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.identity(), nil
}

// DeviceIDs lists the registered device ids in order.
func (h *Hub) DeviceIDs() []string {
	devs := h.reg.ordered()
	out := make([]string, len(devs))
	for i, d := range devs {
		out[i] = d.id
	}
	return out
}

// changed records a change that the next snapshot must include.
func (h *Hub) changed() { h.changes.Add(1) }

// nextRID returns a fresh method request id: lower-case hex, which every
// SDK echoes verbatim (and Go's parses as hex).
func (h *Hub) nextRID() string { return strconv.FormatUint(h.ridSeq.Add(1), 16) }
