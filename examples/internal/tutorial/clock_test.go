package tutorial_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hubflow/hubflow/examples/internal/tutorial"
)

func TestTimestamp(t *testing.T) {
	berlin := time.FixedZone("CET", 3600)
	cases := []struct {
		name string
		in   time.Time
		want string
	}{
		{"UTC", time.Date(2026, 11, 22, 17, 40, 5, 123456789, time.UTC), "2026-11-22T17:40:05.123Z"},
		{"other zone", time.Date(2026, 11, 22, 18, 40, 5, 0, berlin), "2026-11-22T17:40:05.000Z"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := tutorial.Timestamp(c.in)
			if got != c.want {
				t.Errorf("got %s, want %s", got, c.want)
			}
			if _, err := time.Parse(time.RFC3339, got); err != nil {
				t.Errorf("got %s, want RFC 3339: %v", got, err)
			}
		})
	}
}

func TestPause(t *testing.T) {
	t.Run("waits the whole duration", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			start := time.Now()
			if err := tutorial.Pause(context.Background(), 15*time.Second); err != nil {
				t.Fatalf("got %v, want nil", err)
			}
			if got := time.Since(start); got != 15*time.Second {
				t.Errorf("got %s, want 15s", got)
			}
		})
	})
	t.Run("ends with the context", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			start := time.Now()
			if err := tutorial.Pause(ctx, time.Hour); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("got %v, want %v", err, context.DeadlineExceeded)
			}
			if got := time.Since(start); got != 2*time.Second {
				t.Errorf("got %s, want 2s", got)
			}
		})
	})
}
