package jobs_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hubflow/hubflow/jobs"
)

func mustTime(t testing.TB, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

func mustZone(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// loadWindow loads a job with one window built from attrs and returns it.
func loadWindow(t testing.TB, attrs string) *jobs.Window {
	t.Helper()
	c := loadSource(t, fmt.Sprintf(`
job "w" {
  target {
    devices = ["a"]
  }
  window "w" {
    %s
  }
  step "s" {
    method = "m"
  }
}`, attrs))
	return c.Jobs[0].Windows[0]
}

func TestWindow_NextOpening(t *testing.T) {
	tests := []struct {
		name   string
		cron   string
		zone   string
		after  string
		want   string
		reason string
	}{
		{"plain", "0 1 * * *", "Europe/Berlin", "2026-01-10T12:00:00Z", "2026-01-11T00:00:00Z", "01:00 CET is 00:00Z"},
		{"exactly at opening is not after", "0 1 * * *", "Europe/Berlin", "2026-01-11T00:00:00Z", "2026-01-12T00:00:00Z", "strictly after"},
		{"berlin spring gap opens after the gap", "30 2 * * *", "Europe/Berlin", "2026-03-28T23:00:00Z", "2026-03-29T01:00:00Z", "02:30 does not exist; 03:00 CEST is 01:00Z"},
		{"berlin day after the gap", "30 2 * * *", "Europe/Berlin", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z", "02:30 CEST"},
		{"berlin fall back opens at the first 02:30", "30 2 * * *", "Europe/Berlin", "2026-10-24T23:00:00Z", "2026-10-25T00:30:00Z", "02:30 CEST"},
		{"berlin fall back opens once", "30 2 * * *", "Europe/Berlin", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z", "not again at 02:30 CET"},
		{"new york spring gap", "30 2 * * *", "America/New_York", "2026-03-08T05:00:00Z", "2026-03-08T07:00:00Z", "03:00 EDT"},
		{"new york gap collapses several times into one", "*/15 2 * * *", "America/New_York", "2026-03-08T06:00:00Z", "2026-03-08T07:00:00Z", "02:00-02:45 all become 03:00 EDT"},
		{"new york gap fires once", "*/15 2 * * *", "America/New_York", "2026-03-08T07:00:00Z", "2026-03-09T06:00:00Z", "next is 02:00 EDT the day after"},
		{"new york fall back first", "30 1 * * *", "America/New_York", "2026-11-01T04:00:00Z", "2026-11-01T05:30:00Z", "01:30 EDT"},
		{"new york fall back once", "30 1 * * *", "America/New_York", "2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z", "01:30 EST happens the next day"},
		{"new york hourly across fall back", "0 * * * *", "America/New_York", "2026-11-01T05:00:00Z", "2026-11-01T07:00:00Z", "01:00 EST repeats 01:00 and is skipped"},
		{"new york hourly across spring gap", "0 * * * *", "America/New_York", "2026-03-08T06:00:00Z", "2026-03-08T07:00:00Z", "02:00 does not exist; 03:00 EDT follows 01:00 EST"},
		{"new york hourly after the gap", "0 * * * *", "America/New_York", "2026-03-08T07:00:00Z", "2026-03-08T08:00:00Z", "04:00 EDT"},
		{"utc default", "0 1 * * *", "", "2026-03-29T00:00:00Z", "2026-03-29T01:00:00Z", "no zone is UTC"},
		{"weekday", "0 22 * * 1-5", "UTC", "2026-03-27T23:00:00Z", "2026-03-30T22:00:00Z", "Friday 23:00 to Monday 22:00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			attrs := fmt.Sprintf("cron = %q\n duration = \"1m\"", tt.cron)
			if tt.zone != "" {
				attrs += fmt.Sprintf("\n timezone = %q", tt.zone)
			}
			w := loadWindow(t, attrs)
			got := w.NextOpening(mustTime(t, tt.after), nil)
			if want := mustTime(t, tt.want); !got.Equal(want) {
				t.Errorf("NextOpening(%s) = %s, want %s (%s)", tt.after, got.UTC().Format(time.RFC3339), tt.want, tt.reason)
			}
		})
	}
}

func TestWindow_NextOpening_neverTwice(t *testing.T) {
	// Walking the openings across a whole year in zones with DST must give
	// strictly increasing instants, one per day.
	for _, zone := range []string{"Europe/Berlin", "America/New_York", "Australia/Lord_Howe"} {
		for _, spec := range []string{"30 2 * * *", "0 1 * * *", "59 1 * * *", "0 3 * * *"} {
			t.Run(zone+"/"+spec, func(t *testing.T) {
				w := loadWindow(t, fmt.Sprintf("cron = %q\n duration = \"1m\"\n timezone = %q", spec, zone))
				loc := mustZone(t, zone)
				prev := time.Date(2025, time.December, 31, 23, 59, 59, 0, loc)
				n := 0
				for o := w.NextOpening(prev, nil); o.In(loc).Year() == 2026; o = w.NextOpening(o, nil) {
					if !o.After(prev) {
						t.Fatalf("opening %s not after %s", o, prev)
					}
					if gap := o.Sub(prev); n > 0 && (gap < 22*time.Hour || gap > 26*time.Hour) {
						t.Errorf("gap %s between %s and %s, want about a day", gap, prev, o)
					}
					prev = o
					n++
				}
				if n != 365 {
					t.Errorf("got %d openings in 2026, want 365", n)
				}
			})
		}
	}
}

func TestWindow_OpenAt(t *testing.T) {
	berlin := `cron = "0 1 * * *"
    duration = "3h"
    timezone = "Europe/Berlin"`
	tests := []struct {
		name       string
		attrs      string
		at         string
		wantOpen   bool
		wantCloses string
	}{
		{"before opening", berlin, "2026-01-10T23:59:59Z", false, ""},
		{"at opening", berlin, "2026-01-11T00:00:00Z", true, "2026-01-11T03:00:00Z"},
		{"inside", berlin, "2026-01-11T02:59:59Z", true, "2026-01-11T03:00:00Z"},
		{"at closing", berlin, "2026-01-11T03:00:00Z", false, ""},
		{"duration is elapsed time on the spring-forward night", berlin, "2026-03-29T02:30:00Z", true, "2026-03-29T03:00:00Z"},
		{"duration is elapsed time on the fall-back night", berlin, "2026-10-25T01:30:00Z", true, "2026-10-25T02:00:00Z"},
		{"back to back windows stay open", `cron = "0 * * * *"
    duration = "1h"`, "2026-01-01T10:30:00Z", true, "2026-01-04T03:00:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := loadWindow(t, tt.attrs)
			open, closes := w.OpenAt(mustTime(t, tt.at), nil)
			if open != tt.wantOpen {
				t.Fatalf("OpenAt(%s) open = %v, want %v", tt.at, open, tt.wantOpen)
			}
			if tt.wantOpen && !closes.Equal(mustTime(t, tt.wantCloses)) {
				t.Errorf("OpenAt(%s) closes = %s, want %s", tt.at, closes.UTC().Format(time.RFC3339), tt.wantCloses)
			}
			if !tt.wantOpen && !closes.IsZero() {
				t.Errorf("closed window: closes = %s, want zero", closes)
			}
		})
	}
}

func TestWindow_OpenAt_otherZone(t *testing.T) {
	w := loadWindow(t, `cron = "0 1 * * *"
    duration = "3h"`)
	ny := mustZone(t, "America/New_York")
	at := mustTime(t, "2026-07-01T06:00:00Z") // 02:00 EDT
	if open, _ := w.OpenAt(at, nil); open {
		t.Errorf("UTC window open at 06:00Z, want closed")
	}
	open, closes := w.OpenAt(at, ny)
	if !open || !closes.Equal(mustTime(t, "2026-07-01T08:00:00Z")) {
		t.Errorf("New York window at 06:00Z: open %v closes %s, want open until 08:00Z", open, closes)
	}
}

const deviceLocalJob = `
job "local" {
  target {
    query = "tags.site = 'a'"
  }
  window "night" {
    cron          = "0 1 * * *"
    duration      = "2h"
    timezone_from = tags.timezone
  }
  window "noon" {
    cron     = "0 12 * * *"
    duration = "1h"
    timezone = "UTC"
  }
  step "s" {
    method = "m"
  }
}`

func TestJob_WindowSet(t *testing.T) {
	j := loadSource(t, deviceLocalJob).Jobs[0]
	if !j.DeviceLocalWindows() {
		t.Fatalf("DeviceLocalWindows = false, want true")
	}
	at := mustTime(t, "2026-07-01T05:30:00Z") // 01:30 in New York, 07:30 in Berlin
	tests := []struct {
		name       string
		tags       map[string]any
		wantOpen   bool
		wantCloses string
		wantNext   string
		wantErr    string
	}{
		{"new york device is in its window", map[string]any{"timezone": "America/New_York"}, true, "2026-07-01T07:00:00Z", "2026-07-01T12:00:00Z", ""},
		{"berlin device waits for noon", map[string]any{"timezone": "Europe/Berlin"}, false, "", "2026-07-01T12:00:00Z", ""},
		{"missing zone", map[string]any{"site": "a"}, false, "", "", "Missing device time zone"},
		{"null tags", nil, false, "", "", "Missing device time zone"},
		{"unknown zone", map[string]any{"timezone": "Mars/Olympus"}, false, "", "", "Invalid device time zone"},
		{"number zone", map[string]any{"timezone": []any{1.0}}, false, "", "", "Invalid device time zone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := j.WindowSet(jobs.Device{ID: "d1", Tags: tt.tags})
			if tt.wantErr != "" {
				var ee *jobs.EvalError
				if !errors.As(err, &ee) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want an EvalError containing %q", err, tt.wantErr)
				}
				if !strings.HasPrefix(err.Error(), "test.hcl:9:") {
					t.Errorf("err = %q, want it to start with the position test.hcl:9:", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			open, closes := set.OpenAt(at)
			if open != tt.wantOpen {
				t.Fatalf("open = %v, want %v", open, tt.wantOpen)
			}
			if open && !closes.Equal(mustTime(t, tt.wantCloses)) {
				t.Errorf("closes = %s, want %s", closes.UTC().Format(time.RFC3339), tt.wantCloses)
			}
			if next := set.NextOpening(at); !next.Equal(mustTime(t, tt.wantNext)) {
				t.Errorf("NextOpening = %s, want %s", next.UTC().Format(time.RFC3339), tt.wantNext)
			}
		})
	}
}

func TestWindowSet_union(t *testing.T) {
	j := loadSource(t, `
job "u" {
  target {
    devices = ["a"]
  }
  window "a" {
    cron     = "0 1 * * *"
    duration = "2h"
  }
  window "b" {
    cron     = "30 2 * * *"
    duration = "2h"
  }
  step "s" {
    method = "m"
  }
}`).Jobs[0]
	set, err := j.WindowSet(jobs.Device{})
	if err != nil {
		t.Fatal(err)
	}
	open, closes := set.OpenAt(mustTime(t, "2026-05-01T01:30:00Z"))
	if !open || !closes.Equal(mustTime(t, "2026-05-01T04:30:00Z")) {
		t.Errorf("open %v closes %s, want open until 04:30Z (a then b)", open, closes)
	}
	if open, _ := set.OpenAt(mustTime(t, "2026-05-01T04:30:00Z")); open {
		t.Errorf("open at 04:30Z, want closed")
	}
	if got, want := set.NextOpening(mustTime(t, "2026-05-01T01:30:00Z")), mustTime(t, "2026-05-01T02:30:00Z"); !got.Equal(want) {
		t.Errorf("NextOpening = %s, want %s", got, want)
	}
}

func TestWindowSet_empty(t *testing.T) {
	j := loadSource(t, `
job "e" {
  target {
    devices = ["a"]
  }
  step "s" {
    method = "m"
  }
}`).Jobs[0]
	set, err := j.WindowSet(jobs.Device{})
	if err != nil {
		t.Fatal(err)
	}
	if open, closes := set.OpenAt(mustTime(t, "2026-05-01T00:00:00Z")); !open || !closes.IsZero() || !set.Empty() {
		t.Errorf("empty set: open %v closes %v empty %v, want always open", open, closes, set.Empty())
	}
	if next := set.NextOpening(mustTime(t, "2026-05-01T00:00:00Z")); !next.IsZero() {
		t.Errorf("NextOpening = %s, want zero", next)
	}
}

func TestSchedule_Next(t *testing.T) {
	tests := []struct {
		name  string
		attrs string
		after string
		want  string
	}{
		{"utc cron", `cron = "0 0 * * *"`, "2026-03-07T12:00:00Z", "2026-03-08T00:00:00Z"},
		{"cron tz spring gap fires once after the gap", `cron = "CRON_TZ=America/New_York 30 2 * * *"`, "2026-03-08T05:00:00Z", "2026-03-08T07:00:00Z"},
		{"cron tz after the gap day", `cron = "CRON_TZ=America/New_York 30 2 * * *"`, "2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"},
		{"cron tz fall back fires once", `cron = "CRON_TZ=Europe/Berlin 30 2 * * *"`, "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"},
		{"descriptor", `cron = "@weekly"`, "2026-03-04T00:00:00Z", "2026-03-08T00:00:00Z"},
		{"at in the future", `at = "2026-12-01T00:00:00Z"`, "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z"},
		{"at passed", `at = "2026-12-01T00:00:00Z"`, "2026-12-01T00:00:00Z", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := loadSource(t, fmt.Sprintf(`
job "s" {
  target {
    devices = ["a"]
  }
  schedule {
    %s
  }
  step "s" {
    method = "m"
  }
}`, tt.attrs))
			s := c.Jobs[0].Schedule
			got := s.Next(mustTime(t, tt.after))
			if tt.want == "" {
				if !got.IsZero() {
					t.Errorf("Next = %s, want zero", got)
				}
				return
			}
			if want := mustTime(t, tt.want); !got.Equal(want) {
				t.Errorf("Next(%s) = %s, want %s", tt.after, got.UTC().Format(time.RFC3339), tt.want)
			}
			if !s.ProhibitOverlap {
				t.Errorf("ProhibitOverlap = false, want the default true")
			}
		})
	}
}
