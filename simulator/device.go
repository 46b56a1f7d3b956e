package simulator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/hubflow/hubflow/iothub"
	"github.com/hubflow/hubflow/iothub/device"
)

// Method names and firmwareStatus values, as the tutorials spell them.
const (
	MethodReboot         = "rebootDevice"
	MethodFirmwareUpdate = "firmwareUpdate"

	StatusStandBy     = "standBy"
	StatusDownloading = "downloading"
	StatusApplying    = "applying"
	StatusCompleted   = "completed"
	StatusFailed      = "failed"
)

// TimestampFormat is how devices write the times they report (rebootTime,
// logTime, downloadComplete, …): RFC 3339 in UTC with milliseconds, as
// JavaScript's toISOString does in the tutorials.
const TimestampFormat = "2006-01-02T15:04:05.000Z07:00"

const (
	// answerGrace lets the device client publish a method's answer before
	// a reboot takes the connection away; the client offers no signal for it.
	answerGrace = 100 * time.Millisecond
	// opTimeout bounds one twin round trip of a device.
	opTimeout = 30 * time.Second
	// maxFlakyWait caps the draw of a flaky device's next disconnect.
	maxFlakyWait = 1000 * time.Hour
)

// simDevice is one simulated device.
type simDevice struct {
	sim  *Sim
	spec deviceSpec
	cs   *iothub.ConnectionString // from register until start

	mu         sync.Mutex
	client     *device.Client
	rng        *rand.Rand
	updating   bool           // a firmware update is under way
	pending    map[string]any // reported patch waiting for a connection
	flakyTimer *time.Timer

	connMu  sync.Mutex // held through a deliberate disconnect and reconnect
	flushMu sync.Mutex // one reported patch in flight at a time, in order

	windowMu      sync.Mutex     // held while a policy is being answered
	window        map[string]any // maintenanceWindow as last reported
	windowDesired any            // maintenanceWindow as last desired
	windowVersion int64          // desired $version last answered
}

func newSimDevice(s *Sim, spec deviceSpec) *simDevice {
	return &simDevice{sim: s, spec: spec, rng: rand.New(rand.NewPCG(spec.seed, 2))}
}

func (d *simDevice) clientOrNil() *device.Client {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.client
}

func (d *simDevice) behaviour() *Behaviour { return &d.spec.group.Behaviour }

// register makes sure the device exists in the registry, sets its tags and
// works out its connection string.
func (d *simDevice) register(ctx context.Context) error {
	s, id := d.sim, d.spec.id
	var dev *iothub.Device
	err := retry(ctx, func() (err error) {
		dev, err = s.svc.CreateDevice(ctx, iothub.Device{DeviceID: id})
		return err
	})
	switch {
	case err == nil:
		s.stats.created.Add(1)
	case iothub.KindOf(err) == iothub.KindConflict:
		err = retry(ctx, func() (err error) {
			dev, err = s.svc.GetDevice(ctx, id)
			return err
		})
		if err != nil {
			return err
		}
	default:
		return err
	}
	if len(d.spec.tags) > 0 {
		err := retry(ctx, func() error {
			_, err := s.svc.UpdateTwin(ctx, id, iothub.TwinPatch{Tags: d.spec.tags}, "")
			return err
		})
		if err != nil {
			return err
		}
	}
	d.cs, err = d.connectionString(dev)
	return err
}

func (d *simDevice) connectionString(dev *iothub.Device) (*iothub.ConnectionString, error) {
	id, cfg := d.spec.id, &d.sim.cfg
	if cfg.DeviceConnectionString != nil {
		str, err := cfg.DeviceConnectionString(id)
		if err != nil {
			return nil, fmt.Errorf("connection string of device %s: %w", id, err)
		}
		cs, err := iothub.ParseConnectionString(str)
		if err != nil {
			return nil, fmt.Errorf("connection string of device %s: %w", id, err)
		}
		if cs.DeviceID != id {
			return nil, fmt.Errorf("connection string of device %s names device %q", id, cs.DeviceID)
		}
		return cs, nil
	}
	a := dev.Authentication
	if a == nil || a.SymmetricKey == nil || a.SymmetricKey.PrimaryKey == "" {
		return nil, fmt.Errorf("device %s has no symmetric key; only devices with SAS authentication can be simulated", id)
	}
	gateway := cfg.GatewayHostName
	if host, _, err := net.SplitHostPort(cfg.Hub.HostName); gateway == "" && err == nil {
		gateway = host
	}
	return &iothub.ConnectionString{
		HostName:        cfg.Hub.HostName,
		DeviceID:        id,
		SharedAccessKey: a.SymmetricKey.PrimaryKey,
		GatewayHostName: gateway,
	}, nil
}

