package emulator

import (
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/hubflow/hubflow/iothub"
)

// Registry errors returned by the in-process API.
var (
	// ErrDeviceExists is returned by CreateDevice for an id already registered.
	ErrDeviceExists = errors.New("device already exists")
	// ErrDeviceNotFound is returned for an id that is not registered.
	ErrDeviceNotFound = errors.New("device not found")
)

// maxDeviceIDLength is the hub's limit on device ids.
const maxDeviceIDLength = 128

// reservedClientID is the broker's own client id; a device with this id
// would replace the broker's entry, so it cannot be registered.
const reservedClientID = "inline"

// validDeviceID checks the hub's device-id rules: case-sensitive ASCII
// letters, digits and - : . + % _ # * ? ! ( ) , = @ ; $ ', at most 128.
func validDeviceID(id string) error {
	if id == "" {
		return errors.New("device id is empty")
	}
	if len(id) > maxDeviceIDLength {
		return fmt.Errorf("device id is longer than %d characters", maxDeviceIDLength)
	}
	if id == reservedClientID {
		return fmt.Errorf("device id %q is reserved by the emulator's MQTT broker", id)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c < 0x80 && isIDPunct(c):
		default:
			return fmt.Errorf("device id %q contains %q; allowed are ASCII letters, digits and - : . + %% _ # * ? ! ( ) , = @ ; $ '", id, rune(c))
		}
	}
	return nil
}

func isIDPunct(c byte) bool {
	switch c {
	case '-', ':', '.', '+', '%', '_', '#', '*', '?', '!', '(', ')', ',', '=', '@', ';', '$', '\'':
		return true
	}
	return false
}

// device is one registered identity with its twin and connection state.
// All fields after mu are guarded by it; id never changes.
type device struct {
	id string

	mu           sync.Mutex
	primaryKey   string
	secondaryKey string
	status       string // "enabled" or "disabled"
	statusReason string
	statusTime   time.Time
	generationID string
	etag         int64 // device (identity) etag counter
	deleted      bool

	// client is the MQTT connection that most recently began a session for
	// this device; established says it has been CONNACKed.
	client       *mqtt.Client
	established  bool
	connected    bool
	connTime     time.Time
	lastActivity time.Time
	tokenExpiry  time.Time
	methodsOn    bool          // established and subscribed to method requests
	stateCh      chan struct{} // closed (and replaced) on every presence change

	pending map[string]*call // method calls awaiting an answer, by rid

	twin     twin
	propsDoc map[string]any // cached tags+properties part; nil when stale

	reportedLog []ReportedPatch

	// sendMu orders hub-to-device twin notifications: it is taken while
	// mu is held and kept across the network write.
	sendMu sync.Mutex

	// doc is the cached rendering of the twin for REST and queries; nil
	// when stale. It is stored under mu but may be loaded without it, so
	// that a query over many twins takes no locks.
	doc atomic.Pointer[map[string]any]
}

func newDevice(id string, now time.Time) *device {
	return &device{
		id:           id,
		primaryKey:   newKey(),
		secondaryKey: newKey(),
		status:       "enabled",
		generationID: strconv.FormatInt(now.UnixNano()/1000, 10),
		etag:         1,
		stateCh:      make(chan struct{}),
		pending:      map[string]*call{},
		twin:         newTwin(now),
	}
}

// notifyLocked wakes everyone waiting for a presence change of d; called
// with mu held.
func (d *device) notifyLocked() {
	close(d.stateCh)
	d.stateCh = make(chan struct{})
}

// invalidate drops cached renderings; called with mu held after any change
// visible in a twin or device document.
func (d *device) invalidate(props bool) {
	d.doc.Store(nil)
	if props {
		d.propsDoc = nil
	}
}

// deviceETag is the identity etag: base64 of its decimal counter, as the
// hub shows it ("MQ==" for 1).
func (d *device) deviceETag() string {
	return base64.StdEncoding.EncodeToString([]byte(strconv.FormatInt(d.etag, 10)))
}

func connState(connected bool) string {
	if connected {
		return "Connected"
	}
	return "Disconnected"
}

