package jobs

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// robfig/cron parses hubflow's cron specs, but its SpecSchedule.Next is not
// used: it steps through absolute time, so across a spring-forward gap it
// skips an opening that falls in the gap (02:30 on the day clocks jump from
// 02:00 to 03:00 never fires), and across a fall-back overlap it fires twice
// for the same wall-clock time. nextSpec walks wall-clock times instead and
// maps each one to an instant with the rules of the job-file contract.

// cronStarBit is the bit robfig/cron sets in a field written as * (it
// changes how day-of-month and day-of-week combine).
const cronStarBit = 1 << 63

// cronHorizonDays bounds the search for a next activation, as robfig/cron
// does: a spec that matches nothing in five years matches nothing at all
// (February 30th, say).
const cronHorizonDays = 5*366 + 1

// parsedCron is a cron spec with its optional CRON_TZ= zone.
type parsedCron struct {
	spec *cron.SpecSchedule
	// loc is the CRON_TZ= zone, or nil when the spec has none.
	loc *time.Location
}

// parseCron reads a standard five-field cron spec, a descriptor such as
// @daily, optionally prefixed with CRON_TZ=Zone (or TZ=Zone). The zone is
// handled here rather than by robfig/cron, whose parser panics on a zone
// prefix with nothing after it and falls back to the host's zone without
// one.
func parseCron(text string) (parsedCron, error) {
	s := strings.TrimSpace(text)
	var pc parsedCron
	for _, prefix := range []string{"CRON_TZ=", "TZ="} {
		if !strings.HasPrefix(s, prefix) {
			continue
		}
		zone, rest, ok := strings.Cut(s[len(prefix):], " ")
		rest = strings.TrimSpace(rest)
		if !ok || rest == "" {
			return pc, fmt.Errorf("%s%s must be followed by a space and the schedule, as in %sEurope/Berlin 0 1 * * *", prefix, zone, prefix)
		}
		loc, err := loadZone(zone)
		if err != nil {
			return pc, zoneError{err}
		}
		pc.loc, s = loc, rest
		break
	}
	if strings.HasPrefix(s, "@every") {
		return pc, errors.New("@every is relative to when hubflow started, so openings would move; use a cron expression such as \"0 */6 * * *\"")
	}
	sched, err := parseStandard(s)
	if err != nil {
		return pc, err
	}
	spec, ok := sched.(*cron.SpecSchedule)
	if !ok {
		return pc, fmt.Errorf("%q is not a calendar schedule", s)
	}
	pc.spec = spec
	return pc, nil
}

// parseStandard guards robfig/cron's parser, which is old and not fuzzed:
// a spec that crashes it is reported as invalid.
func parseStandard(s string) (sched cron.Schedule, err error) {
	defer func() {
		if r := recover(); r != nil {
			sched, err = nil, fmt.Errorf("cannot parse %q", s)
		}
	}()
	return cron.ParseStandard(s)
}

// zoneError marks a cron spec whose CRON_TZ= zone is unknown.
type zoneError struct{ error }

// cronSummary is the diagnostic summary for a cron parsing error.
func cronSummary(err error) string {
	var ze zoneError
	if errors.As(err, &ze) {
		return "Unknown time zone"
	}
	return "Invalid cron spec"
}

// errZoneLocal is returned for the zone names that mean "the host's zone",
// which would make a job behave differently on every machine.
var errZoneLocal = errors.New(`"Local" and "" name the host's zone; use an IANA name such as "Europe/Berlin", or "UTC"`)

// loadZone loads an IANA zone. It refuses names meaning the host's zone.
func loadZone(name string) (*time.Location, error) {
	if name == "" || name == "Local" {
		return nil, errZoneLocal
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("%q is not an IANA time zone name; use a name such as \"Europe/Berlin\", \"America/New_York\" or \"UTC\"", name)
	}
	return loc, nil
}

