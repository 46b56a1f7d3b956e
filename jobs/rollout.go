package jobs

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// Rollout defaults, used when the rollout block or an attribute is absent.
const (
	DefaultConcurrency = 10
	// DefaultMinFinished is how many devices must have finished before an
	// abort rule can trip.
	DefaultMinFinished = 1
)

// Abort actions.
const (
	// ActionPause pauses the run until `hubflow resume`.
	ActionPause = "pause"
	// ActionAbort ends the run as aborted.
	ActionAbort = "abort"
)

// Outcomes an abort rule can count.
const (
	OutcomeFailed   = "failed"
	OutcomeTimedOut = "timed_out"
)

// Rollout says how fast a run proceeds.
type Rollout struct {
	// Concurrency is how many device executions may be in flight at once;
	// at least 1.
	Concurrency int
	// Rate is the most new method invocations (or twin patches) per second;
	// 0 means no limit beyond the hub's quotas.
	Rate float64
	// RateText is Rate as written ("50/s"), or "".
	RateText string
	// Canary is how many devices go first; the rest wait until all of them
	// have succeeded. 0 means no canary phase.
	Canary int
	// Abort is the abort rule, or nil.
	Abort *Abort
	// DeclRange is the rollout block's range; zero when the job has none.
	DeclRange hcl.Range
}

// Abort trips when, once at least MinFinished devices have finished, the
// share of finished devices whose outcome is in Count reaches
// FailureRatio.
type Abort struct {
	// FailureRatio is in (0, 1].
	FailureRatio float64
	MinFinished  int
	// Count holds OutcomeFailed and/or OutcomeTimedOut; both by default.
	Count []string
	// Action is ActionPause (the default) or ActionAbort.
	Action    string
	DeclRange hcl.Range
}

// ParseRate reads a rate such as "50/s", "600/m" or "2/h" and returns it
// per second.
func ParseRate(s string) (float64, error) {
	num, unit, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return 0, fmt.Errorf("%q is not a rate; write a count per unit, such as \"50/s\", \"600/m\" or \"2/h\"", s)
	}
	n, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || !(n > 0 && n <= 1e9) {
		return 0, fmt.Errorf("%q is not a rate: the count must be a positive number, as in \"50/s\"", s)
	}
	switch strings.TrimSpace(unit) {
	case "s":
		return n, nil
	case "m":
		return n / 60, nil
	case "h":
		return n / 3600, nil
	}
	return 0, fmt.Errorf("%q is not a rate: the unit must be s, m or h, as in \"50/s\", \"600/m\" or \"2/h\"", s)
}

var rolloutSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "concurrency"},
		{Name: "rate"},
		{Name: "canary"},
	},
	Blocks: []hcl.BlockHeaderSchema{{Type: "abort"}},
}

var abortSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "failure_ratio", Required: true},
		{Name: "min_finished"},
		{Name: "count"},
		{Name: "action"},
	},
}

func (l *loader) decodeRollout(b *hcl.Block, jobName string) (Rollout, hcl.Diagnostics) {
	r := Rollout{Concurrency: DefaultConcurrency}
	if b == nil {
		return r, nil
	}
	r.DeclRange = b.DefRange
	where := "In a rollout block"
	content, diags := decodeContent(b.Body, rolloutSchema, where)
	if diags.HasErrors() {
		return r, diags
	}
	ad := l.attrDecoder(content.Attributes, l.staticContext(jobName), where)
	r.Concurrency = ad.integer("concurrency", DefaultConcurrency, 1, 100000)
	r.Canary = ad.integer("canary", 0, 0, 100000)
	if s, attr := ad.str("rate"); attr != nil {
		rate, err := ParseRate(s)
		if err != nil {
			ad.errorf(attr, "Invalid rate", "%v.", err)
		}
		r.Rate, r.RateText = rate, s
	}
	first, d := uniqueBlock(content.Blocks, "abort", "A rollout")
	diags = append(diags, d...)
	if first != nil {
		a, d := l.decodeAbort(first, jobName)
		diags = append(diags, d...)
		r.Abort = a
	}
	return r, append(diags, ad.diags...)
}

func (l *loader) decodeAbort(b *hcl.Block, jobName string) (*Abort, hcl.Diagnostics) {
	where := "In an abort block"
	content, diags := decodeContent(b.Body, abortSchema, where)
	if diags.HasErrors() {
		return nil, diags
	}
	a := &Abort{
		DeclRange: b.DefRange,
		Action:    ActionPause,
		Count:     []string{OutcomeFailed, OutcomeTimedOut},
	}
	ad := l.attrDecoder(content.Attributes, l.staticContext(jobName), where)
	if f, attr := ad.number("failure_ratio"); attr != nil {
		if !(f > 0 && f <= 1) {
			ad.errorf(attr, "Invalid failure_ratio", "failure_ratio is a share of finished devices, more than 0 and at most 1 (0.1 means 10%%), not %g.", f)
		}
		a.FailureRatio = f
	}
	a.MinFinished = ad.integer("min_finished", DefaultMinFinished, 1, 1000000)
	if count, attr := ad.strings("count"); attr != nil {
		seen := map[string]bool{}
		for _, c := range count {
			switch {
			case c != OutcomeFailed && c != OutcomeTimedOut:
				ad.errorf(attr, "Invalid count", "count lists the outcomes that trip the rule, %q and/or %q; %q is not one of them.", OutcomeFailed, OutcomeTimedOut, c)
			case seen[c]:
				ad.errorf(attr, "Invalid count", "count lists %q twice.", c)
			}
			seen[c] = true
		}
		if len(count) == 0 {
			ad.errorf(attr, "Invalid count", "count needs at least one of %q and %q; remove it to count both.", OutcomeFailed, OutcomeTimedOut)
		}
		a.Count = count
	}
	if s, attr := ad.str("action"); attr != nil {
		if s != ActionPause && s != ActionAbort {
			ad.errorf(attr, "Invalid abort action", "action is %q (wait for hubflow resume) or %q (end the run), not %q.", ActionPause, ActionAbort, s)
		}
		a.Action = s
	}
	return a, append(diags, ad.diags...)
}
