package runner

import (
	"container/heap"
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hubflow/hubflow/iothub"
	"github.com/hubflow/hubflow/jobs"
)

// Observer pacing. Observation runs on real time whatever the runner's
// Clock: devices change at their own pace, and a test clock that runs fast
// must not make the observer poll faster than the devices can answer.
const (
	minObserveInterval = 40 * time.Millisecond
	maxObserveInterval = 10 * time.Second
	// growth stretches the interval of a device whose twin did not change.
	observeGrowth = 1.5
	// observeWorkers bounds the observer's requests in flight.
	observeWorkers = 16
	// maxProbe bounds the devices in one batched probe (whose rows are
	// small) and maxFetch those in one query for whole twins, which a
	// reader holds in memory at once.
	maxProbe = 1000
	maxFetch = 250
)

// observer reads the twins of devices whose step is in progress and hands
// each changed twin to the device's execution. It spends the twin-read
// budget on the devices whose next change is most likely due: each device
// is polled at an interval learned from how often its twin changed, starting
// from what other devices of the same step showed, and the most overdue
// device is read first when the budget is the bottleneck. Where queries are
// cheap (an unmetered hub, or S3), devices due at about the same time are
// read together: one `deviceId IN [...]` query for their versions, and one
// for the whole twins of those that changed.
type observer struct {
	hub    Hub
	budget *Budget
	batch  bool
	log    *slog.Logger

	mu      sync.Mutex
	due     watchHeap
	classes map[string]*classEstimate
	wake    chan struct{}
	sem     chan struct{}

	reads, queries, delivered int64
}

// classEstimate is what devices of one step have shown: how long after the
// invocation their twin first changed, and how far apart later changes were.
type classEstimate struct {
	first, gap time.Duration
}

// watch is one device being observed.
type watch struct {
	id    string
	class string
	c     chan *observation

	// Guarded by observer.mu.
	due        time.Time
	interval   time.Duration
	gap        time.Duration // estimated time between changes
	started    time.Time
	lastKey    string
	lastChange time.Time
	probe      string    // probeKey of the last full read
	lastFull   time.Time // when the twin was last read in full
	idx        int       // position in the heap, -1 when not queued
	done       bool
}

// observation is a twin and when it was read.
type observation struct {
	twin *iothub.Twin
	at   time.Time
}

func newObserver(hub Hub, budget *Budget, log *slog.Logger) *observer {
	q := budget.Quota()[OpQuery]
	return &observer{
		hub:    hub,
		budget: budget,
		// A query per second or more (S3, or an unmetered hub) makes a
		// batched read cheaper than reading twins one by one; on S1 and S2
		// the few queries a minute are kept for resolving targets.
		batch:   q >= 1,
		log:     log,
		classes: map[string]*classEstimate{},
		wake:    make(chan struct{}, 1),
		sem:     make(chan struct{}, observeWorkers),
	}
}

// add starts observing a device for a step (class) that was just invoked.
func (o *observer) add(id, class string) *watch {
	now := time.Now()
	w := &watch{id: id, class: class, c: make(chan *observation, 1), started: now, idx: -1}
	o.mu.Lock()
	est := o.classes[class]
	first, gap := minObserveInterval, 4*minObserveInterval
	if est != nil {
		// Read a little before the change is expected, then stretch.
		first = max(minObserveInterval, est.first*3/4)
		gap = max(minObserveInterval, est.gap)
	}
	w.interval, w.gap = first, gap
	w.due = now.Add(first)
	heap.Push(&o.due, w)
	o.mu.Unlock()
	o.poke()
	return w
}

// remove stops observing w.
func (o *observer) remove(w *watch) {
	o.mu.Lock()
	w.done = true
	if w.idx >= 0 {
		heap.Remove(&o.due, w.idx)
	}
	o.mu.Unlock()
}

func (o *observer) poke() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// run polls until ctx is done and every request it started has returned.
func (o *observer) run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		o.mu.Lock()
		var wait time.Duration = -1
		ndue := 0
		if len(o.due) > 0 {
			now := time.Now()
			if d := o.due[0].due.Sub(now); d > 0 {
				wait = d
			} else {
				ndue = o.countDue(now)
			}
		}
		o.mu.Unlock()
		if ndue == 0 {
			if wait < 0 {
				wait = time.Hour
			}
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return
			case <-o.wake:
				if !timer.Stop() {
					<-timer.C
				}
			case <-timer.C:
			}
			continue
		}
		op := OpTwinRead
		if o.batch && ndue > 1 {
			op = OpQuery
		}
		// The budget is spent before the devices are chosen, so that when
		// reads are scarce the choice is made with the latest due times.
		if err := o.budget.Wait(ctx, op, 1); err != nil {
			return
		}
		select {
		case o.sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		ws := o.take(op == OpQuery)
		if len(ws) == 0 {
			<-o.sem
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-o.sem }()
			if len(ws) == 1 {
				o.readOne(ctx, ws[0])
			} else {
				o.readBatch(ctx, ws)
			}
		}()
	}
}

