package runner

import (
	"sync"
	"time"
)

// ShiftedClock is the process clock moved to start at a chosen instant:
// inside a testing/synctest bubble, whose fake clock starts in 2000, it
// lets a test begin the day before a daylight-saving change and cross it
// in milliseconds.
type ShiftedClock struct {
	offset time.Duration
}

// NewShiftedClock returns a clock that reads start now.
func NewShiftedClock(start time.Time) *ShiftedClock {
	return &ShiftedClock{offset: time.Until(start)}
}

// Now returns the shifted time.
func (c *ShiftedClock) Now() time.Time { return time.Now().Add(c.offset) }

// NewTimer returns a timer of the process clock.
func (c *ShiftedClock) NewTimer(d time.Duration) Timer { return SystemClock{}.NewTimer(d) }

// SpeedClock runs speed times faster than real time from start, for end
// to end tests that need hours of windows to pass in seconds while the
// devices answer in real time.
type SpeedClock struct {
	start time.Time
	real  time.Time
	speed float64

	mu sync.Mutex
}

// NewSpeedClock returns a clock that reads start now and runs speed times
// faster than real time.
func NewSpeedClock(start time.Time, speed float64) *SpeedClock {
	return &SpeedClock{start: start, real: time.Now(), speed: speed}
}

// Now returns the accelerated time.
func (c *SpeedClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.start.Add(time.Duration(float64(time.Since(c.real)) * c.speed))
}

// NewTimer returns a real timer for d/speed.
func (c *SpeedClock) NewTimer(d time.Duration) Timer {
	return SystemClock{}.NewTimer(time.Duration(float64(d) / c.speed))
}

var (
	_ Clock = (*ShiftedClock)(nil)
	_ Clock = (*SpeedClock)(nil)
)
