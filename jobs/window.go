package jobs

import (
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/robfig/cron/v3"
	"github.com/zclconf/go-cty/cty"
)

// Window is a recurring maintenance window: it opens at each activation of
// Cron, read as wall-clock time in its zone, and stays open for Duration of
// elapsed time. New device executions and retries start only while a
// window is open.
type Window struct {
	Name string
	// Cron is the spec as written, CRON_TZ= prefix included.
	Cron     string
	Duration time.Duration
	// Timezone is the fixed zone of the window: the timezone attribute, the
	// spec's CRON_TZ=, or UTC. It is nil exactly when TimezoneFrom is set.
	Timezone *time.Location
	// TimezoneFrom is the timezone_from expression, evaluated per device
	// by Location (which applies MaxExpressionBytes, as Step.Observe does);
	// nil for fixed-zone windows.
	TimezoneFrom hcl.Expression
	DeclRange    hcl.Range

	spec  *cron.SpecSchedule
	env   *evalEnv
	needs map[string]needTree
}

// maxExtend bounds how many back-to-back openings OpenAt follows to find
// where an open stretch ends; a window open around the clock would
// otherwise never end.
const maxExtend = 64

func (w *Window) zone() *time.Location {
	if w.Timezone != nil {
		return w.Timezone
	}
	return time.UTC
}

func (w *Window) locOr(loc *time.Location) *time.Location {
	if loc != nil {
		return loc
	}
	return w.zone()
}

// NextOpening returns the first opening strictly after after, with the
// window's wall-clock times read in loc (nil as for OpenAt). An opening time that does not exist on a day (spring forward)
// opens at the first instant after the gap; one that happens twice (fall
// back) opens once, at the first. The zero time means the window never
// opens again.
func (w *Window) NextOpening(after time.Time, loc *time.Location) time.Time {
	return nextSpec(w.spec, after, w.locOr(loc))
}

// OpenAt reports whether the window is open at t in loc and, if so, when
// the open stretch ends: the end of the current opening, extended by
// openings that start before it ends (looking at most a few dozen openings
// ahead). Openings are half-open: a window is open at its opening instant
// and closed at opening+Duration. A nil loc means the window's fixed zone,
// or UTC for a device-local window, so pass the zone Location gives for the
// device there.
func (w *Window) OpenAt(t time.Time, loc *time.Location) (open bool, closes time.Time) {
	loc = w.locOr(loc)
	var last time.Time
	for o := nextSpec(w.spec, t.Add(-w.Duration), loc); !o.IsZero() && !o.After(t); o = nextSpec(w.spec, o, loc) {
		last = o
	}
	if last.IsZero() || !t.Before(last.Add(w.Duration)) {
		return false, time.Time{}
	}
	closes = last.Add(w.Duration)
	for range maxExtend {
		n := nextSpec(w.spec, last, loc)
		if n.IsZero() || n.After(closes) {
			break
		}
		last, closes = n, n.Add(w.Duration)
	}
	return true, closes
}

// WindowSet is a job's windows resolved for one device: each with the zone
// it is read in. Several windows mean "any of them is open". A set with no
// windows is always open. The zero value is an empty set.
type WindowSet struct {
	windows []*Window
	locs    []*time.Location
}

// WindowSet resolves the job's windows for a device, evaluating
// timezone_from where a window has it. The device is ignored when every
// window has a fixed zone (see DeviceLocalWindows). The error is an
// *EvalError when the device has no usable zone.
func (j *Job) WindowSet(dev Device) (WindowSet, error) {
	var s WindowSet
	for _, w := range j.Windows {
		loc, err := w.Location(dev)
		if err != nil {
			return WindowSet{}, err
		}
		s.windows = append(s.windows, w)
		s.locs = append(s.locs, loc)
	}
	return s, nil
}

// DeviceLocalWindows reports whether any window takes its zone from the
// device (timezone_from), so that WindowSet differs between devices.
func (j *Job) DeviceLocalWindows() bool {
	for _, w := range j.Windows {
		if w.TimezoneFrom != nil {
			return true
		}
	}
	return false
}

// Empty reports whether the set has no windows, so it is always open.
func (s WindowSet) Empty() bool { return len(s.windows) == 0 }

// OpenAt reports whether any window is open at t and when the open stretch
// ends, following windows that open before the others close. For an empty
// set it returns true and the zero time: always open.
func (s WindowSet) OpenAt(t time.Time) (open bool, closes time.Time) {
	if s.Empty() {
		return true, time.Time{}
	}
	for i, w := range s.windows {
		if o, c := w.OpenAt(t, s.locs[i]); o {
			open = true
			if c.After(closes) {
				closes = c
			}
		}
	}
	if !open {
		return false, time.Time{}
	}
	for range maxExtend {
		extended := false
		for i, w := range s.windows {
			if o, c := w.OpenAt(closes, s.locs[i]); o && c.After(closes) {
				closes, extended = c, true
			}
		}
		if !extended {
			break
		}
	}
	return true, closes
}

