package simulator

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hubflow/hubflow/iothub"
	"github.com/hubflow/hubflow/iothub/device"
	"github.com/hubflow/hubflow/iothub/service"
)

// DefaultConnectConcurrency is how many devices Start registers or connects
// at once when Config.ConnectConcurrency is zero.
const DefaultConnectConcurrency = 32

// Config says where the fleet lives and how it is drawn.
type Config struct {
	// Hub is a service connection string whose policy may write the registry
	// (iothubowner, or registryReadWrite plus serviceConnect). Start creates
	// the devices that do not exist yet and sets every device's tags with it.
	// Required.
	Hub *iothub.ConnectionString

	// DeviceConnectionString, when set, gives a device's connection string
	// (the emulator's Hub.DeviceConnectionString is one). Otherwise Start
	// builds it from Hub.HostName, GatewayHostName and the key the registry
	// returned. The strings are secrets: they are never logged.
	DeviceConnectionString func(id string) (string, error)

	// RootCAs are the roots trusted for the hub's certificate, for both the
	// registry calls and the devices' MQTT connections; nil means the system
	// roots.
	RootCAs *x509.CertPool

	// GatewayHostName is the host (and port) devices dial when their
	// connection string is built here, e.g. "localhost:18883". Empty means
	// Hub.HostName without the port it may carry (a local hub's HTTPS
	// port), so devices dial MQTT's port 8883 on the same host.
	GatewayHostName string

	// Logger receives the fleet's state changes (Info) and each device's
	// events (Debug). Nil discards. Secrets are never logged: the query of
	// any URL and the value of any SAS signature or key are redacted from
	// what the fleet and its clients write.
	Logger *slog.Logger

	// Seed makes the fleet's draws (tags, which devices are offline, flaky or
	// slow, stage durations, failures) repeatable: the same fleet file and
	// seed give the same devices.
	Seed int64

	// Now is the clock for the timestamps devices report; nil means
	// time.Now. Tokens are signed, and the waits between stages measured,
	// in real time.
	Now func() time.Time

	// ConnectConcurrency bounds the devices registered or connected at once
	// (default DefaultConnectConcurrency).
	ConnectConcurrency int

	// OnReport, when set, is called after each reported-property patch a
	// device got accepted by the hub, with the patch as sent. It is called
	// from many goroutines and must not block.
	OnReport func(deviceID string, patch map[string]any)
}

// Stats counts what the fleet has done since Start. Counters only grow.
type Stats struct {
	Devices    int // devices in the fleet
	Registered int // devices Start created in the registry (the rest existed)
	Offline    int // devices the fleet file keeps offline
	Connected  int // devices connected right now

	// RegisterTime is how long Start took to register the devices and set
	// their tags; ConnectTime how long it then took to connect them and
	// have each report its initial state.
	RegisterTime, ConnectTime time.Duration

	Methods           int64 // direct-method calls answered (any status)
	Reboots           int64 // reboots completed (rebootTime reported)
	FirmwareStarted   int64 // firmware updates accepted
	FirmwareCompleted int64 // firmware updates that reported completed
	FirmwareFailed    int64 // firmware updates that reported failed
	WindowsAccepted   int64 // maintenance-window policies accepted
	WindowsRejected   int64 // maintenance-window policies rejected
	Disconnects       int64 // flaky disconnects
	ReportsDeferred   int64 // reported patches held back by a lost connection and sent later
}

type counters struct {
	methods, reboots                      atomic.Int64
	fwStarted, fwCompleted, fwFailed      atomic.Int64
	windowsAccepted, windowsRejected      atomic.Int64
	disconnects, reportsDeferred, created atomic.Int64
}

// Sim is a running fleet. Its methods are safe for concurrent use.
type Sim struct {
	cfg     Config
	log     *slog.Logger
	now     func() time.Time
	svc     *service.Client
	devices []*simDevice
	offline int
	stats   counters

	registerTime, connectTime time.Duration

	// ctx lives until Close; every device goroutine runs under it.
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex // guards closed and the WaitGroup's Add
	closed bool
	wg     sync.WaitGroup
}

