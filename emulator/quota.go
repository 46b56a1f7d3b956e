package emulator

import (
	"fmt"
	"math"
	"strings"
	"time"

	"golang.org/x/time/rate"
)

// op is an operation class with its own throttle.
type op int

const (
	opRegistry   op = iota // identity registry create/get/list/update/delete
	opMethod               // direct methods, metered in 4 KB units
	opTwinRead             // twin reads, REST and MQTT
	opTwinUpdate           // twin updates, REST and MQTT
	opQuery                // queries
	numOps
)

func (o op) String() string {
	return [...]string{"registry operations", "direct methods", "twin reads", "twin updates", "queries"}[o]
}

// methodUnit is the size in which method calls are metered: a call with a
// payload of 0–4 KB costs one unit.
const methodUnit = 4 * 1024

// limit is one throttle: a rate in operations (or method units) per second
// and the bucket size.
type limit struct {
	perSecond float64
	burst     int
}

func perMinute(n float64) limit {
	// The bucket holds ten seconds' worth, so a client that bursts through a
	// minute's budget at once is throttled as soon as it would on a hub
	// that shapes traffic, while a steady client never is.
	return limit{perSecond: n / 60, burst: max(1, int(n/6))}
}

func perSecond(n float64) limit {
	return limit{perSecond: n, burst: max(1, int(n))}
}

// tierLimits is the hub's throttling table (Free/B1/S1, B2/S2, B3/S3) for
// units units.
func tierLimits(tier string, units int) ([numOps]limit, error) {
	u := float64(units)
	var l [numOps]limit
	switch tier {
	case "F1", "S1":
		l[opRegistry] = perMinute(100 * u)
		l[opMethod] = perSecond(160 * 1024 / methodUnit * u)
		l[opQuery] = perMinute(20 * u)
		l[opTwinRead] = perSecond(100)
		l[opTwinUpdate] = perSecond(50)
	case "S2":
		l[opRegistry] = perMinute(100 * u)
		l[opMethod] = perSecond(480 * 1024 / methodUnit * u)
		l[opQuery] = perMinute(20 * u)
		l[opTwinRead] = perSecond(math.Max(100, 10*u))
		l[opTwinUpdate] = perSecond(math.Max(50, 5*u))
	case "S3":
		l[opRegistry] = perMinute(5000 * u)
		l[opMethod] = perSecond(24 * 1024 * 1024 / methodUnit * u)
		l[opQuery] = perMinute(1000 * u)
		l[opTwinRead] = perSecond(500 * u)
		l[opTwinUpdate] = perSecond(250 * u)
	default:
		return l, fmt.Errorf("unknown tier %q; use F1, S1, S2 or S3", tier)
	}
	return l, nil
}

// quotas holds one token bucket per operation class; a nil *quotas (tier
// "") allows everything.
type quotas struct {
	lim [numOps]*rate.Limiter
}

func newQuotas(tier string, units int) (*quotas, error) {
	tier = strings.ToUpper(strings.TrimSpace(tier))
	if tier == "" {
		return nil, nil
	}
	if units == 0 {
		units = 1
	}
	if units < 0 || units > 200 || (tier == "F1" && units != 1) {
		return nil, fmt.Errorf("start emulator: %d units is not valid for tier %s (F1 has 1 unit, others 1 to 200)", units, tier)
	}
	lims, err := tierLimits(tier, units)
	if err != nil {
		return nil, fmt.Errorf("start emulator: %w", err)
	}
	q := &quotas{}
	for i, l := range lims {
		q.lim[i] = rate.NewLimiter(rate.Limit(l.perSecond), l.burst)
	}
	return q, nil
}

// take spends n tokens of o at now. When the bucket cannot pay, nothing is
// spent and retryAfter says when it could (whole seconds, at least one: the
// Retry-After header the emulator sends).
func (q *quotas) take(o op, n int, now time.Time) (ok bool, retryAfter time.Duration) {
	if q == nil {
		return true, 0
	}
	lim := q.lim[o]
	if n > lim.Burst() {
		n = lim.Burst()
	}
	r := lim.ReserveN(now, n)
	if !r.OK() {
		return false, time.Second
	}
	d := r.DelayFrom(now)
	if d == 0 {
		return true, 0
	}
	r.CancelAt(now)
	secs := max(1, (d+time.Second-1)/time.Second)
	return false, secs * time.Second
}

// methodCost is the number of 4 KB units a call with payload p costs.
func methodCost(payloadLen int) int {
	return max(1, (payloadLen+methodUnit-1)/methodUnit)
}
