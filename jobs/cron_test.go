package jobs

import (
	"testing"
	"time"

	"github.com/robfig/cron/v3"
)

// TestNextSpec_robfigDifference pins down the robfig/cron behaviour that
// nextSpec exists to correct; if a new robfig/cron release changes it,
// this test says so.
func TestNextSpec_robfigDifference(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	sched, err := cron.ParseStandard("CRON_TZ=America/New_York 30 2 * * *")
	if err != nil {
		t.Fatal(err)
	}
	spec := sched.(*cron.SpecSchedule)
	after := time.Date(2026, time.March, 8, 0, 0, 0, 0, ny)

	robfig := sched.Next(after)
	if want := time.Date(2026, time.March, 9, 2, 30, 0, 0, ny); !robfig.Equal(want) {
		t.Logf("robfig/cron now gives %s across the gap (it used to skip to %s)", robfig, want)
	}
	if got, want := nextSpec(spec, after, ny), time.Date(2026, time.March, 8, 3, 0, 0, 0, ny); !got.Equal(want) {
		t.Errorf("nextSpec across the gap = %s, want %s", got, want)
	}

	// Fall back: robfig fires at 01:30 EDT and again at 01:30 EST.
	sched, _ = cron.ParseStandard("CRON_TZ=America/New_York 30 1 * * *")
	spec = sched.(*cron.SpecSchedule)
	first := time.Date(2026, time.November, 1, 5, 30, 0, 0, time.UTC)
	if got := sched.Next(first); !got.Equal(first.Add(time.Hour)) {
		t.Logf("robfig/cron no longer fires twice in the overlap: %s", got)
	}
	if got, want := nextSpec(spec, first, ny), time.Date(2026, time.November, 2, 6, 30, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("nextSpec after the first 01:30 = %s, want %s", got, want)
	}
}

func TestResolveWall(t *testing.T) {
	berlin, _ := time.LoadLocation("Europe/Berlin")
	lordHowe, _ := time.LoadLocation("Australia/Lord_Howe") // 30-minute DST shift
	tests := []struct {
		name string
		loc  *time.Location
		wall [6]int
		want time.Time
	}{
		{"normal", berlin, [6]int{2026, 1, 10, 1, 0, 0}, time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)},
		{"gap start", berlin, [6]int{2026, 3, 29, 2, 0, 0}, time.Date(2026, 3, 29, 1, 0, 0, 0, time.UTC)},
		{"gap end", berlin, [6]int{2026, 3, 29, 2, 59, 59}, time.Date(2026, 3, 29, 1, 0, 0, 0, time.UTC)},
		{"after gap", berlin, [6]int{2026, 3, 29, 3, 0, 0}, time.Date(2026, 3, 29, 1, 0, 0, 0, time.UTC)},
		{"overlap first", berlin, [6]int{2026, 10, 25, 2, 0, 0}, time.Date(2026, 10, 25, 0, 0, 0, 0, time.UTC)},
		{"overlap last second", berlin, [6]int{2026, 10, 25, 2, 59, 59}, time.Date(2026, 10, 25, 0, 59, 59, 0, time.UTC)},
		{"after overlap", berlin, [6]int{2026, 10, 25, 3, 0, 0}, time.Date(2026, 10, 25, 2, 0, 0, 0, time.UTC)},
		// Lord Howe moves from +10:30 to +11 at 02:00 local on 2026-10-04.
		{"half-hour gap", lordHowe, [6]int{2026, 10, 4, 2, 15, 0}, time.Date(2026, 10, 3, 15, 30, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := tt.wall
			got := resolveWall(w[0], time.Month(w[1]), w[2], w[3], w[4], w[5], tt.loc)
			if !got.Equal(tt.want) {
				t.Errorf("resolveWall(%v) = %s, want %s", w, got.UTC(), tt.want)
			}
		})
	}
}

func TestCronMinPeriod(t *testing.T) {
	tests := []struct {
		spec string
		want time.Duration
	}{
		{"0 1 * * *", 24 * time.Hour},
		{"*/30 * * * *", 30 * time.Minute},
		{"0 22 * * 1-5", 24 * time.Hour},
		{"0 1,3 * * *", 2 * time.Hour},
		{"@weekly", 7 * 24 * time.Hour},
		{"0 0 29 2 *", 4*365*24*time.Hour + 24*time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			pc, err := parseCron(tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			if got := cronMinPeriod(pc.spec); got != tt.want {
				t.Errorf("cronMinPeriod(%q) = %s, want %s", tt.spec, got, tt.want)
			}
		})
	}
}

func TestParseCron(t *testing.T) {
	tests := []struct {
		spec    string
		wantErr bool
		wantLoc string
	}{
		{"0 1 * * *", false, ""},
		{"CRON_TZ=Europe/Berlin 0 1 * * *", false, "Europe/Berlin"},
		{"TZ=America/New_York   0 1 * * *", false, "America/New_York"},
		{"CRON_TZ=Europe/Berlin", true, ""},
		{"CRON_TZ=", true, ""},
		{"TZ=", true, ""},
		{"CRON_TZ=Local 0 1 * * *", true, ""},
		{"@every 1h", true, ""},
		{"", true, ""},
		{"* * * *", true, ""},
		{"0 0 1 * * *", true, ""},
		{"61 * * * *", true, ""},
		{"0 1 * * 7", true, ""},
		{"@daily", false, ""},
		{"@reboot", true, ""},
		{"*/0 * * * *", true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			pc, err := parseCron(tt.spec)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseCron(%q) err = %v, want error %v", tt.spec, err, tt.wantErr)
			}
			if err != nil {
				return
			}
			got := ""
			if pc.loc != nil {
				got = pc.loc.String()
			}
			if got != tt.wantLoc {
				t.Errorf("zone = %q, want %q", got, tt.wantLoc)
			}
		})
	}
}
