package emulator

import (
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"
)

// Outcome is how a method invocation ended, as the hub saw it.
type Outcome string

// Method invocation outcomes.
const (
	OutcomeAnswered    Outcome = "answered"    // the device answered; Status holds its status
	OutcomeTimeout     Outcome = "timeout"     // delivered, no answer within the response timeout (504)
	OutcomeDropped     Outcome = "dropped"     // discarded by the DropMethods fault, answered 504
	OutcomeOffline     Outcome = "offline"     // the device was not online within the connect timeout (404)
	OutcomeUnavailable Outcome = "unavailable" // the device disconnected before answering (404 "Device unavailable")
	OutcomeCancelled   Outcome = "cancelled"   // the caller went away or the hub closed
)

// Invocation is one direct-method call as the hub handled it.
type Invocation struct {
	DeviceID string
	Method   string
	RID      string    // request id sent to the device; "" when never sent
	Sent     time.Time // when the request was written to the device; zero when never sent
	Outcome  Outcome
	Status   int       // the device's status when Outcome is answered
	Answered time.Time // when the outcome was decided
}

// ReportedPatch is one reported-properties patch a device sent.
type ReportedPatch struct {
	Received time.Time       // hub clock when the patch arrived
	Version  int64           // reported $version after applying it
	Patch    json.RawMessage // the patch as the device sent it
}

// maxReportedLog is how many reported patches are kept per device.
const maxReportedLog = 1024

// witness is the invocation log, a ring of at most limit entries.
type witness struct {
	mu    sync.Mutex
	limit int
	buf   []Invocation
	start int // index of the oldest entry once the ring is full
}

func (w *witness) add(inv Invocation) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) < w.limit {
		w.buf = append(w.buf, inv)
		return
	}
	w.buf[w.start] = inv
	w.start = (w.start + 1) % w.limit
}

func (w *witness) all() []Invocation {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]Invocation, 0, len(w.buf))
	out = append(out, w.buf[w.start:]...)
	return append(out, w.buf[:w.start]...)
}

// Invocations returns every method call the hub handled, oldest first, up to
// Options.WitnessLimit entries. Calls that failed before reaching a known
// device (bad request, unknown device, quota, faults on REST) are not
// included.
func (h *Hub) Invocations() []Invocation { return h.witness.all() }

// ReportedLog returns the reported patches device id sent, oldest first (the
// last 1024), with the hub-clock time each arrived. It is nil for an unknown
// device.
func (h *Hub) ReportedLog(id string) []ReportedPatch {
	d := h.reg.get(id)
	if d == nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]ReportedPatch(nil), d.reportedLog...)
}

// Stats are the hub's counters since Start.
type Stats struct {
	MethodsInvoked    int64 // method requests written to devices
	MethodsAnswered   int64 // answers received from devices
	MethodsTimedOut   int64 // delivered (or dropped) calls answered 504
	Throttled         int64 // 429 answers, REST and MQTT
	TwinReads         int64 // REST GET /twins and MQTT twin GET
	TwinUpdates       int64 // REST PATCH/PUT /twins and MQTT reported PATCH
	Queries           int64 // POST /devices/query pages
	ConnectedDevices  int64 // devices with a live MQTT session now
	RegisteredDevices int64
}

type counters struct {
	methodsInvoked, methodsAnswered, methodsTimedOut atomic.Int64
	throttled, twinReads, twinUpdates, queries       atomic.Int64
	connected                                        atomic.Int64
}

// Stats returns a snapshot of the hub's counters.
func (h *Hub) Stats() Stats {
	return Stats{
		MethodsInvoked:    h.stats.methodsInvoked.Load(),
		MethodsAnswered:   h.stats.methodsAnswered.Load(),
		MethodsTimedOut:   h.stats.methodsTimedOut.Load(),
		Throttled:         h.stats.throttled.Load(),
		TwinReads:         h.stats.twinReads.Load(),
		TwinUpdates:       h.stats.twinUpdates.Load(),
		Queries:           h.stats.queries.Load(),
		ConnectedDevices:  h.stats.connected.Load(),
		RegisteredDevices: int64(h.reg.count()),
	}
}
