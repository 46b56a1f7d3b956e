package tutorial

import (
	"context"
	"time"
)

// TimeFormat is RFC 3339 with milliseconds, the form of the timestamps the
// tutorial devices report (rebootTime, logTime, lastFirmwareUpdate, …).
const TimeFormat = "2006-01-02T15:04:05.000Z07:00"

// Timestamp formats t in UTC with TimeFormat.
func Timestamp(t time.Time) string { return t.UTC().Format(TimeFormat) }

// Pause waits for d, or until ctx ends, in which case it returns ctx.Err().
func Pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
