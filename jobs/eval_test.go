package jobs_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hubflow/hubflow/jobs"
)

// loadStep loads a job with one method step whose condition attributes are
// attrs and returns the step.
func loadStep(t testing.TB, attrs string) *jobs.Step {
	t.Helper()
	c := loadSource(t, fmt.Sprintf(`
variable "want" {
  default = "2.1.0"
}
job "j" {
  target {
    devices = ["a"]
  }
  step "s" {
    method = "m"
    %s
  }
}`, attrs))
	return c.Jobs[0].Steps[0]
}

func twin(t testing.TB, js string) map[string]any {
	t.Helper()
	if js == "" {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(js), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestStep_Observe(t *testing.T) {
	started := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name         string
		attrs        string
		reported     string
		tags         string
		wantProgress string
		wantSuccess  bool
		wantFailure  bool
		wantErr      string
	}{
		{
			name:         "contract firmware step, completed",
			attrs:        `progress = reported.firmwareStatus` + "\n" + `success = reported.firmwareStatus == "completed"` + "\n" + `failure = contains(["failed", "error"], reported.firmwareStatus)`,
			reported:     `{"firmwareStatus": "completed"}`,
			wantProgress: "completed", wantSuccess: true,
		},
		{
			name:        "contract firmware step, failed",
			attrs:       `success = reported.firmwareStatus == "completed"` + "\n" + `failure = contains(["failed", "error"], reported.firmwareStatus)`,
			reported:    `{"firmwareStatus": "error"}`,
			wantFailure: true,
		},
		{
			name:  "missing property is null",
			attrs: `progress = reported.firmwareStatus` + "\n" + `success = reported.firmwareStatus == "completed"` + "\n" + `failure = reported.firmwareStatus == null`,
			// no reported section at all
			wantFailure: true,
		},
		{
			name:     "missing nested property is null at any depth",
			attrs:    `success = reported.a.b.c.d == null` + "\n" + `progress = reported.a.b.c.d`,
			reported: `{"a": {"x": 1}}`, wantSuccess: true,
		},
		{
			name:     "null property read below is null",
			attrs:    `success = reported.a.b == null`,
			reported: `{"a": null}`, wantSuccess: true,
		},
		{
			name:     "missing attribute beside present ones",
			attrs:    `success = reported.a.present == 1 && reported.a.absent == null`,
			reported: `{"a": {"present": 1}}`, wantSuccess: true,
		},
		{
			name:     "index syntax and keys that are not identifiers",
			attrs:    `success = reported["$version"] == 3 && reported["fw-info"]["ver"] == "1"`,
			reported: `{"$version": 3, "fw-info": {"ver": "1"}}`, wantSuccess: true,
		},
		{
			name:     "try picks the fallback on a function error",
			attrs:    `success = try(timecmp(reported.rebootTime, step.started_at) > 0, false)`,
			reported: `{}`,
		},
		{
			name:     "timecmp with a python timestamp",
			attrs:    `success = try(timecmp(reported.rebootTime, step.started_at) > 0, false)`,
			reported: `{"rebootTime": "2026-03-01 12:00:01.123456"}`, wantSuccess: true,
		},
		{
			name:     "timecmp with an earlier RFC 3339 timestamp",
			attrs:    `success = try(timecmp(reported.rebootTime, step.started_at) > 0, false)`,
			reported: `{"rebootTime": "2026-03-01T12:59:00+01:00"}`,
		},
		{
			name:     "function given null fails, condition false, error recorded",
			attrs:    `success = lower(reported.status) == "done"`,
			reported: `{}`, wantErr: "test.hcl:11:21: Invalid function argument",
		},
		{
			name:     "attribute of a string fails",
			attrs:    `success = reported.fw.version == "1"`,
			reported: `{"fw": "1.0"}`, wantErr: "Unsupported attribute",
		},
		{
			name:     "number compared with a string",
			attrs:    `success = reported.fwVersion == var.want` + "\n" + `progress = reported.fwVersion`,
			reported: `{"fwVersion": 2.1}`, wantProgress: "2.1",
		},
		{
			name:     "number converted with tostring",
			attrs:    `success = tostring(reported.count) == "3"` + "\n" + `progress = reported.count`,
			reported: `{"count": 3}`, wantSuccess: true, wantProgress: "3",
		},
		{
			name:     "ordering a string fails",
			attrs:    `success = reported.percent > 50`,
			reported: `{"percent": "sixty"}`, wantErr: "Invalid operand",
		},
		{
			name:     "condition giving a string that is a bool",
			attrs:    `success = reported.done`,
			reported: `{"done": "true"}`, wantSuccess: true,
		},
		{
			name:     "condition giving an odd type",
			attrs:    `success = reported.done`,
			reported: `{"done": {"x": 1}}`, wantErr: "Invalid condition result",
		},
		{
			name:     "null condition is not satisfied",
			attrs:    `success = reported.done`,
			reported: `{}`,
		},
		{
			name:         "object progress is JSON",
			attrs:        `progress = reported.fw`,
			reported:     `{"fw": {"state": "downloading", "percent": 40, "parts": [1, true, null]}}`,
			wantProgress: `{"parts":[1,true,null],"percent":40,"state":"downloading"}`,
		},
		{
			name:         "bool progress",
			attrs:        `progress = reported.ok`,
			reported:     `{"ok": false}`,
			wantProgress: "false",
		},
		{
			name:     "contains on strings",
			attrs:    `success = contains(reported.message, "done") && startswith(reported.message, "all") && endswith(reported.message, "!")`,
			reported: `{"message": "all done!"}`, wantSuccess: true,
		},
		{
			name:  "tags, device id, job name",
			attrs: `success = tags.site == "plant-7" && device_id == "press-01" && job.name == "j"`,
			tags:  `{"site": "plant-7"}`, wantSuccess: true,
		},
		{
			name:     "list elements",
			attrs:    `success = length(reported.items) == 2 && reported.items[1].name == "b"`,
			reported: `{"items": [{"name": "a"}, {"name": "b"}]}`, wantSuccess: true,
		},
		{
			name:     "index out of range fails",
			attrs:    `success = reported.items[5] == 1`,
			reported: `{"items": []}`, wantErr: "Invalid index",
		},
		{
			name:     "short-circuit guards a null",
			attrs:    `success = reported.status != null && upper(reported.status) == "OK"`,
			reported: `{}`,
		},
		{
			name:     "can",
			attrs:    `success = !can(lower(reported.status))`,
			reported: `{}`, wantSuccess: true,
		},
		{
			name:         "failure and success both evaluated",
			attrs:        `success = true` + "\n" + `failure = true` + "\n" + `progress = "x"`,
			wantProgress: "x", wantSuccess: true, wantFailure: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := loadStep(t, tt.attrs)
			o := s.Observe(jobs.Device{
				ID:            "press-01",
				Reported:      twin(t, tt.reported),
				Tags:          twin(t, tt.tags),
				StepStartedAt: started,
			})
			if o.Progress != tt.wantProgress || o.Success != tt.wantSuccess || o.Failure != tt.wantFailure {
				t.Errorf("got progress %q success %v failure %v, want %q %v %v (err %v)",
					o.Progress, o.Success, o.Failure, tt.wantProgress, tt.wantSuccess, tt.wantFailure, o.Err)
			}
			switch {
			case tt.wantErr == "" && o.Err != nil:
				t.Errorf("err = %v, want nil", o.Err)
			case tt.wantErr != "" && (o.Err == nil || !strings.Contains(o.Err.Error(), tt.wantErr)):
				t.Errorf("err = %v, want it to contain %q", o.Err, tt.wantErr)
			}
			if o.Err != nil {
				var ee *jobs.EvalError
				if !errors.As(o.Err, &ee) || ee.Diagnostics[0].Subject == nil {
					t.Errorf("err %T without a range, want *EvalError with a subject", o.Err)
				}
			}
		})
	}
}

