package jobs

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"
)

// Hash returns the hex SHA-256 of the job's normalized content and the
// values of all variables. It ignores layout and comments (re-formatting a
// file keeps it) and changes with anything that changes what the job does.
// `hubflow plan` combines it with the resolved device set into the plan
// hash.
func (j *Job) Hash() string { return j.hash }

// hashDoc is the normalized form of a job that Hash covers. Field order
// is fixed by the struct and map keys are sorted by encoding/json, so equal
// jobs encode to equal bytes.
type hashDoc struct {
	Version     int                        `json:"v"`
	Name        string                     `json:"name"`
	Description string                     `json:"description"`
	Query       string                     `json:"query,omitempty"`
	Devices     []string                   `json:"devices,omitempty"`
	Follow      bool                       `json:"follow"`
	Schedule    *hashSchedule              `json:"schedule,omitempty"`
	Windows     []hashWindow               `json:"windows,omitempty"`
	Rollout     hashRollout                `json:"rollout"`
	Steps       []hashStep                 `json:"steps"`
	Variables   map[string]json.RawMessage `json:"variables"`
}

type hashSchedule struct {
	Cron            string `json:"cron,omitempty"`
	At              string `json:"at,omitempty"`
	ProhibitOverlap bool   `json:"prohibit_overlap"`
}

type hashWindow struct {
	Name         string `json:"name"`
	Cron         string `json:"cron"`
	Duration     int64  `json:"duration_ns"`
	Timezone     string `json:"timezone,omitempty"`
	TimezoneFrom string `json:"timezone_from,omitempty"`
}

type hashRollout struct {
	Concurrency int        `json:"concurrency"`
	Rate        float64    `json:"rate"`
	Canary      int        `json:"canary"`
	Abort       *hashAbort `json:"abort,omitempty"`
}

type hashAbort struct {
	FailureRatio float64  `json:"failure_ratio"`
	MinFinished  int      `json:"min_finished"`
	Count        []string `json:"count"`
	Action       string   `json:"action"`
}

type hashStep struct {
	Name            string          `json:"name"`
	Method          string          `json:"method,omitempty"`
	Desired         json.RawMessage `json:"desired,omitempty"`
	Payload         json.RawMessage `json:"payload,omitempty"`
	ResponseTimeout int64           `json:"response_timeout_ns"`
	ConnectTimeout  int64           `json:"connect_timeout_ns"`
	AcceptStatus    []int           `json:"accept_status"`
	Progress        string          `json:"progress,omitempty"`
	Success         string          `json:"success,omitempty"`
	Failure         string          `json:"failure,omitempty"`
	Timeout         int64           `json:"timeout_ns"`
	Attempts        int             `json:"attempts"`
	Backoff         int64           `json:"backoff_ns"`
}

func (l *loader) hashJob(j *Job, vars []*Variable) string {
	doc := hashDoc{
		Version:     1,
		Name:        j.Name,
		Description: j.Description,
		Query:       j.Target.Query,
		Devices:     j.Target.Devices,
		Follow:      j.Target.Follow,
		Rollout: hashRollout{
			Concurrency: j.Rollout.Concurrency,
			Rate:        j.Rollout.Rate,
			Canary:      j.Rollout.Canary,
		},
		Variables: map[string]json.RawMessage{},
	}
	if s := j.Schedule; s != nil {
		hs := &hashSchedule{Cron: s.Cron, ProhibitOverlap: s.ProhibitOverlap}
		if !s.At.IsZero() {
			hs.At = s.At.UTC().Format(time.RFC3339Nano)
		}
		doc.Schedule = hs
	}
	for _, w := range j.Windows {
		hw := hashWindow{Name: w.Name, Cron: w.Cron, Duration: int64(w.Duration), TimezoneFrom: l.normalizeExpr(w.TimezoneFrom)}
		if w.Timezone != nil {
			hw.Timezone = w.Timezone.String()
		}
		doc.Windows = append(doc.Windows, hw)
	}
	if a := j.Rollout.Abort; a != nil {
		doc.Rollout.Abort = &hashAbort{FailureRatio: a.FailureRatio, MinFinished: a.MinFinished, Count: a.Count, Action: a.Action}
	}
	for _, s := range j.Steps {
		hs := hashStep{
			Name:            s.Name,
			Method:          s.Method,
			Desired:         s.Desired,
			ResponseTimeout: int64(s.ResponseTimeout),
			ConnectTimeout:  int64(s.ConnectTimeout),
			AcceptStatus:    s.AcceptStatus,
			Progress:        s.norm[0],
			Success:         s.norm[1],
			Failure:         s.norm[2],
			Timeout:         int64(s.Timeout),
			Attempts:        s.Retry.Attempts,
			Backoff:         int64(s.Retry.Backoff),
		}
		if s.IsMethod() {
			hs.Payload = s.Payload
		}
		doc.Steps = append(doc.Steps, hs)
	}
	for _, v := range vars {
		doc.Variables[v.Name] = valueJSON(v.Value)
	}
	b, err := json.Marshal(doc)
	if err != nil {
		// Every field is a plain value or valid JSON produced by cty.
		panic("jobs: encode hash document: " + err.Error())
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