// identity renders the registry view of d; called with mu held.
func (d *device) identity() iothub.Device {
	return iothub.Device{
		DeviceID:                   d.id,
		GenerationID:               d.generationID,
		ETag:                       d.deviceETag(),
		ConnectionState:            connState(d.connected),
		Status:                     d.status,
		StatusReason:               d.statusReason,
		ConnectionStateUpdatedTime: iothub.FormatTime(d.connTime),
		StatusUpdatedTime:          iothub.FormatTime(d.statusTime),
		LastActivityTime:           iothub.FormatTime(d.lastActivity),
		Authentication: &iothub.Authentication{
			Type:         "sas",
			SymmetricKey: &iothub.SymmetricKey{PrimaryKey: d.primaryKey, SecondaryKey: d.secondaryKey},
		},
		Capabilities: &iothub.Capabilities{},
	}
}

// twinDoc renders the twin as GET /twins returns it and as queries see it.
// The result is cached and shared: callers must not modify it.
func (d *device) twinDoc() map[string]any {
	if p := d.doc.Load(); p != nil {
		return *p
	}
	if d.propsDoc == nil {
		// Everything that changes only with a twin or identity update is
		// rendered here once; the top level below is re-rendered on every
		// connection change.
		d.propsDoc = map[string]any{
			"tags": d.twin.tags.value(),
			"properties": map[string]any{
				"desired":  section(d.twin.desired, d.twin.desVer, true),
				"reported": section(d.twin.reported, d.twin.repVer, false),
			},
			"etag":             d.twin.etag(),
			"deviceEtag":       d.deviceETag(),
			"statusUpdateTime": iothub.FormatTime(d.statusTime),
			"x509Thumbprint":   map[string]any{"primaryThumbprint": nil, "secondaryThumbprint": nil},
			"capabilities":     map[string]any{"iotEdge": false},
		}
	}
	doc := make(map[string]any, 16)
	for k, v := range d.propsDoc {
		doc[k] = v
	}
	doc["deviceId"] = d.id
	doc["version"] = float64(d.twin.version)
	doc["status"] = d.status
	doc["connectionState"] = connState(d.connected)
	doc["lastActivityTime"] = iothub.FormatTime(d.lastActivity)
	doc["cloudToDeviceMessageCount"] = float64(0)
	doc["authenticationType"] = "sas"
	if d.statusReason != "" {
		doc["statusReason"] = d.statusReason
	}
	d.doc.Store(&doc)
	return doc
}

// cachedDoc returns the twin document, taking d.mu only when it must be
// rendered.
func (d *device) cachedDoc() map[string]any {
	if p := d.doc.Load(); p != nil {
		return *p
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.twinDoc()
}

// registry holds every device. Lock order: registry.mu, then device.mu,
// then device.sendMu.
type registry struct {
	mu      sync.RWMutex
	devices map[string]*device
	sorted  []*device // devices in id order; nil when stale; never modified once built
}

func newRegistry() *registry {
	return &registry{devices: map[string]*device{}}
}

func (r *registry) get(id string) *device {
	r.mu.RLock()
	d := r.devices[id]
	r.mu.RUnlock()
	return d
}

func (r *registry) add(d *device) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.devices[d.id]; ok {
		return ErrDeviceExists
	}
	r.devices[d.id] = d
	r.sorted = nil
	return nil
}

func (r *registry) remove(id string) *device {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.devices[id]
	if d != nil {
		delete(r.devices, id)
		r.sorted = nil
	}
	return d
}

func (r *registry) count() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.devices)
}

// ordered returns the devices sorted by id. The slice is shared: callers
// must not modify it.
func (r *registry) ordered() []*device {
	r.mu.RLock()
	s := r.sorted
	r.mu.RUnlock()
	if s != nil {
		return s
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sorted == nil {
		s := slices.Collect(maps.Values(r.devices))
		slices.SortFunc(s, func(a, b *device) int { return strings.Compare(a.id, b.id) })
		r.sorted = s
	}
	return r.sorted
}
