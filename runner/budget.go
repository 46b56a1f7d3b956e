package runner

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Op is a class of hub operation that the hub meters separately.
type Op int

// Metered hub operations.
const (
	OpMethod     Op = iota // direct-method invocation, metered in 4 KB units
	OpTwinRead             // GET /twins/{id}
	OpTwinUpdate           // PATCH /twins/{id}
	OpQuery                // POST /devices/query, one page
	numOps
)

var opNames = [numOps]string{"method", "twin read", "twin update", "query"}

func (o Op) String() string {
	if o >= 0 && o < numOps {
		return opNames[o]
	}
	return fmt.Sprintf("op(%d)", int(o))
}

// MethodUnit is the size in bytes in which the hub meters direct methods: a
// call of up to 4 KB costs one unit.
const MethodUnit = 4096

// MethodCost returns the number of metered units a method call with a
// payload of n bytes costs (at least one).
func MethodCost(n int) int {
	if n <= MethodUnit {
		return 1
	}
	return (n + MethodUnit - 1) / MethodUnit
}

// Quota is a hub's allowance for each metered operation, in units per
// second (method units of 4 KB, twin reads, twin updates, query pages).
// rate.Inf means unmetered.
type Quota [numOps]rate.Limit

// TierQuota returns the allowance of an IoT Hub of the given tier ("F1",
// "S1", "S2", "S3", case-insensitive) and number of units, from the hub's
// documented throttles. The empty tier means no quota: every operation is
// unmetered. Basic tiers have no direct methods or twins and are refused.
func TierQuota(tier string, units int) (Quota, error) {
	var q Quota
	t := strings.ToUpper(strings.TrimSpace(tier))
	if t == "" {
		for i := range q {
			q[i] = rate.Inf
		}
		return q, nil
	}
	if units < 1 {
		return q, fmt.Errorf("hub units %d: want at least 1", units)
	}
	u := float64(units)
	switch t {
	case "F1":
		if units != 1 {
			return q, fmt.Errorf("hub tier F1 has exactly one unit, got %d", units)
		}
		fallthrough
	case "S1":
		q[OpMethod] = rate.Limit(160 * 1024 / MethodUnit * u)
		q[OpTwinRead] = 100
		q[OpTwinUpdate] = 50
		q[OpQuery] = rate.Limit(20 * u / 60)
	case "S2":
		q[OpMethod] = rate.Limit(480 * 1024 / MethodUnit * u)
		q[OpTwinRead] = rate.Limit(math.Max(100, 10*u))
		q[OpTwinUpdate] = rate.Limit(math.Max(50, 5*u))
		q[OpQuery] = rate.Limit(20 * u / 60)
	case "S3":
		q[OpMethod] = rate.Limit(24 * 1024 * 1024 / MethodUnit * u)
		q[OpTwinRead] = rate.Limit(500 * u)
		q[OpTwinUpdate] = rate.Limit(250 * u)
		q[OpQuery] = rate.Limit(1000 * u / 60)
	case "B1", "B2", "B3":
		return q, fmt.Errorf("hub tier %s has no direct methods or device twins; hubflow needs a standard (S1-S3) or free (F1) hub", t)
	default:
		return q, fmt.Errorf("unknown hub tier %q: want F1, S1, S2 or S3", tier)
	}
	return q, nil
}

// Budget tuning. headroom keeps the steady rate a little under the hub's
// quota so that network jitter, which bunches requests on arrival, does not
// tip a full bucket into 429s.
const (
	headroom         = 0.95
	burstWindow      = 100 * time.Millisecond
	queryBurst       = 5 // query quotas are per minute; a short burst resolves targets quickly
	slowdownFactor   = 0.5
	recoverFactor    = 1.5
	recoverAfter     = 2 * time.Second
	defaultPause     = time.Second
	maxPause         = time.Minute
	throttleDebounce = time.Second
)

// Budget is the quota budget of one hub, shared by every run a process
// makes against it: each hub call the runner makes waits on it first. A
// throttled answer (429) pauses the operation class for the hub's
// Retry-After (a second when absent) and halves its rate, which then
// recovers step by step while no further 429 arrives. This applies to an
// unmetered budget too, from the rate it was observed to run at.
//
// A Budget is safe for concurrent use. It meters in real time, as the hub
// does, whatever Clock the runner uses.
type Budget struct {
	meters [numOps]*meter
}

// NewBudget returns the budget of a hub of tier and units (see TierQuota).
func NewBudget(tier string, units int) (*Budget, error) {
	q, err := TierQuota(tier, units)
	if err != nil {
		return nil, fmt.Errorf("hub budget: %w", err)
	}
	return NewBudgetQuota(q), nil
}

// NewBudgetQuota returns a budget for an explicit allowance.
func NewBudgetQuota(q Quota) *Budget {
	b := &Budget{}
	for i := range q {
		b.meters[i] = newMeter(Op(i), q[i], time.Now)
	}
	return b
}

// Quota returns the steady allowance the budget spends, per operation, in
// units per second (after the headroom it keeps below the hub's quota).
func (b *Budget) Quota() Quota {
	var q Quota
	for i, m := range b.meters {
		q[i] = m.base
	}
	return q
}

// Wait blocks until n units of op may be spent, or ctx is done.
func (b *Budget) Wait(ctx context.Context, op Op, n int) error {
	return b.meters[op].wait(ctx, n)
}

// Throttled tells the budget that the hub answered a call of class op with
// 429; retryAfter is the hub's requested delay (0 when none was given).
func (b *Budget) Throttled(op Op, retryAfter time.Duration) {
	b.meters[op].throttled(retryAfter)
}

