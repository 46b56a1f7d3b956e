package runner

import (
	"context"
	"encoding/json"
	"math"
	"sort"
	"time"

	"golang.org/x/time/rate"

	"github.com/hubflow/hubflow/jobs"
)

// DefaultOpenings is how many upcoming window openings a plan lists.
const DefaultOpenings = 5

// PlanOptions tunes Plan.
type PlanOptions struct {
	// Now is the time openings are counted from; zero means the runner's
	// clock.
	Now time.Time
	// Openings is how many upcoming openings to list per zone; 0 means
	// DefaultOpenings.
	Openings int
	// IgnoreWindows plans as `hubflow run --ignore-windows` would run.
	IgnoreWindows bool
}

// Plan is what a run of a job would do now: which devices, which steps,
// when, and how long it may take. It is what `hubflow plan` prints.
type Plan struct {
	Job         string
	Description string
	// Hash is the plan hash `hubflow run -plan-hash` checks.
	Hash string
	// JobHash is jobs.Job.Hash: content and variables, without devices.
	JobHash string
	// Query is the target's full query, or "" for a device list.
	Query string
	// Follow is the target's follow flag.
	Follow bool
	// Devices are the ids a run would start, sorted.
	Devices []string
	// Skipped are the devices a run would record as skipped, and why.
	Skipped []SkippedDevice
	Steps   []PlanStep
	Rollout PlanRollout
	// Windows lists upcoming openings per zone: one entry for windows in a
	// fixed zone, one per distinct device zone for device-local windows.
	// Empty when the job has no windows or they are ignored.
	Windows []ZoneOpenings
	// OpenNow reports whether devices could start right now.
	OpenNow  bool
	Estimate Estimate
}

// SkippedDevice is a device a run would skip.
type SkippedDevice struct {
	ID     string `json:"id"`
	Reason string `json:"reason"`
}

// PlanStep is one step as a run would carry it out.
type PlanStep struct {
	Name string `json:"name"`
	// Kind is "method" or "desired".
	Kind   string `json:"kind"`
	Method string `json:"method,omitempty"`
	// Payload is the method payload, Desired the patch; both nil when they
	// use a sensitive variable (Sensitive).
	Payload         json.RawMessage `json:"payload,omitempty"`
	Desired         json.RawMessage `json:"desired,omitempty"`
	Sensitive       bool            `json:"sensitive,omitempty"`
	ResponseTimeout time.Duration   `json:"response_timeout,omitempty"`
	ConnectTimeout  time.Duration   `json:"connect_timeout,omitempty"`
	AcceptStatus    []int           `json:"accept_status,omitempty"`
	Timeout         time.Duration   `json:"timeout"`
	Attempts        int             `json:"attempts"`
	Backoff         time.Duration   `json:"backoff"`
	HasProgress     bool            `json:"has_progress"`
	HasSuccess      bool            `json:"has_success"`
	HasFailure      bool            `json:"has_failure"`
	// Progress, Success and Failure are the expressions as written, on
	// one line; "" when absent.
	Progress string `json:"progress,omitempty"`
	Success  string `json:"success,omitempty"`
	Failure  string `json:"failure,omitempty"`
}

// PlanRollout is the job's rollout settings.
type PlanRollout struct {
	Concurrency int     `json:"concurrency"`
	Rate        float64 `json:"rate_per_second,omitempty"`
	Canary      int     `json:"canary,omitempty"`
	// Abort describes the abort rule, or is nil.
	Abort *jobs.Abort `json:"-"`
}

// ZoneOpenings are the next openings of a job's windows in one zone.
type ZoneOpenings struct {
	// Zones are the zones the windows are read in ("Europe/Berlin").
	Zones string
	// Devices is how many target devices follow these openings.
	Devices int
	// OpenNow is true when a window is open at the plan's time, until
	// OpenUntil (which spans windows that open back to back).
	OpenNow   bool
	OpenUntil time.Time
	// Openings are the next openings after the plan's time, soonest first.
	Openings []Opening
}

// Opening is one opening of one window: Closes is Opens plus the window's
// duration.
type Opening struct {
	Window        string
	Opens, Closes time.Time
}

// Estimate bounds how long a run may take once it may start.
type Estimate struct {
	// Min is the time the rollout rate and the hub's method quota need to
	// start every device's every step; 0 when neither limits it.
	Min time.Duration `json:"min"`
	// Max is the time if every wave of Concurrency devices took each step's
	// full timeout.
	Max time.Duration `json:"max"`
}

