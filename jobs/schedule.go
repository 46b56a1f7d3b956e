package jobs

import (
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/robfig/cron/v3"
)

// Schedule says when runs of a job are created: at every activation of
// Cron, or once At. A job without a schedule gets runs only from
// `hubflow run`.
type Schedule struct {
	// Cron is the spec as written (CRON_TZ= prefix included), or "".
	Cron string
	// Location is the zone Cron is read in: its CRON_TZ=, or UTC. Nil when
	// the schedule is At.
	Location *time.Location
	// At is the single run's time, or the zero time for a cron schedule.
	At time.Time
	// ProhibitOverlap, true by default, means no new run while the previous
	// one is unfinished.
	ProhibitOverlap bool
	DeclRange       hcl.Range

	spec *cron.SpecSchedule
}

// Next returns the first activation strictly after after, or the zero time
// when there is none (an At schedule whose time has passed). Cron times are
// wall-clock times in Location under the same daylight-saving rules as
// windows: a time skipped by spring forward fires at the first instant
// after the gap, a time repeated by fall back fires once, at the first, so
// one intended instant never fires twice. Schedule satisfies
// robfig/cron's Schedule interface.
func (s *Schedule) Next(after time.Time) time.Time {
	if s.spec == nil {
		if s.At.After(after) {
			return s.At
		}
		return time.Time{}
	}
	return nextSpec(s.spec, after, s.Location)
}

var _ cron.Schedule = (*Schedule)(nil)

var scheduleSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "cron"},
		{Name: "at"},
		{Name: "prohibit_overlap"},
	},
}

func (l *loader) decodeSchedule(b *hcl.Block, jobName string) (*Schedule, hcl.Diagnostics) {
	where := "In a schedule block"
	content, diags := decodeContent(b.Body, scheduleSchema, where)
	if diags.HasErrors() {
		return nil, diags
	}
	s := &Schedule{DeclRange: b.DefRange, ProhibitOverlap: true}
	ad := l.attrDecoder(content.Attributes, l.staticContext(jobName), where)
	cronText, cronAttr := ad.str("cron")
	atText, atAttr := ad.str("at")
	s.ProhibitOverlap = ad.boolean("prohibit_overlap", true)
	switch {
	case cronAttr != nil && atAttr != nil:
		ad.errorf(atAttr, "Conflicting schedule",
			"A schedule has either cron (a run at every match) or at (a single run), not both; cron is set at %s.", posString(cronAttr.Range))
	case cronAttr != nil:
		s.Cron = cronText
		pc, err := parseCron(cronText)
		if err != nil {
			ad.errorf(cronAttr, cronSummary(err), "%s", cronDetail(err, "A schedule creates a run at each match of a five-field cron spec (minute hour day-of-month month day-of-week), such as \"0 0 * * *\" for midnight every day, optionally prefixed with CRON_TZ=Zone/Name."))
			break
		}
		s.spec, s.Location = pc.spec, pc.loc
		if s.Location == nil {
			s.Location = time.UTC
		}
		if nextSpec(s.spec, time.Date(2025, time.January, 1, 0, 0, 0, 0, time.UTC), s.Location).IsZero() {
			ad.errorf(cronAttr, "Schedule never fires", "The cron spec %q matches no time in five years (a date that does not exist, such as February 30th?).", cronText)
		}
	case atAttr != nil:
		t, err := time.Parse(time.RFC3339, atText)
		if err != nil {
			ad.errorf(atAttr, "Invalid time", "at must be an RFC 3339 time with a zone, such as \"2026-12-01T00:00:00Z\" or \"2026-12-01T01:00:00+01:00\"; %q is not.", atText)
		}
		s.At = t
	default:
		if len(ad.diags) == 0 {
			ad.diags = append(ad.diags, errorAt(b.DefRange, "Empty schedule",
				"A schedule needs cron (a run at every match) or at (a single run). Without a schedule block, runs are created only by hubflow run."))
		}
	}
	return s, append(diags, ad.diags...)
}
