package simulator

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// Range is a duration drawn uniformly between Min and Max (inclusive). A
// fixed duration has Min == Max. The zero Range is always 0.
type Range struct {
	Min, Max time.Duration
}

// Fixed returns the Range that is always d.
func Fixed(d time.Duration) Range { return Range{Min: d, Max: d} }

// ParseRange reads a fixed duration ("2s") or a range ("1s..3s"), in Go
// duration syntax. Negative durations and ranges whose lower end exceeds the
// upper end are refused.
func ParseRange(s string) (Range, error) {
	lo, hi, isRange := strings.Cut(s, "..")
	low, err := parseNonNegative(lo)
	if err != nil {
		return Range{}, err
	}
	if !isRange {
		return Fixed(low), nil
	}
	high, err := parseNonNegative(hi)
	if err != nil {
		return Range{}, err
	}
	if low > high {
		return Range{}, fmt.Errorf("range %q runs backwards: %s is more than %s", s, low, high)
	}
	return Range{Min: low, Max: high}, nil
}

func parseNonNegative(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("a duration is empty")
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (use Go syntax such as 500ms, 2s or 1m30s)", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("%q is negative", s)
	}
	return d, nil
}

// Draw returns a duration from r, uniformly in [Min, Max].
func (r Range) Draw(rng *rand.Rand) time.Duration {
	if r.Max <= r.Min {
		return r.Min
	}
	return r.Min + time.Duration(rng.Int64N(int64(r.Max-r.Min)+1))
}

// String formats r as ParseRange reads it.
func (r Range) String() string {
	if r.Min == r.Max {
		return r.Min.String()
	}
	return r.Min.String() + ".." + r.Max.String()
}