// start connects the device and reports its initial state; an offline
// device then disconnects for good.
func (d *simDevice) start(ctx context.Context) error {
	id := d.spec.id
	c, err := d.sim.newClient(d.cs)
	if err != nil {
		return fmt.Errorf("device %s: %w", id, err)
	}
	d.cs = nil
	if !d.spec.offline {
		c.Handle(MethodReboot, d.onReboot)
		c.Handle(MethodFirmwareUpdate, d.onFirmwareUpdate)
		c.OnDesired(d.onDesired)
		c.OnConnectionChange(d.onConnectionChange)
	}
	d.mu.Lock()
	d.client = c
	d.mu.Unlock()
	if err := connect(ctx, c, 4); err != nil {
		return fmt.Errorf("connect device %s: %w", id, err)
	}
	desired, reported, err := c.GetTwin(ctx)
	if err != nil {
		return fmt.Errorf("read twin of device %s: %w", id, err)
	}
	initial := map[string]any{
		"firmwareStatus":      StatusStandBy,
		"logTime":             d.timestamp(),
		"firmwareUpdateError": nil,
	}
	maps.Copy(initial, d.spec.reported)
	if _, err := c.UpdateReported(ctx, initial); err != nil {
		return fmt.Errorf("report initial state of device %s: %w", id, err)
	}
	d.sim.notifyReport(id, initial)
	if d.spec.offline {
		return c.Close()
	}
	d.reconcileWindow(desired, reported)
	return nil
}

// retry runs op again while the hub throttles or fails transiently, as a
// real hub's registry quotas (a hundred operations a minute per unit on S1)
// make it do for a large fleet, waiting at least what the hub asks for.
func retry(ctx context.Context, op func() error) error {
	delay := 500 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := op()
		if err == nil || attempt == 10 || !iothub.IsRetryable(err) {
			return err
		}
		if !sleep(ctx, max(iothub.RetryAfterOf(err), delay)) {
			return err
		}
		delay = min(2*delay, 30*time.Second)
	}
}

// connect tries c.Connect up to attempts times (0: until ctx ends), backing
// off between tries. A refused key is not retried.
func connect(ctx context.Context, c *device.Client, attempts int) error {
	delay := 100 * time.Millisecond
	for i := 1; ; i++ {
		err := c.Connect(ctx)
		if err == nil || errors.Is(err, device.ErrUnauthorized) || errors.Is(err, device.ErrClosed) || i == attempts {
			return err
		}
		if !sleep(ctx, delay+time.Duration(rand.Int64N(int64(delay)))) {
			return err
		}
		delay = min(2*delay, 5*time.Second)
	}
}

// reconnect brings the device back after a deliberate disconnect, sends
// what it could not report meanwhile and catches up with its desired
// properties.
func (d *simDevice) reconnect(ctx context.Context) error {
	c := d.clientOrNil()
	if err := connect(ctx, c, 0); err != nil {
		return err
	}
	d.flush(ctx)
	tctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	desired, reported, err := c.GetTwin(tctx)
	if err != nil {
		d.sim.log.Debug("read twin after reconnect", "device", d.spec.id, "err", err)
		return nil
	}
	d.reconcileWindow(desired, reported)
	return nil
}

func (d *simDevice) onConnectionChange(connected bool, _ error) {
	if !connected {
		return
	}
	d.mu.Lock()
	waiting := d.pending != nil
	d.mu.Unlock()
	if waiting {
		d.sim.spawn(d.flush)
	}
}

func (d *simDevice) timestamp() string { return d.sim.now().UTC().Format(TimestampFormat) }

func (d *simDevice) draw(r Range) time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	return r.Draw(d.rng)
}

func (d *simDevice) chance(p float64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.rng.Float64() < p
}

// slowDown holds a slow device's method answer back.
func (d *simDevice) slowDown(ctx context.Context) {
	if d.spec.slow {
		sleep(ctx, d.draw(d.behaviour().Slow.Delay))
	}
}