// Plan resolves the job's target and works out what a run would do. It
// sends only queries (within the budget) and records nothing.
func (r *Runner) Plan(ctx context.Context, job *jobs.Job, o PlanOptions) (*Plan, error) {
	targets, err := r.resolve(ctx, job)
	if err != nil {
		return nil, err
	}
	now := o.Now
	if now.IsZero() {
		now = r.clock.Now()
	}
	n := o.Openings
	if n <= 0 {
		n = DefaultOpenings
	}
	p := &Plan{
		Job: job.Name, Description: job.Description, Hash: PlanHash(job, targets), JobHash: job.Hash(),
		Follow: job.Target.Follow,
		Rollout: PlanRollout{
			Concurrency: max(1, job.Rollout.Concurrency), Rate: job.Rollout.Rate,
			Canary: job.Rollout.Canary, Abort: job.Rollout.Abort,
		},
		Devices: []string{}, Skipped: []SkippedDevice{},
	}
	if job.Target.Query != "" {
		p.Query = "SELECT * FROM devices WHERE " + job.Target.Query
	}
	for _, s := range job.Steps {
		ps := PlanStep{
			Name: s.Name, Kind: "desired", Timeout: stepTimeout(s), Attempts: retryAttempts(s), Backoff: retryBackoff(s),
			HasProgress: s.Progress != nil, HasSuccess: s.Success != nil, HasFailure: s.Failure != nil,
			Progress: s.ProgressText, Success: s.SuccessText, Failure: s.FailureText,
			Sensitive: s.Sensitive,
		}
		if s.IsMethod() {
			ps.Kind, ps.Method = "method", s.Method
			ps.ResponseTimeout, ps.ConnectTimeout = s.ResponseTimeout, s.ConnectTimeout
			ps.AcceptStatus = s.AcceptStatus
			if len(ps.AcceptStatus) == 0 {
				ps.AcceptStatus = []int{200}
			}
			if !s.Sensitive {
				ps.Payload = s.Payload
			}
		} else if !s.Sensitive {
			ps.Desired = s.Desired
		}
		p.Steps = append(p.Steps, ps)
	}

	gs := newGates(job, o.IgnoreWindows)
	perGate := map[*gate]int{}
	for _, t := range targets {
		reason := t.SkipReason
		var g *gate
		if reason == "" {
			g, reason = gs.forDevice(t.ID, t.Twin)
		}
		if reason != "" {
			p.Skipped = append(p.Skipped, SkippedDevice{ID: t.ID, Reason: reason})
			continue
		}
		p.Devices = append(p.Devices, t.ID)
		if g != nil {
			perGate[g]++
		}
	}
	p.OpenNow = gs.none()
	if !gs.none() {
		all := gs.all()
		for _, g := range all {
			zo := ZoneOpenings{Zones: g.zone, Devices: perGate[g]}
			if open, closes := g.openAt(now); open {
				p.OpenNow = true
				zo.OpenNow, zo.OpenUntil = true, closes
			}
			zo.Openings = gs.openings(g, now, n)
			p.Windows = append(p.Windows, zo)
		}
		sort.Slice(p.Windows, func(i, j int) bool {
			a, b := p.Windows[i], p.Windows[j]
			if len(a.Openings) > 0 && len(b.Openings) > 0 && !a.Openings[0].Opens.Equal(b.Openings[0].Opens) {
				return a.Openings[0].Opens.Before(b.Openings[0].Opens)
			}
			return a.Zones < b.Zones
		})
	}
	p.Estimate = r.estimate(job, len(p.Devices))
	return p, nil
}

// estimate bounds the duration of a run over n devices.
func (r *Runner) estimate(job *jobs.Job, n int) Estimate {
	if n == 0 {
		return Estimate{}
	}
	var e Estimate
	perSec := math.Inf(1)
	if job.Rollout.Rate > 0 {
		perSec = job.Rollout.Rate
	}
	q := r.budget.Quota()
	var invocations float64
	for _, s := range job.Steps {
		invocations += float64(n)
		lim := q[OpTwinUpdate]
		cost := 1.0
		if s.IsMethod() {
			lim = q[OpMethod]
			cost = float64(MethodCost(len(s.Payload)))
		}
		if lim != rate.Inf {
			perSec = math.Min(perSec, float64(lim)/cost)
		}
	}
	if !math.IsInf(perSec, 1) && perSec > 0 {
		e.Min = time.Duration(invocations / perSec * float64(time.Second)).Round(time.Second)
	}
	waves := (n + max(1, job.Rollout.Concurrency) - 1) / max(1, job.Rollout.Concurrency)
	var per time.Duration
	for _, s := range job.Steps {
		per += stepTimeout(s)
	}
	e.Max = time.Duration(waves) * per
	if e.Max < e.Min {
		e.Max = e.Min
	}
	return e
}
