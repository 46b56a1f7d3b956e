package bench

import (
	"encoding/json"
	"sync"
	"sync/atomic"
)

// reportWatch hands the devices' reported patches, as the simulator sees
// them accepted, to whoever waits for a device: the workflow limit's
// callers learn that a device is done without asking the hub.
type reportWatch struct {
	active atomic.Bool

	mu      sync.Mutex
	waiters map[string]*waiter
}

type waiter struct {
	done func(patch map[string]any) bool
	c    chan struct{}
}

func newReportWatch() *reportWatch {
	return &reportWatch{waiters: map[string]*waiter{}}
}

// onReport takes one reported patch; it never blocks. While nobody
// watches it returns at once, so that the run's figures do not pay for it.
func (w *reportWatch) onReport(id string, patch map[string]any) {
	if !w.active.Load() {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if wt := w.waiters[id]; wt != nil && wt.done(patch) {
		delete(w.waiters, id)
		close(wt.c)
	}
}

// onLine takes one line of `hubflow simulate -reports`.
func (w *reportWatch) onLine(line []byte) {
	if !w.active.Load() {
		return
	}
	var r struct {
		Device   string         `json:"device"`
		Reported map[string]any `json:"reported"`
	}
	if json.Unmarshal(line, &r) == nil && r.Device != "" {
		w.onReport(r.Device, r.Reported)
	}
}

// expect returns a channel closed once device id reports a patch for which
// done holds. Call it before the action that makes the device report.
func (w *reportWatch) expect(id string, done func(map[string]any) bool) <-chan struct{} {
	wt := &waiter{done: done, c: make(chan struct{})}
	w.mu.Lock()
	w.waiters[id] = wt
	w.mu.Unlock()
	return wt.c
}

// forget drops the wait for id.
func (w *reportWatch) forget(id string) {
	w.mu.Lock()
	delete(w.waiters, id)
	w.mu.Unlock()
}