func answer(msg string) []byte {
	b, _ := json.Marshal(struct {
		Response string `json:"Response"`
	}{msg})
	return b
}

// onReboot answers rebootDevice at once, then reboots: the device goes
// offline for the reboot time, comes back and reports rebootTime.
func (d *simDevice) onReboot(ctx context.Context, _ json.RawMessage) (int, []byte) {
	d.slowDown(ctx)
	d.sim.stats.methods.Add(1)
	if !d.sim.spawn(d.reboot) {
		return 503, answer("Device is shutting down")
	}
	return 200, answer("Reboot started")
}

func (d *simDevice) reboot(ctx context.Context) {
	d.connMu.Lock()
	defer d.connMu.Unlock()
	if !sleep(ctx, answerGrace) {
		return
	}
	c := d.clientOrNil()
	down := d.draw(d.behaviour().RebootTime)
	d.sim.log.Debug("rebooting", "device", d.spec.id, "for", down)
	_ = c.Disconnect(ctx)
	if !sleep(ctx, down) {
		return
	}
	if err := d.reconnect(ctx); err != nil {
		d.sim.log.Debug("reconnect after reboot", "device", d.spec.id, "err", err)
		return
	}
	// Counters move before the report, so whoever sees the twin change
	// also sees them.
	d.sim.stats.reboots.Add(1)
	d.report(ctx, map[string]any{"rebootTime": d.timestamp()})
}

// onFirmwareUpdate starts a firmware update and answers at once; the
// stages follow in reported properties. A device runs one update at a time:
// a call while one is under way gets 409.
func (d *simDevice) onFirmwareUpdate(ctx context.Context, payload json.RawMessage) (int, []byte) {
	d.slowDown(ctx)
	d.sim.stats.methods.Add(1)
	var req struct {
		URI *string `json:"fwPackageUri"`
	}
	if err := json.Unmarshal(payload, &req); err != nil || req.URI == nil || *req.URI == "" {
		return 400, answer(`Expected a payload such as {"fwPackageUri":"https://example.com/firmware-2.1.0.bin"}`)
	}
	d.mu.Lock()
	if d.updating {
		d.mu.Unlock()
		return 409, answer("Firmware update already in progress")
	}
	d.updating = true
	d.mu.Unlock()
	uri := *req.URI
	if !d.sim.spawn(func(ctx context.Context) { d.firmware(ctx, uri) }) {
		d.setUpdating(false)
		return 503, answer("Device is shutting down")
	}
	return 200, answer("Firmware update started")
}

func (d *simDevice) setUpdating(v bool) {
	d.mu.Lock()
	d.updating = v
	d.mu.Unlock()
}

// firmware runs the stages of an update: downloading (ending with
// downloadComplete), applying (from startedApplyingImage), then completed
// with lastFirmwareUpdate and the new fwVersion, or failed with
// firmwareUpdateError.
func (d *simDevice) firmware(ctx context.Context, uri string) {
	fw := d.behaviour().Firmware
	d.sim.stats.fwStarted.Add(1)
	d.sim.log.Debug("firmware update started", "device", d.spec.id, "uri", uri)
	d.report(ctx, map[string]any{
		"firmwareStatus":       StatusDownloading,
		"fwPackageUri":         uri,
		"firmwareUpdateError":  nil,
		"downloadComplete":     nil,
		"startedApplyingImage": nil,
	})
	if !sleep(ctx, d.draw(fw.Downloading)) {
		return
	}
	if fw.FailDownloading > 0 && d.chance(fw.FailDownloading) {
		d.fail(ctx, StatusDownloading, "download failed: the package could not be retrieved")
		return
	}
	d.report(ctx, map[string]any{"downloadComplete": d.timestamp()})
	d.report(ctx, map[string]any{"firmwareStatus": StatusApplying, "startedApplyingImage": d.timestamp()})
	if !sleep(ctx, d.draw(fw.Applying)) {
		return
	}
	if fw.FailApplying > 0 && d.chance(fw.FailApplying) {
		d.fail(ctx, StatusApplying, "apply failed: the image did not verify")
		return
	}
	done := map[string]any{"firmwareStatus": StatusCompleted, "lastFirmwareUpdate": d.timestamp()}
	if v, ok := VersionFromURI(fw.VersionPattern, uri); ok {
		done["fwVersion"] = v
	} else {
		d.sim.log.Debug("no version in firmware URI; fwVersion unchanged", "device", d.spec.id, "uri", uri)
	}
	// Accept the next update before reporting, so a caller that reacts to
	// "completed" at once is not refused.
	d.setUpdating(false)
	d.sim.stats.fwCompleted.Add(1)
	d.report(ctx, done)
}