// BudgetStats counts what a budget granted and how often the hub throttled.
type BudgetStats struct {
	Granted   [numOps]int64 // units granted per operation
	Throttled [numOps]int64 // 429 answers per operation
}

// Stats returns the counters since the budget was made.
func (b *Budget) Stats() BudgetStats {
	var s BudgetStats
	for i, m := range b.meters {
		m.mu.Lock()
		s.Granted[i], s.Throttled[i] = m.granted, m.nThrottled
		m.mu.Unlock()
	}
	return s
}

// meter is one operation class of a Budget.
type meter struct {
	op  Op
	now func() time.Time

	mu           sync.Mutex
	base         rate.Limit // steady allowance; rate.Inf when unmetered
	lim          *rate.Limiter
	dyn          rate.Limit // slowdown ceiling; rate.Inf when not slowed
	pausedUntil  time.Time
	lastThrottle time.Time
	lastChange   time.Time
	// grants in the current and previous second, to know how fast an
	// unmetered class ran when the hub pushed back.
	secStart         time.Time
	secCount, prevPS int64
	granted          int64
	nThrottled       int64
}

func newMeter(op Op, quota rate.Limit, now func() time.Time) *meter {
	m := &meter{op: op, now: now, base: rate.Inf, dyn: rate.Inf}
	if quota != rate.Inf {
		m.base = quota * headroom
	}
	m.lim = rate.NewLimiter(m.base, m.burstFor(m.base))
	return m
}

func (m *meter) burstFor(l rate.Limit) int {
	if l == rate.Inf {
		return 1
	}
	if m.op == OpQuery {
		return queryBurst
	}
	return max(1, int(math.Ceil(float64(l)*burstWindow.Seconds())))
}

// effective is the rate in force: the allowance, or the slowdown ceiling
// when lower.
func (m *meter) effective() rate.Limit {
	if m.dyn < m.base {
		return m.dyn
	}
	return m.base
}

func (m *meter) wait(ctx context.Context, n int) error {
	if n < 1 {
		n = 1
	}
	for n > 0 {
		now := m.now()
		m.mu.Lock()
		m.recover(now)
		pause := m.pausedUntil.Sub(now)
		var r *rate.Reservation
		chunk := n
		if pause <= 0 {
			chunk = min(n, m.lim.Burst())
			if m.effective() == rate.Inf {
				chunk = n
			}
			r = m.lim.ReserveN(now, chunk)
		}
		m.mu.Unlock()
		if pause > 0 {
			if err := sleepReal(ctx, pause); err != nil {
				return err
			}
			continue
		}
		if d := r.DelayFrom(now); d > 0 {
			if err := sleepReal(ctx, d); err != nil {
				r.CancelAt(m.now())
				return err
			}
		}
		m.mu.Lock()
		m.count(m.now(), int64(chunk))
		m.mu.Unlock()
		n -= chunk
	}
	return nil
}

// count records a grant for the observed-rate estimate. Called with mu held.
func (m *meter) count(now time.Time, n int64) {
	m.granted += n
	switch d := now.Sub(m.secStart); {
	case d >= 2*time.Second:
		m.prevPS, m.secCount, m.secStart = 0, 0, now
	case d >= time.Second:
		m.prevPS, m.secCount, m.secStart = m.secCount, 0, m.secStart.Add(time.Second)
	}
	m.secCount += n
}

// observed returns the rate the class ran at over the last full second.
func (m *meter) observed(now time.Time) rate.Limit {
	m.count(now, 0)
	if m.prevPS > 0 {
		return rate.Limit(m.prevPS)
	}
	return rate.Limit(max(m.secCount, 1))
}

func (m *meter) throttled(retryAfter time.Duration) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.nThrottled++
	pause := retryAfter
	if pause <= 0 {
		pause = defaultPause
	}
	pause = min(pause, maxPause)
	if until := now.Add(pause); until.After(m.pausedUntil) {
		m.pausedUntil = until
	}
	// One burst of 429s is one signal: the calls already on their way when
	// the hub started refusing all come back at once.
	if now.Sub(m.lastThrottle) >= throttleDebounce {
		cur := m.effective()
		if obs := m.observed(now); obs < cur {
			cur = obs
		}
		// A slowed class still makes progress, and the first call after
		// a storm waits for at most a few seconds at the floor: a
		// reservation made at a lower rate would hold its caller long
		// after the hub recovered.
		floor := rate.Limit(1)
		if m.op == OpQuery {
			floor = 1.0 / 10
		}
		m.dyn = max(floor, cur*slowdownFactor)
		m.apply(now)
	}
	m.lastThrottle = now
	// Recovery is counted from the end of the pause.
	m.lastChange = m.pausedUntil
}

// recover raises a slowed-down class step by step while the hub stays
// quiet. Called with mu held.
func (m *meter) recover(now time.Time) {
	if m.dyn == rate.Inf || now.Sub(m.lastChange) < recoverAfter {
		return
	}
	m.dyn *= recoverFactor
	// An unmetered class is released once demand no longer reaches the
	// ceiling.
	if m.dyn >= m.base || (m.base == rate.Inf && m.dyn >= 2*m.observed(now)) {
		m.dyn = rate.Inf
	}
	m.lastChange = now
	m.apply(now)
}

func (m *meter) apply(now time.Time) {
	l := m.effective()
	m.lim.SetLimitAt(now, l)
	m.lim.SetBurstAt(now, m.burstFor(l))
}

// sleepReal waits d of real time, or until ctx is done.
func sleepReal(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
