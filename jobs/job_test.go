package jobs_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/hubflow/hubflow/jobs"
)

func TestLoad_contractExample(t *testing.T) {
	c, diags := jobs.Load(jobs.LoadConfig{Files: []string{"testdata/valid/contract-example.hcl"}})
	if diags.HasErrors() {
		logDiags(t, diags)
		t.Fatal("load failed")
	}
	j := c.Job("firmware-2-1-0")
	if j == nil {
		t.Fatal("job firmware-2-1-0 missing")
	}
	if got, want := j.Target.Query, "tags.site = 'plant-7' AND properties.reported.fwVersion != '2.1.0'"; got != want {
		t.Errorf("query %q, want %q", got, want)
	}
	if j.Schedule == nil || j.Schedule.Cron != "0 0 * * *" || !j.Schedule.ProhibitOverlap || j.Schedule.Location != time.UTC {
		t.Errorf("schedule %+v, want daily at midnight UTC without overlap", j.Schedule)
	}
	if len(j.Windows) != 1 || j.Windows[0].Name != "night" || j.Windows[0].Duration != 3*time.Hour || j.Windows[0].Timezone.String() != "Europe/Berlin" {
		t.Errorf("windows %+v, want night 3h Europe/Berlin", j.Windows)
	}
	r := j.Rollout
	if r.Concurrency != 100 || r.Rate != 50 || r.RateText != "50/s" || r.Canary != 5 {
		t.Errorf("rollout %+v, want 100, 50/s, canary 5", r)
	}
	if a := r.Abort; a == nil || a.FailureRatio != 0.1 || a.MinFinished != 20 || a.Action != jobs.ActionPause ||
		!reflect.DeepEqual(a.Count, []string{jobs.OutcomeFailed, jobs.OutcomeTimedOut}) {
		t.Errorf("abort %+v, want 0.1 / 20 / pause / both", r.Abort)
	}
	if len(j.Steps) != 2 {
		t.Fatalf("got %d steps, want 2", len(j.Steps))
	}
	up := j.Step("update")
	if !up.IsMethod() || up.Method != "firmwareUpdate" || string(up.Payload) != `{"fwPackageUri":"https://firmware.example.com/edge-2.1.0.bin"}` {
		t.Errorf("update step %s %s", up.Method, up.Payload)
	}
	if up.ResponseTimeout != 30*time.Second || up.ConnectTimeout != 10*time.Second || up.Timeout != 20*time.Minute ||
		!reflect.DeepEqual(up.AcceptStatus, []int{200}) || up.Retry.Attempts != 3 || up.Retry.Backoff != 30*time.Second {
		t.Errorf("update step timings %+v", up)
	}
	if up.Progress == nil || up.Success == nil || up.Failure == nil {
		t.Errorf("update step conditions missing")
	}
	if up.DeclRange.Start.Line != 43 || up.DeclRange.Filename != "testdata/valid/contract-example.hcl" {
		t.Errorf("update DeclRange %s, want line 43", up.DeclRange)
	}
	rb := j.Step("reboot")
	if string(rb.Payload) != `{}` || rb.Progress != nil || rb.Failure != nil || rb.Timeout != 5*time.Minute {
		t.Errorf("reboot step %+v", rb)
	}
}

func TestLoad_defaults(t *testing.T) {
	j := loadSource(t, `
job "d" {
  target {
    devices = ["a"]
  }
  step "m" {
    method = "rebootDevice"
  }
  step "t" {
    desired = { mode = "eco" }
  }
}`).Jobs[0]
	if j.Schedule != nil || len(j.Windows) != 0 || j.Description != "" || j.Target.Follow {
		t.Errorf("job %+v, want no schedule, no windows", j)
	}
	if r := j.Rollout; r.Concurrency != jobs.DefaultConcurrency || r.Rate != 0 || r.Canary != 0 || r.Abort != nil {
		t.Errorf("rollout %+v, want defaults", r)
	}
	m := j.Steps[0]
	if string(m.Payload) != "null" || m.ResponseTimeout != 30*time.Second || m.ConnectTimeout != 0 ||
		!reflect.DeepEqual(m.AcceptStatus, []int{200}) || m.Timeout != jobs.DefaultStepTimeout ||
		m.Retry.Attempts != jobs.DefaultAttempts || m.Retry.Backoff != jobs.DefaultBackoff || m.Sensitive {
		t.Errorf("method step %+v, want defaults", m)
	}
	d := j.Steps[1]
	if d.IsMethod() || string(d.Desired) != `{"mode":"eco"}` {
		t.Errorf("desired step %+v", d)
	}
	if o := d.Observe(jobs.Device{ID: "a"}); o.Success || o.Failure || o.Progress != "" || o.Err != nil {
		t.Errorf("observation without conditions %+v, want zero", o)
	}
}