// Start registers the fleet's devices that do not exist yet, sets every
// device's tags (a back-end-only section, so through the service API),
// connects the devices, ConnectConcurrency at a time, and has each report
// its initial properties: the fleet file's reported values plus
// firmwareStatus "standBy" and logTime, as the tutorial device does at
// start-up. Offline devices report once and disconnect for good.
//
// ctx bounds Start only; the devices run until Close. On error every device
// already connected is closed again.
func Start(ctx context.Context, f *Fleet, cfg Config) (*Sim, error) {
	if f == nil {
		return nil, errors.New("start fleet: no fleet")
	}
	if cfg.Hub == nil {
		return nil, errors.New("start fleet: Config.Hub (a service connection string) is required")
	}
	if cfg.ConnectConcurrency <= 0 {
		cfg.ConnectConcurrency = DefaultConnectConcurrency
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	// The clients log through the fleet's logger too; what any of them
	// writes is redacted alike.
	cfg.Logger = slog.New(redactingHandler{cfg.Logger.Handler()})
	s := &Sim{cfg: cfg, log: cfg.Logger.With("component", "simulator"), now: cfg.Now}
	if s.now == nil {
		s.now = time.Now
	}
	specs, err := f.expand(cfg.Seed)
	if err != nil {
		return nil, fmt.Errorf("start fleet: %w", err)
	}
	svc, err := service.New(service.Config{
		ConnectionString: cfg.Hub, RootCAs: cfg.RootCAs,
		MaxConns: cfg.ConnectConcurrency, Logger: cfg.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("start fleet: %w", err)
	}
	s.svc = svc
	s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	s.devices = make([]*simDevice, len(specs))
	for i := range specs {
		s.devices[i] = newSimDevice(s, specs[i])
		if specs[i].offline {
			s.offline++
		}
	}

	began := time.Now()
	err = forEach(ctx, len(s.devices), cfg.ConnectConcurrency, func(i int) error {
		return s.devices[i].register(ctx)
	})
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("start fleet: %w", err)
	}
	registered := time.Now()
	s.registerTime = registered.Sub(began)
	s.log.Info("fleet registered", "devices", len(s.devices), "created", s.stats.created.Load(),
		"elapsed", s.registerTime.Round(time.Millisecond))

	err = forEach(ctx, len(s.devices), cfg.ConnectConcurrency, func(i int) error {
		return s.devices[i].start(ctx)
	})
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("start fleet: %w", err)
	}
	s.connectTime = time.Since(registered)
	for _, d := range s.devices {
		d.scheduleFlap()
	}
	s.log.Info("fleet connected", "devices", len(s.devices), "offline", s.offline,
		"elapsed", s.connectTime.Round(time.Millisecond))
	return s, nil
}

// forEach runs f(0..n-1) with at most workers calls at once and returns the
// first error, after which no new call starts.
func forEach(ctx context.Context, n, workers int, f func(i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := atomic.Int64{}
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					cancel(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return nil
}

// Devices returns the fleet's device IDs in fleet order, offline ones
// included.
func (s *Sim) Devices() []string {
	ids := make([]string, len(s.devices))
	for i, d := range s.devices {
		ids[i] = d.spec.id
	}
	return ids
}

// Stats returns the fleet's counters. Connected is read from each device's
// client, so the call costs one lock per device.
func (s *Sim) Stats() Stats {
	st := Stats{
		Devices:           len(s.devices),
		Registered:        int(s.stats.created.Load()),
		Offline:           s.offline,
		RegisterTime:      s.registerTime,
		ConnectTime:       s.connectTime,
		Methods:           s.stats.methods.Load(),
		Reboots:           s.stats.reboots.Load(),
		FirmwareStarted:   s.stats.fwStarted.Load(),
		FirmwareCompleted: s.stats.fwCompleted.Load(),
		FirmwareFailed:    s.stats.fwFailed.Load(),
		WindowsAccepted:   s.stats.windowsAccepted.Load(),
		WindowsRejected:   s.stats.windowsRejected.Load(),
		Disconnects:       s.stats.disconnects.Load(),
		ReportsDeferred:   s.stats.reportsDeferred.Load(),
	}
	for _, d := range s.devices {
		if c := d.clientOrNil(); c != nil && c.IsConnected() {
			st.Connected++
		}
	}
	return st
}

// Close stops the devices' timers and goroutines and disconnects them. It
// waits for all of it and is idempotent. The devices' identities stay in the
// registry.
func (s *Sim) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	for _, d := range s.devices {
		d.stopFlaky()
	}
	s.wg.Wait()
	_ = forEach(context.Background(), len(s.devices), max(s.cfg.ConnectConcurrency, 64), func(i int) error {
		if c := s.devices[i].clientOrNil(); c != nil {
			_ = c.Close()
		}
		return nil
	})
	s.svc.Close()
	s.log.Info("fleet stopped", "devices", len(s.devices))
	return nil
}

// spawn runs f on a goroutine that Close waits for, unless Close has begun.
func (s *Sim) spawn(f func(ctx context.Context)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Go(func() { f(s.ctx) })
	return true
}

// sleep waits d or until ctx is done, and reports whether the full wait
// elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// newClient builds a device's MQTT client.
func (s *Sim) newClient(cs *iothub.ConnectionString) (*device.Client, error) {
	return device.New(device.Config{
		ConnectionString: cs,
		RootCAs:          s.cfg.RootCAs,
		Logger:           s.cfg.Logger,
	})
}