// nextSpec returns the first instant strictly after after at which spec
// fires, reading the spec's fields as wall-clock time in loc, or the zero
// time when it fires on no day within five years.
//
// A wall-clock time that does not exist (a spring-forward gap) maps to the
// first instant after the gap; one that happens twice (a fall-back overlap)
// maps to the first of the two. The mapping never decreases as wall-clock
// time increases, so scanning wall-clock candidates in order and taking the
// first one that maps after after yields the next activation, and the same
// instant is never returned for two calls with increasing after.
func nextSpec(spec *cron.SpecSchedule, after time.Time, loc *time.Location) time.Time {
	local := after.In(loc)
	y, m, d := local.Date()
	// Days are stepped in UTC so that each step is one calendar day.
	day := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	startH, startM, startS := local.Clock()
	for i := 0; i < cronHorizonDays; i, day = i+1, day.AddDate(0, 0, 1) {
		if spec.Month&(1<<uint(day.Month())) == 0 || !cronDayMatches(spec, day) {
			continue
		}
		first := i == 0
		for h := 0; h < 24; h++ {
			if spec.Hour&(1<<uint(h)) == 0 || (first && h < startH) {
				continue
			}
			for mi := 0; mi < 60; mi++ {
				if spec.Minute&(1<<uint(mi)) == 0 || (first && h == startH && mi < startM) {
					continue
				}
				for s := 0; s < 60; s++ {
					if spec.Second&(1<<uint(s)) == 0 || (first && h == startH && mi == startM && s < startS) {
						continue
					}
					t := resolveWall(day.Year(), day.Month(), day.Day(), h, mi, s, loc)
					if t.After(after) {
						return t
					}
				}
			}
		}
	}
	return time.Time{}
}

// cronDayMatches applies cron's day rule: when both day-of-month and
// day-of-week are restricted, either may match; otherwise both must.
func cronDayMatches(spec *cron.SpecSchedule, day time.Time) bool {
	domMatch := spec.Dom&(1<<uint(day.Day())) != 0
	dowMatch := spec.Dow&(1<<uint(day.Weekday())) != 0
	if spec.Dom&cronStarBit != 0 || spec.Dow&cronStarBit != 0 {
		return domMatch && dowMatch
	}
	return domMatch || dowMatch
}

// resolveWall maps a wall-clock time in loc to an instant: the earlier one
// when the wall-clock time happens twice, and the first instant after the
// gap when it does not happen at all. time.Date leaves both cases
// unspecified.
func resolveWall(y int, mo time.Month, d, h, mi, s int, loc *time.Location) time.Time {
	wall := time.Date(y, mo, d, h, mi, s, 0, time.UTC)
	u := wall.Unix()
	var best time.Time
	// Offsets in force a day either side cover any single transition near
	// this wall-clock time.
	for _, probe := range [...]int64{u - 86400, u, u + 86400} {
		_, off := time.Unix(probe, 0).In(loc).Zone()
		t := time.Unix(u-int64(off), 0).In(loc)
		if sameWall(t, wall) && (best.IsZero() || t.Before(best)) {
			best = t
		}
	}
	if !best.IsZero() {
		return best
	}
	// In a gap: an instant computed with the later offset still lies in the
	// earlier zone period, whose end is the first instant after the gap.
	_, offAfter := time.Unix(u+86400, 0).In(loc).Zone()
	before := time.Unix(u-int64(offAfter), 0).In(loc)
	if _, end := before.ZoneBounds(); !end.IsZero() && end.After(before) {
		return end.In(loc)
	}
	return time.Date(y, mo, d, h, mi, s, 0, loc)
}

func sameWall(t, wall time.Time) bool {
	y, m, d := t.Date()
	h, mi, s := t.Clock()
	wy, wm, wd := wall.Date()
	wh, wmi, ws := wall.Clock()
	return y == wy && m == wm && d == wd && h == wh && mi == wmi && s == ws
}

// cronMinPeriod returns the shortest time between two consecutive
// activations of spec, read in UTC (its nominal period, before any
// daylight-saving change), over its first activations from a fixed date,
// or zero when it fires at most once.
func cronMinPeriod(spec *cron.SpecSchedule) time.Duration {
	ref := time.Date(2025, time.January, 1, 0, 0, 0, 0, time.UTC)
	prev := nextSpec(spec, ref, time.UTC)
	var minGap time.Duration
	for i := 0; i < 1000 && !prev.IsZero(); i++ {
		n := nextSpec(spec, prev, time.UTC)
		if n.IsZero() {
			break
		}
		if gap := n.Sub(prev); minGap == 0 || gap < minGap {
			minGap = gap
		}
		if n.Sub(ref) > 4*366*24*time.Hour {
			break
		}
		prev = n
	}
	return minGap
}