func TestStep_Observe_stableError(t *testing.T) {
	s := loadStep(t, `success = lower(reported.status) == "x"`)
	dev := jobs.Device{ID: "d", Reported: map[string]any{"other": 1.0}}
	first := s.Observe(dev).Err
	second := s.Observe(dev).Err
	if first == nil || second == nil || first.Error() != second.Error() {
		t.Errorf("errors %v and %v, want the same text at each observation", first, second)
	}
}

func TestStep_Observe_startedAtZero(t *testing.T) {
	s := loadStep(t, `success = step.started_at == null`)
	if o := s.Observe(jobs.Device{ID: "d"}); !o.Success {
		t.Errorf("success = false, want step.started_at null for a zero time (err %v)", o.Err)
	}
}

func TestStep_Observe_oddGoValues(t *testing.T) {
	s := loadStep(t, `success = reported.n == 5 && reported.big == 12345678901234567890 && reported.s.x == "y"`)
	type custom struct {
		X string `json:"x"`
	}
	dev := jobs.Device{ID: "d", Reported: map[string]any{
		"n":   5,
		"big": json.Number("12345678901234567890"),
		"s":   custom{X: "y"},
	}}
	if o := s.Observe(dev); !o.Success || o.Err != nil {
		t.Errorf("success %v err %v, want true and nil", o.Success, o.Err)
	}
}

