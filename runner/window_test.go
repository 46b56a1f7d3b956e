package runner

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hubflow/hubflow/state"
)

func mustTime(t testing.TB, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

const localWindowJob = `
job "local" {
  target { query = "tags.site = 'x'" }
  window "night" {
    cron          = "30 2 * * *"
    duration      = "1h"
    timezone_from = tags.timezone
  }
  rollout { concurrency = 10 }
  step "s" {
    method  = "m"
    success = reported.status == "done"
    timeout = "30m"
  }
}
`

// TestRun_DeviceLocalWindowsAcrossDST runs devices in three zones across
// the spring-forward and fall-back nights of 2026: each device starts at
// its own zone's 02:30, a non-existent 02:30 opens at the end of the gap,
// a twice-occurring one opens once at the first, and devices without a
// usable zone are skipped with the reason.
func TestRun_DeviceLocalWindowsAcrossDST(t *testing.T) {
	cases := []struct {
		name  string
		start string
		want  map[string]string // device -> first invocation (UTC)
	}{
		{
			// Europe springs forward on 2026-03-29 at 02:00 CET: 02:30
			// does not exist and the window opens at 03:00 CEST.
			name:  "spring forward",
			start: "2026-03-28T12:00:00Z",
			want: map[string]string{
				"tyo": "2026-03-28T17:30:00Z",
				"ber": "2026-03-29T01:00:00Z",
				"nyc": "2026-03-29T06:30:00Z",
			},
		},
		{
			// Europe falls back on 2026-10-25 at 03:00 CEST: 02:30 happens
			// twice and the window opens at the first (CEST).
			name:  "fall back",
			start: "2026-10-24T12:00:00Z",
			want: map[string]string{
				"tyo": "2026-10-24T17:30:00Z",
				"ber": "2026-10-25T00:30:00Z",
				"nyc": "2026-10-25T06:30:00Z",
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				clock := NewShiftedClock(mustTime(t, tc.start))
				zone := func(z string) map[string]any { return map[string]any{"site": "x", "timezone": z} }
				fleet := newFakeFleet(clock,
					&fakeDevice{id: "ber", tags: zone("Europe/Berlin"), work: time.Minute},
					&fakeDevice{id: "nyc", tags: zone("America/New_York"), work: time.Minute},
					&fakeDevice{id: "tyo", tags: zone("Asia/Tokyo"), work: time.Minute},
					&fakeDevice{id: "none", tags: map[string]any{"site": "x"}, work: time.Minute},
					&fakeDevice{id: "mars", tags: zone("Mars/Olympus_Mons"), work: time.Minute},
				)
				st := testStore(t)
				r := testRunner(t, fleet.hub(), st, clock)
				var states []state.RunState
				res, err := r.Run(context.Background(), Request{Job: testJob(t, localWindowJob), Progress: func(s Snapshot) {
					if len(states) == 0 || states[len(states)-1] != s.State {
						states = append(states, s.State)
					}
				}})
				if err != nil {
					t.Fatal(err)
				}
				if res.State != state.RunSucceeded {
					t.Fatalf("got %s (%s), want succeeded", res.State, res.Reason)
				}
				for id, want := range tc.want {
					calls := fleet.callsTo(id)
					if len(calls) != 1 {
						t.Errorf("%s: got %d calls, want 1", id, len(calls))
						continue
					}
					if got := calls[0].at.UTC(); !got.Equal(mustTime(t, want)) {
						t.Errorf("%s: invoked at %s, want %s", id, got.Format(time.RFC3339), want)
					}
				}
				for _, id := range []string{"none", "mars"} {
					if n := len(fleet.callsTo(id)); n != 0 {
						t.Errorf("%s: got %d calls, want none", id, n)
					}
				}
				devs, err := st.RunDevices(context.Background(), res.RunID, state.DeviceFilter{State: state.ExecSkipped})
				if err != nil {
					t.Fatal(err)
				}
				for _, d := range devs {
					if !strings.Contains(d.SkipReason, "time zone") {
						t.Errorf("%s: got skip reason %q, want it to name the time zone", d.DeviceID, d.SkipReason)
					}
				}
				if len(devs) != 2 {
					t.Errorf("got %d skipped devices, want 2", len(devs))
				}
				if !containsState(states, state.RunWaitingWindow) {
					t.Errorf("got states %v, want waiting_window among them", states)
				}
			})
		})
	}
}

func containsState(list []state.RunState, s state.RunState) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

const weeklyWindowJob = `
job "weekly" {
  target { query = "tags.site = 'x'" }
  window "monday-night" {
    cron     = "0 1 * * 1"
    duration = "2h"
    timezone = "UTC"
  }
  rollout { concurrency = 1 }
  step "s" {
    method  = "m"
    success = reported.status == "done"
    timeout = "2h"
  }
}
`

