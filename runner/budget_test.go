package runner

import (
	"context"
	"math"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/time/rate"
)

func TestTierQuota(t *testing.T) {
	inf := rate.Inf
	cases := []struct {
		tier  string
		units int
		want  Quota // method units, twin reads, twin updates, queries per second
		err   bool
	}{
		{tier: "", want: Quota{inf, inf, inf, inf}},
		{tier: "S1", units: 1, want: Quota{40, 100, 50, 20.0 / 60}},
		{tier: "s1", units: 4, want: Quota{160, 100, 50, 80.0 / 60}},
		{tier: "F1", units: 1, want: Quota{40, 100, 50, 20.0 / 60}},
		{tier: "S2", units: 20, want: Quota{2400, 200, 100, 400.0 / 60}},
		{tier: "S3", units: 2, want: Quota{12288, 1000, 500, 2000.0 / 60}},
		{tier: "F1", units: 2, err: true},
		{tier: "B1", units: 1, err: true},
		{tier: "S9", units: 1, err: true},
		{tier: "S1", units: 0, err: true},
	}
	for _, tc := range cases {
		t.Run(tc.tier, func(t *testing.T) {
			got, err := TierQuota(tc.tier, tc.units)
			if (err != nil) != tc.err {
				t.Fatalf("got error %v, want error %v", err, tc.err)
			}
			if tc.err {
				return
			}
			for op := range numOps {
				if math.Abs(float64(got[op]-tc.want[op])) > 1e-9 && !(got[op] == inf && tc.want[op] == inf) {
					t.Errorf("%s: got %v, want %v", Op(op), got[op], tc.want[op])
				}
			}
		})
	}
}

func TestMethodCost(t *testing.T) {
	for n, want := range map[int]int{0: 1, 4096: 1, 4097: 2, 128 * 1024: 32} {
		if got := MethodCost(n); got != want {
			t.Errorf("MethodCost(%d): got %d, want %d", n, got, want)
		}
	}
}

// TestBudget_Pace checks that an S1 budget spends method calls a little
// under the hub's 40 per second.
func TestBudget_Pace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := NewBudget("S1", 1)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		for range 400 {
			if err := b.Wait(context.Background(), OpMethod, 1); err != nil {
				t.Fatal(err)
			}
		}
		perSec := 400 / time.Since(start).Seconds()
		if perSec > 40 || perSec < 36 {
			t.Errorf("got %.1f calls/s, want between 36 and 40", perSec)
		}
	})
}

// TestBudget_Throttled checks that a 429 pauses the class for the hub's
// Retry-After, slows it down, and that the rate recovers once the hub is
// quiet.
func TestBudget_Throttled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := NewBudget("S1", 1)
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		for range 80 {
			_ = b.Wait(ctx, OpMethod, 1)
		}
		before := time.Now()
		b.Throttled(OpMethod, 3*time.Second)
		b.Throttled(OpMethod, 3*time.Second) // one burst of 429s is one signal
		_ = b.Wait(ctx, OpMethod, 1)
		if waited := time.Since(before); waited < 3*time.Second {
			t.Errorf("waited %s after a 429 with Retry-After 3s, want at least 3s", waited)
		}
		slowed := float64(b.meters[OpMethod].effective())
		if slowed > 20 || slowed < 10 {
			t.Errorf("got rate %.1f/s after the 429, want about half of 38/s", slowed)
		}
		// Quiet for a while: the rate climbs back to the allowance.
		for range 1200 {
			_ = b.Wait(ctx, OpMethod, 1)
		}
		if got, want := b.meters[OpMethod].effective(), b.Quota()[OpMethod]; got != want {
			t.Errorf("got rate %.1f/s after a quiet spell, want it back at %.1f/s", float64(got), float64(want))
		}
		if s := b.Stats(); s.Throttled[OpMethod] != 2 || s.Granted[OpMethod] != 1281 {
			t.Errorf("got stats %+v, want 2 throttled and 1281 granted", s)
		}
	})
}

// TestBudget_UnmeteredSlowsDownOn429 checks that a budget without quotas
// still backs off when the hub throttles, from the rate it ran at.
func TestBudget_UnmeteredSlowsDownOn429(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := NewBudgetQuota(unmetered())
		ctx := context.Background()
		for range 50 {
			for range 200 {
				_ = b.Wait(ctx, OpTwinRead, 1)
			}
			time.Sleep(100 * time.Millisecond)
		}
		b.Throttled(OpTwinRead, 0)
		got := float64(b.meters[OpTwinRead].effective())
		if got < 500 || got > 2000 {
			t.Errorf("got %.0f/s after a 429 at about 2000/s, want about half", got)
		}
	})
}

// TestBudget_RecoversFromAStorm checks that a class slowed to its floor by
// a long 429 storm is back at its allowance within a minute of quiet.
func TestBudget_RecoversFromAStorm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := NewBudget("S1", 1)
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		for range 30 {
			b.Throttled(OpQuery, 0)
			time.Sleep(throttleDebounce)
		}
		if got := float64(b.meters[OpQuery].effective()); got > 0.11 {
			t.Fatalf("got %.3f/s after the storm, want the floor", got)
		}
		quiet := time.Now()
		want := b.Quota()[OpQuery]
		for b.meters[OpQuery].effective() != want {
			if err := b.Wait(ctx, OpQuery, 1); err != nil {
				t.Fatal(err)
			}
		}
		if took := time.Since(quiet); took > time.Minute {
			t.Errorf("took %s of quiet to recover %.3f/s queries, want under a minute", took, float64(want))
		}
	})
}