func TestStep_Observe_concurrent(t *testing.T) {
	s := loadStep(t, `progress = reported.p`+"\n"+`success = reported.p == "done"`)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range 50 {
				p := fmt.Sprintf("%d-%d", i, k)
				if o := s.Observe(jobs.Device{ID: "d", Reported: map[string]any{"p": p}}); o.Progress != p {
					t.Errorf("progress %q, want %q", o.Progress, p)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestParseTime(t *testing.T) {
	tests := []struct {
		in   string
		want string
		err  bool
	}{
		{"2026-03-01T12:00:00Z", "2026-03-01T12:00:00Z", false},
		{"2026-03-01T12:00:00.5+01:00", "2026-03-01T11:00:00.5Z", false},
		{"2026-03-01 12:00:00", "2026-03-01T12:00:00Z", false},
		{"2026-03-01 12:00:00.123456", "2026-03-01T12:00:00.123456Z", false},
		{"2026-03-01 12:00:00.123456+02:00", "2026-03-01T10:00:00.123456Z", false},
		{"2026-03-01T12:00:00", "2026-03-01T12:00:00Z", false},
		{"yesterday", "", true},
		{"", "", true},
		{"2026-13-01 12:00:00", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := jobs.ParseTime(tt.in)
			if (err != nil) != tt.err {
				t.Fatalf("ParseTime(%q) err = %v, want error %v", tt.in, err, tt.err)
			}
			if err == nil && got.UTC().Format(time.RFC3339Nano) != tt.want {
				t.Errorf("ParseTime(%q) = %s, want %s", tt.in, got.UTC().Format(time.RFC3339Nano), tt.want)
			}
		})
	}
}

func TestFunctions(t *testing.T) {
	tests := []struct {
		expr string
		want string
	}{
		{`timecmp("2026-01-01T00:00:00Z", "2026-01-01 00:00:00")`, "0"},
		{`timecmp("2026-01-01T00:00:01Z", "2026-01-01 00:00:00.999999")`, "1"},
		{`timecmp("2025-12-31 23:59:59", "2026-01-01T00:00:00Z")`, "-1"},
		{`parsetime("2026-01-01 01:00:00+01:00")`, "2026-01-01T00:00:00Z"},
		{`contains("firmware", "mwa")`, "true"},
		{`contains(["a", "b"], "c")`, "false"},
		{`strcontains("abc", "b")`, "true"},
		{`length("héllo")`, "5"},
		{`length([1, 2])`, "2"},
		{`tonumber("42") + 1`, "43"},
		{`tobool("true")`, "true"},
		{`upper(lower("MiXed"))`, "MIXED"},
		{`coalesce(null, "x")`, "x"},
		{`formatdate("YYYY", "2026-05-01T00:00:00Z")`, "2026"},
		{`timeadd("2026-05-01T00:00:00Z", "1h")`, "2026-05-01T01:00:00Z"},
		{`jsonencode({a = 1})`, `{"a":1}`},
		{`regex("^v([0-9]+)", "v12")[0]`, "12"},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			s := loadStep(t, "progress = "+tt.expr)
			o := s.Observe(jobs.Device{ID: "d"})
			if o.Err != nil || o.Progress != tt.want {
				t.Errorf("%s = %q (err %v), want %q", tt.expr, o.Progress, o.Err, tt.want)
			}
		})
	}
}

// TestStep_expressionText checks the expressions' source as plan shows it:
// as written on one line, and one line for one written over several.
func TestStep_expressionText(t *testing.T) {
	s := loadStep(t, `progress = reported.firmwareStatus
    success = (
      reported.fw  ==  "2.1.0 # not a comment" # the version
      && try(reported.ok, false)   // and the flag
    )`)
	if got, want := s.ProgressText, "reported.firmwareStatus"; got != want {
		t.Errorf("ProgressText = %q, want %q", got, want)
	}
	if got, want := s.SuccessText, `( reported.fw  ==  "2.1.0 # not a comment" && try(reported.ok, false) )`; got != want {
		t.Errorf("SuccessText = %q, want %q", got, want)
	}
	if s.FailureText != "" {
		t.Errorf("FailureText = %q, want none", s.FailureText)
	}
}