func TestLoad_abortDefaults(t *testing.T) {
	j := loadSource(t, `
job "a" {
  target {
    devices = ["a"]
  }
  rollout {
    abort {
      failure_ratio = 0.5
    }
  }
  step "s" {
    method = "m"
  }
}`).Jobs[0]
	a := j.Rollout.Abort
	if a == nil || a.MinFinished != jobs.DefaultMinFinished || a.Action != jobs.ActionPause || len(a.Count) != 2 || j.Rollout.Concurrency != jobs.DefaultConcurrency {
		t.Errorf("abort %+v, want defaults", a)
	}
}

func TestLoad_multipleSources(t *testing.T) {
	c, diags := jobs.Load(jobs.LoadConfig{Sources: []jobs.Source{
		{Name: "vars.hcl", Bytes: []byte(`variable "m" { default = "reboot" }` + "\n" + `job "one" {
  target {
    devices = ["a"]
  }
  step "s" {
    method = var.m
  }
}`)},
		{Name: "two.hcl", Bytes: []byte(`job "one" {
  target {
    devices = ["a"]
  }
  step "s" {
    method = var.m
  }
}`)},
	}})
	if c != nil || len(diags) != 1 || diags[0].Summary != "Duplicate job name" || diags[0].Subject.Filename != "two.hcl" ||
		!strings.Contains(diags[0].Detail, "vars.hcl:2:1") {
		logDiags(t, diags)
		t.Errorf("want one duplicate job error in two.hcl naming vars.hcl:2:1")
	}
}

func TestLoad_noInput(t *testing.T) {
	c, diags := jobs.Load(jobs.LoadConfig{})
	if c != nil || !diags.HasErrors() || diags[0].Summary != "No job files" {
		t.Errorf("got %v, want No job files", diags)
	}
	c, diags = jobs.Load(jobs.LoadConfig{Sources: []jobs.Source{{Name: "v.hcl", Bytes: []byte(`variable "x" { default = 1 }`)}}})
	if c != nil || !diags.HasErrors() || diags[0].Summary != "No job block" {
		t.Errorf("got %v, want No job block", diags)
	}
	c, diags = jobs.Load(jobs.LoadConfig{Files: []string{"testdata/does-not-exist.hcl"}})
	if c != nil || !diags.HasErrors() || diags[0].Summary != "Cannot read job file" {
		t.Errorf("got %v, want Cannot read job file", diags)
	}
}

// TestExamples loads every job file under examples/. Files without a job
// block (a fleet description, say) are not job files and are skipped.
func TestExamples(t *testing.T) {
	files, err := filepath.Glob("../examples/*.hcl")
	if err != nil {
		t.Fatal(err)
	}
	loaded := 0
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !hasJobBlock(src) {
			continue
		}
		loaded++
		t.Run(filepath.Base(f), func(t *testing.T) {
			c, diags := jobs.Load(jobs.LoadConfig{Files: []string{f}})
			if len(diags) > 0 {
				logDiags(t, diags)
				t.Fatalf("got %d diagnostics, want none", len(diags))
			}
			if formatted := jobs.Format(src); string(formatted) != string(src) {
				t.Errorf("%s is not formatted; run hubflow fmt", f)
			}
			for _, j := range c.Jobs {
				for _, s := range j.Steps {
					if s.Timeout > 2*time.Hour {
						t.Errorf("job %s step %s: timeout %s, want at most 2h in an example", j.Name, s.Name, s.Timeout)
					}
				}
			}
		})
	}
	if loaded < 4 {
		t.Errorf("loaded %d example job files, want at least 4", loaded)
	}
}

func hasJobBlock(src []byte) bool {
	f, diags := hclsyntax.ParseConfig(src, "x.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		return true // let Load report it
	}
	for _, b := range f.Body.(*hclsyntax.Body).Blocks {
		if b.Type == "job" {
			return true
		}
	}
	return false
}

func TestStep_payloadJSON(t *testing.T) {
	s := loadStep(t, `payload = { n = 1.5, list = [1, "a", true], nested = { x = null } }`)
	var v map[string]any
	if err := json.Unmarshal(s.Payload, &v); err != nil {
		t.Fatalf("payload %s: %v", s.Payload, err)
	}
	if v["n"] != 1.5 || len(v["list"].([]any)) != 3 {
		t.Errorf("payload %s", s.Payload)
	}
}