func (d *simDevice) fail(ctx context.Context, stage, msg string) {
	d.setUpdating(false)
	d.sim.stats.fwFailed.Add(1)
	d.report(ctx, map[string]any{
		"firmwareStatus": StatusFailed,
		"firmwareUpdateError": map[string]any{
			"stage":   stage,
			"message": msg,
			"time":    d.timestamp(),
		},
	})
	d.sim.log.Debug("firmware update failed", "device", d.spec.id, "stage", stage)
}

// reportRetryDelay is the least wait before a throttled reported patch is
// sent again.
const reportRetryDelay = time.Second

// report queues patch and sends what is queued. A patch that cannot be sent
// for want of a connection stays queued, merged with later ones, until the
// device is connected again.
func (d *simDevice) report(ctx context.Context, patch map[string]any) {
	d.mu.Lock()
	d.pending = mergePatch(d.pending, patch)
	d.mu.Unlock()
	d.flush(ctx)
}

func (d *simDevice) flush(ctx context.Context) {
	d.flushMu.Lock()
	defer d.flushMu.Unlock()
	d.mu.Lock()
	p, c := d.pending, d.client
	d.pending = nil
	d.mu.Unlock()
	if p == nil || c == nil {
		return
	}
	tctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	_, err := c.UpdateReported(tctx, p)
	var hubErr *iothub.Error
	switch {
	case err == nil:
		d.sim.notifyReport(d.spec.id, p)
	case errors.As(err, &hubErr) && iothub.IsRetryable(err):
		// Throttled or a transient hub fault: a real device's SDK backs off
		// and sends the patch again, so the hub still hears the outcome.
		d.mu.Lock()
		d.pending = mergePatch(p, d.pending)
		d.mu.Unlock()
		d.sim.stats.reportsDeferred.Add(1)
		delay := max(hubErr.RetryAfter, reportRetryDelay)
		time.AfterFunc(delay, func() { d.sim.spawn(d.flush) })
		d.sim.log.Debug("reported patch throttled; retrying", "device", d.spec.id, "delay", delay, "err", err)
	case errors.As(err, &hubErr):
		// The hub refused the patch itself; sending it again cannot help.
		d.sim.log.Warn("reported patch refused", "device", d.spec.id, "err", err)
	default:
		d.mu.Lock()
		d.pending = mergePatch(p, d.pending)
		d.mu.Unlock()
		d.sim.stats.reportsDeferred.Add(1)
		d.sim.log.Debug("reported patch deferred", "device", d.spec.id, "err", err)
	}
}

func (s *Sim) notifyReport(id string, patch map[string]any) {
	if s.cfg.OnReport != nil {
		s.cfg.OnReport(id, patch)
	}
}

// scheduleFlap arms a flaky device's next disconnect, exponentially
// distributed at the group's rate.
func (d *simDevice) scheduleFlap() {
	if !d.spec.flaky {
		return
	}
	rate := d.behaviour().Flaky.DisconnectsPerHour
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.sim.ctx.Err() != nil {
		return
	}
	wait := min(time.Duration(d.rng.ExpFloat64()/rate*float64(time.Hour)), maxFlakyWait)
	d.flakyTimer = time.AfterFunc(wait, func() { d.sim.spawn(d.flap) })
}

func (d *simDevice) stopFlaky() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.flakyTimer != nil {
		d.flakyTimer.Stop()
	}
}

func (d *simDevice) flap(ctx context.Context) {
	defer d.scheduleFlap()
	// A reboot under way already has the device offline.
	if !d.connMu.TryLock() {
		return
	}
	defer d.connMu.Unlock()
	c := d.clientOrNil()
	if !c.IsConnected() {
		return
	}
	down := d.draw(d.behaviour().Flaky.Downtime)
	d.sim.stats.disconnects.Add(1)
	d.sim.log.Debug("connection dropped", "device", d.spec.id, "for", down)
	_ = c.Disconnect(ctx)
	if !sleep(ctx, down) {
		return
	}
	if err := d.reconnect(ctx); err != nil {
		d.sim.log.Debug("reconnect after drop", "device", d.spec.id, "err", err)
	}
}
