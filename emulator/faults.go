package emulator

import (
	"errors"
	"math/rand/v2"
	"sync"
	"time"
)

// errFaultDisconnect is the stop cause of connections closed by a fault.
var errFaultDisconnect = errors.New("disconnected by fault injection")

// Faults injects failures into a running hub, for reliability tests. All
// methods are safe for concurrent use; periods are measured on the hub's
// clock (Options.Now).
type Faults struct {
	h *Hub

	mu            sync.Mutex
	methodLatency time.Duration
	dropFraction  float64
	failStatus    int
	failUntil     time.Time
	throttleUntil time.Time
}

// MethodLatency delays every method request by d before it is delivered to
// the device (0 removes the delay). The delay counts against the call's
// response timeout, as network latency would.
func (f *Faults) MethodLatency(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.methodLatency = max(0, d)
}

// DropMethods discards the given fraction (0 to 1) of method requests
// instead of delivering them: the device never sees them and the caller
// gets 504 when the response timeout ends.
func (f *Faults) DropMethods(fraction float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dropFraction = min(1, max(0, fraction))
}

// DisconnectDevice closes device id's MQTT connection, as a network failure
// would; its persistent session stays, so it may reconnect. It reports
// whether the device was connected.
func (f *Faults) DisconnectDevice(id string) bool {
	d := f.h.reg.get(id)
	if d == nil {
		return false
	}
	return f.disconnect(d)
}

// DisconnectAll closes every device connection and returns how many there
// were.
func (f *Faults) DisconnectAll() int {
	n := 0
	for _, d := range f.h.reg.ordered() {
		if f.disconnect(d) {
			n++
		}
	}
	return n
}

func (f *Faults) disconnect(d *device) bool {
	d.mu.Lock()
	cl := d.client
	d.mu.Unlock()
	if cl == nil || cl.Closed() {
		return false
	}
	cl.Stop(errFaultDisconnect)
	return true
}

// FailREST makes every REST request answer status (a 5xx; anything else is
// taken as 503) for the period d from now, before authentication, as an
// outage would.
func (f *Faults) FailREST(status int, d time.Duration) {
	if status < 500 || status > 599 {
		status = 503
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failStatus = status
	f.failUntil = f.h.now().Add(d)
}

// Throttle makes every metered operation (registry, twin reads and updates,
// methods, queries; REST and MQTT) answer 429 ThrottlingException for the
// period d from now, whatever the tier.
func (f *Faults) Throttle(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.throttleUntil = f.h.now().Add(d)
}

// ClearAll removes every fault.
func (f *Faults) ClearAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.methodLatency, f.dropFraction = 0, 0
	f.failStatus, f.failUntil, f.throttleUntil = 0, time.Time{}, time.Time{}
}

// restFailure returns the status to fail a REST request with, if any.
func (f *Faults) restFailure(now time.Time) (int, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failStatus != 0 && now.Before(f.failUntil) {
		return f.failStatus, true
	}
	return 0, false
}

// throttled reports whether a throttle storm is on, and for how much longer.
func (f *Faults) throttled(now time.Time) (time.Duration, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if now.Before(f.throttleUntil) {
		left := f.throttleUntil.Sub(now)
		return max(time.Second, (left+time.Second-1)/time.Second*time.Second), true
	}
	return 0, false
}

// methodFault returns the latency to add to a method call and whether to
// drop it.
func (f *Faults) methodFault() (time.Duration, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	drop := f.dropFraction > 0 && rand.Float64() < f.dropFraction
	return f.methodLatency, drop
}