// countDue counts the due watches, up to a batch. Called with mu held.
func (o *observer) countDue(now time.Time) int {
	n := 0
	for _, w := range o.due {
		if !w.due.After(now) {
			n++
			if n > 1 {
				break
			}
		}
	}
	return n
}

// take pops the watches to read now: the most overdue one, or for a
// batch every watch due within the next minimum interval that fits in one
// query. Called without mu.
func (o *observer) take(batch bool) []*watch {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := time.Now()
	if len(o.due) == 0 || o.due[0].due.After(now) {
		return nil
	}
	if !batch {
		return []*watch{heap.Pop(&o.due).(*watch)}
	}
	horizon := now.Add(minObserveInterval / 2)
	length := len(probeQueryPrefix) + 2
	var ws []*watch
	for len(o.due) > 0 && !o.due[0].due.After(horizon) && len(ws) < maxProbe {
		q := jobs.QuoteString(o.due[0].id)
		if length+len(q)+1 > iothub.MaxQueryLength {
			break
		}
		length += len(q) + 1
		ws = append(ws, heap.Pop(&o.due).(*watch))
	}
	return ws
}

// Batched reads: whole twins, and the probe of their versions (the
// longer of the two bounds a batch's length).
const (
	batchQueryPrefix = "SELECT * FROM devices WHERE deviceId IN "
	probeQueryPrefix = "SELECT deviceId, etag, version FROM devices WHERE deviceId IN "
)

func (o *observer) readOne(ctx context.Context, w *watch) {
	twin, err := o.hub.GetTwin(ctx, w.id)
	o.mu.Lock()
	o.reads++
	o.mu.Unlock()
	now := time.Now()
	if err != nil {
		o.failed(ctx, w, OpTwinRead, err, now)
		return
	}
	o.deliver(w, twin, now)
}

// readBatch reads a batch of due devices in two queries: a probe of
// their etag and version, then the whole twins of those that changed. Most
// polls find a device unchanged, and the probe's rows are a few dozen
// bytes where a twin is kilobytes. A device is read in full at least every
// maxObserveInterval whatever its probe says, in case a hub does not move
// a twin's version when only reported properties change.
func (o *observer) readBatch(ctx context.Context, ws []*watch) {
	now := time.Now()
	rows, err := o.query(ctx, probeQueryPrefix, ws)
	if err != nil {
		for _, w := range ws {
			o.failed(ctx, w, OpQuery, err, now)
		}
		return
	}
	byID := make(map[string]*watch, len(ws))
	for _, w := range ws {
		byID[w.id] = w
	}
	var changed, same []*watch
	now = time.Now()
	o.mu.Lock()
	for _, t := range rows {
		w := byID[t.DeviceID]
		if w == nil {
			continue
		}
		delete(byID, t.DeviceID)
		if probeKey(t) != w.probe || now.Sub(w.lastFull) >= maxObserveInterval {
			changed = append(changed, w)
		} else {
			same = append(same, w)
		}
	}
	o.mu.Unlock()
	for _, w := range same {
		o.reschedule(w, now, false)
	}
	// A device the query did not return (deleted, or not yet indexed) is
	// tried again later; its step's timeout bounds the wait.
	for _, w := range byID {
		o.reschedule(w, now, false)
	}
	switch len(changed) {
	case 0:
		return
	case 1:
		if err := o.budget.Wait(ctx, OpTwinRead, 1); err != nil {
			return
		}
		o.readOne(ctx, changed[0])
		return
	}
	for len(changed) > 0 {
		chunk := changed[:min(len(changed), maxFetch)]
		changed = changed[len(chunk):]
		if err := o.budget.Wait(ctx, OpQuery, 1); err != nil {
			return
		}
		o.fetch(ctx, chunk)
	}
}

// fetch reads the whole twins of ws with one query and delivers them.
func (o *observer) fetch(ctx context.Context, ws []*watch) {
	twins, err := o.query(ctx, batchQueryPrefix, ws)
	now := time.Now()
	if err != nil {
		for _, w := range ws {
			o.failed(ctx, w, OpQuery, err, now)
		}
		return
	}
	left := make(map[string]*watch, len(ws))
	for _, w := range ws {
		left[w.id] = w
	}
	for _, t := range twins {
		if w := left[t.DeviceID]; w != nil {
			delete(left, t.DeviceID)
			o.deliver(w, t, now)
		}
	}
	for _, w := range left {
		o.reschedule(w, now, false)
	}
}