// NextOpening returns the earliest opening of any window strictly after
// after, or the zero time when none opens again or the set is empty.
func (s WindowSet) NextOpening(after time.Time) time.Time {
	var next time.Time
	for i, w := range s.windows {
		if n := w.NextOpening(after, s.locs[i]); !n.IsZero() && (next.IsZero() || n.Before(next)) {
			next = n
		}
	}
	return next
}

var windowSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "cron", Required: true},
		{Name: "duration", Required: true},
		{Name: "timezone"},
		{Name: "timezone_from"},
	},
}

func (l *loader) decodeWindow(b *hcl.Block, jobName string, env *evalEnv) (*Window, hcl.Diagnostics) {
	w := &Window{Name: b.Labels[0], DeclRange: blockRange(b), env: env}
	where := fmt.Sprintf("In window %q", w.Name)
	diags := checkName(b.Labels[0], "window", b.LabelRanges[0])
	content, d := decodeContent(b.Body, windowSchema, where)
	diags = append(diags, d...)
	if d.HasErrors() {
		return nil, diags
	}
	ad := l.attrDecoder(content.Attributes, l.staticContext(jobName), where)

	cronText, cronAttr := ad.str("cron")
	var pc parsedCron
	if cronAttr != nil {
		w.Cron = cronText
		var err error
		if pc, err = parseCron(cronText); err != nil {
			ad.errorf(cronAttr, cronSummary(err), "%s", cronDetail(err, "A window opens at each match of a five-field cron spec (minute hour day-of-month month day-of-week), such as \"0 1 * * *\" for 01:00 every day."))
		}
		w.spec = pc.spec
	}
	w.Duration = ad.duration("duration", 0, time.Minute, 0, false)

	tzText, tzAttr := ad.str("timezone")
	if tzAttr != nil {
		loc, err := loadZone(tzText)
		if err != nil {
			ad.errorf(tzAttr, "Unknown time zone", "timezone: %v.", err)
		}
		w.Timezone = loc
	}
	if attr, ok := content.Attributes["timezone_from"]; ok {
		if tzAttr != nil {
			ad.errorf(attr, "Conflicting time zones", "A window takes its zone from timezone (one zone for every device) or from timezone_from (each device's own zone), not both; timezone is set at %s.", posString(tzAttr.Range))
		} else if d := l.checkExpr(attr.Expr, scopeZone, "timezone_from"); d.HasErrors() {
			ad.diags = append(ad.diags, d...)
		} else {
			ad.diags = append(ad.diags, l.probeExpr(attr.Expr, jobName, "timezone_from", cty.String)...)
			w.TimezoneFrom = attr.Expr
			w.needs = map[string]needTree{}
			collectNeeds(w.needs, attr.Expr)
		}
	}
	if pc.loc != nil {
		if tzAttr != nil || w.TimezoneFrom != nil {
			other := "timezone_from"
			if tzAttr != nil {
				other = "timezone"
			}
			ad.errorf(cronAttr, "Conflicting time zones", "The cron spec sets CRON_TZ= and the window also sets %s. Give the zone once.", other)
		} else {
			w.Timezone = pc.loc
		}
	}
	if w.Timezone == nil && w.TimezoneFrom == nil {
		w.Timezone = time.UTC
	}

	if w.spec != nil && w.Duration > 0 {
		period := cronMinPeriod(w.spec)
		switch {
		case period == 0:
			ad.errorf(cronAttr, "Window never opens", "The cron spec %q matches at most once in the next five years, so the window would hardly ever open.", cronText)
		case w.Duration > period:
			ad.errorf(content.Attributes["duration"], "Window longer than its period",
				"The window opens every %s (cron %q) but stays open %s, so openings would overlap. Make duration at most %s, or open less often.",
				fmtDuration(period), cronText, fmtDuration(w.Duration), fmtDuration(period))
		}
	}
	return w, append(diags, ad.diags...)
}

// cronDetail phrases a cron parsing error as a diagnostic detail, adding
// what a valid spec looks like unless the problem was only the zone.
func cronDetail(err error, howto string) string {
	s := err.Error()
	s = strings.ToUpper(s[:1]) + s[1:] + "."
	if cronSummary(err) == "Unknown time zone" {
		return s
	}
	return s + " " + howto
}