// TestRun_WindowClosesMidRunAndReopens runs six devices of 40 minutes each,
// one at a time, in a two-hour weekly window: three start on the first
// Monday (the third still finishing after the window closed), the run
// waits across the week boundary, and the other three start the next
// Monday at 01:00.
func TestRun_WindowClosesMidRunAndReopens(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Sunday evening, before the first window.
		clock := NewShiftedClock(mustTime(t, "2026-01-11T23:00:00Z"))
		var devs []*fakeDevice
		for _, id := range []string{"d1", "d2", "d3", "d4", "d5", "d6"} {
			devs = append(devs, &fakeDevice{id: id, tags: map[string]any{"site": "x"}, work: 40 * time.Minute})
		}
		fleet := newFakeFleet(clock, devs...)
		st := testStore(t)
		r := testRunner(t, fleet.hub(), st, clock)
		var states []state.RunState
		var sawNext time.Time
		res, err := r.Run(context.Background(), Request{Job: testJob(t, weeklyWindowJob), Progress: func(s Snapshot) {
			if len(states) == 0 || states[len(states)-1] != s.State {
				states = append(states, s.State)
			}
			if s.State == state.RunWaitingWindow && len(states) > 2 {
				sawNext = s.Window.Next
			}
		}})
		if err != nil {
			t.Fatal(err)
		}
		if res.State != state.RunSucceeded {
			t.Fatalf("got %s (%s), want succeeded", res.State, res.Reason)
		}
		first, second := mustTime(t, "2026-01-12T01:00:00Z"), mustTime(t, "2026-01-19T01:00:00Z")
		for i, d := range devs {
			calls := fleet.callsTo(d.id)
			if len(calls) != 1 {
				t.Fatalf("%s: got %d calls, want 1", d.id, len(calls))
			}
			at := calls[0].at.UTC()
			open := first
			if i >= 3 {
				open = second
			}
			if at.Before(open) || !at.Before(open.Add(2*time.Hour)) {
				t.Errorf("%s: invoked at %s, want within the window opening %s", d.id, at.Format(time.RFC3339), open.Format(time.RFC3339))
			}
		}
		if got := fleet.callsTo("d4")[0].at.UTC(); !got.Equal(second) {
			t.Errorf("d4: invoked at %s, want at the reopening %s", got.Format(time.RFC3339), second.Format(time.RFC3339))
		}
		want := []state.RunState{state.RunWaitingWindow, state.RunRunning, state.RunWaitingWindow, state.RunRunning, state.RunSucceeded}
		if len(states) < len(want) || !equalStates(states[len(states)-len(want):], want) {
			t.Errorf("got states %v, want them to end %v", states, want)
		}
		if !sawNext.Equal(second) {
			t.Errorf("while waiting, got next opening %s, want %s", sawNext, second)
		}
		run, err := st.LoadRun(context.Background(), res.RunID)
		if err != nil {
			t.Fatal(err)
		}
		if run.Counts.Succeeded != 6 {
			t.Errorf("got recorded counts %+v, want 6 succeeded", run.Counts)
		}
	})
}

func equalStates(a, b []state.RunState) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestRun_FollowJoinsNewDevicesAtOpenings runs a job with follow = true:
// a device that starts matching after the run resolved its target, but
// before the window opens, is found again at the opening and joins; the
// run ends once every device is done.
func TestRun_FollowJoinsNewDevicesAtOpenings(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clock := NewShiftedClock(mustTime(t, "2026-01-01T00:30:00Z"))
		fleet := newFakeFleet(clock,
			&fakeDevice{id: "a", tags: siteX, work: time.Minute},
			&fakeDevice{id: "b", tags: siteX, work: time.Minute},
		)
		go func() {
			time.Sleep(15 * time.Minute) // 00:45, before the opening
			fleet.mu.Lock()
			fleet.devices["c"] = &fakeDevice{id: "c", tags: siteX, work: time.Minute, reported: map[string]any{}}
			fleet.mu.Unlock()
		}()
		st := testStore(t)
		r := testRunner(t, fleet.hub(), st, clock)
		res, err := r.Run(context.Background(), Request{Job: testJob(t, `
job "follow" {
  target {
    query  = "tags.site = 'x'"
    follow = true
  }
  window "night" {
    cron     = "0 1 * * *"
    duration = "1h"
  }
  step "s" {
    method  = "m"
    success = reported.status == "done"
    timeout = "30m"
  }
}`)})
		if err != nil {
			t.Fatal(err)
		}
		if res.State != state.RunSucceeded || res.Counts.Succeeded != 3 {
			t.Fatalf("got %s %+v, want succeeded with 3 devices", res.State, res.Counts)
		}
		for _, id := range []string{"a", "b", "c"} {
			if calls := fleet.callsTo(id); len(calls) != 1 || !calls[0].at.Equal(mustTime(t, "2026-01-01T01:00:00Z")) {
				t.Errorf("%s: got calls %v, want one at the opening", id, calls)
			}
		}
	})
}