// query runs prefix + [ids of ws] to its last page. The caller has spent
// the budget of the first page; later pages wait for their own.
func (o *observer) query(ctx context.Context, prefix string, ws []*watch) ([]*iothub.Twin, error) {
	var b strings.Builder
	b.WriteString(prefix)
	b.WriteByte('[')
	for i, w := range ws {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(jobs.QuoteString(w.id))
	}
	b.WriteByte(']')
	var out []*iothub.Twin
	pages := o.hub.QueryTwins(ctx, b.String())
	for page := 0; pages.More(); page++ {
		if page > 0 {
			if err := o.budget.Wait(ctx, OpQuery, 1); err != nil {
				return nil, err
			}
		}
		twins, err := pages.Next(ctx)
		o.mu.Lock()
		o.queries++
		o.mu.Unlock()
		if err != nil {
			return nil, err
		}
		out = append(out, twins...)
	}
	return out, nil
}

// probeKey identifies a twin's version from the fields a probe returns.
func probeKey(t *iothub.Twin) string {
	return t.ETag + "/" + strconv.FormatInt(t.Version, 10)
}

// failed reschedules a watch whose read failed; a throttled read slows the
// whole budget down.
func (o *observer) failed(ctx context.Context, w *watch, op Op, err error, now time.Time) {
	if ctx.Err() != nil {
		return
	}
	delay := time.Duration(0)
	if iothub.KindOf(err) == iothub.KindThrottled {
		ra := iothub.RetryAfterOf(err)
		o.budget.Throttled(op, ra)
		delay = ra
	} else {
		o.log.Debug("observe twin", slog.String(keyDevice, w.id), slog.String(keyError, err.Error()))
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if w.done {
		return
	}
	w.interval = min(maxObserveInterval, max(w.interval*2, delay, minObserveInterval))
	w.due = now.Add(w.interval)
	heap.Push(&o.due, w)
	o.pokeLocked()
}

func (o *observer) pokeLocked() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// changeKey identifies a twin's content well enough to tell whether it
// changed since the last read.
func changeKey(t *iothub.Twin) string {
	return fmt.Sprintf("%s/%d/%d/%d", t.ETag, t.Version,
		iothub.SectionVersion(t.Properties.Reported), iothub.SectionVersion(t.Properties.Desired))
}

func (o *observer) deliver(w *watch, twin *iothub.Twin, now time.Time) {
	key := changeKey(twin)
	o.mu.Lock()
	if w.done {
		o.mu.Unlock()
		return
	}
	changed := key != w.lastKey
	first := w.lastKey == ""
	w.probe, w.lastFull = probeKey(twin), now
	if changed {
		o.learn(w, now, first)
		w.lastKey, w.lastChange = key, now
	}
	o.delivered++
	o.mu.Unlock()
	if changed {
		ob := &observation{twin: twin, at: now}
		// The execution only needs the latest twin: replace one it has not
		// taken yet.
		select {
		case w.c <- ob:
		default:
			select {
			case <-w.c:
			default:
			}
			select {
			case w.c <- ob:
			default:
			}
		}
	}
	o.reschedule(w, now, changed)
}

// learn updates the device's and its step's change estimates. Called with
// mu held.
func (o *observer) learn(w *watch, now time.Time, first bool) {
	est := o.classes[w.class]
	if est == nil {
		est = &classEstimate{}
		o.classes[w.class] = est
	}
	if first {
		// The first read shows the twin as the invocation left it; its
		// time says how soon after the call there is something to see.
		d := now.Sub(w.started)
		est.first = ewma(est.first, d)
		return
	}
	gap := now.Sub(w.lastChange)
	w.gap = ewma(w.gap, gap)
	est.gap = ewma(est.gap, gap)
}

func ewma(old, sample time.Duration) time.Duration {
	if old == 0 {
		return sample
	}
	return (old*3 + sample) / 4
}

func (o *observer) reschedule(w *watch, now time.Time, changed bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if w.done {
		return
	}
	if changed {
		// The next change is expected about one gap after this one; the
		// change happened somewhere since the previous read, so look a
		// little early.
		w.interval = max(minObserveInterval, w.gap*3/4)
	} else {
		w.interval = min(maxObserveInterval, max(minObserveInterval, time.Duration(float64(w.interval)*observeGrowth)))
	}
	w.due = now.Add(w.interval)
	heap.Push(&o.due, w)
	o.pokeLocked()
}

// stats returns the twin reads and queries the observer made.
func (o *observer) stats() (reads, queries int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.reads, o.queries
}

// watchHeap orders watches by due time.
type watchHeap []*watch

func (h watchHeap) Len() int           { return len(h) }
func (h watchHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h watchHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *watchHeap) Push(x any) {
	w := x.(*watch)
	w.idx = len(*h)
	*h = append(*h, w)
}
func (h *watchHeap) Pop() any {
	old := *h
	n := len(old)
	w := old[n-1]
	old[n-1] = nil
	w.idx = -1
	*h = old[:n-1]
	return w
}
