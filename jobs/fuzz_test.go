package jobs_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hubflow/hubflow/jobs"
)

// FuzzLoad feeds arbitrary bytes to Load, Format and the evaluation of
// whatever loads; none of them may panic.
func FuzzLoad(f *testing.F) {
	for _, pattern := range []string{"testdata/valid/*.hcl", "testdata/invalid/*.hcl", "testdata/fmt/*.hcl"} {
		files, _ := filepath.Glob(pattern)
		for _, file := range files {
			src, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(src)
		}
	}
	f.Add([]byte(`job "x" { target { devices = ["a"] } step "s" { method = "m" } }`))
	// Nesting past the limit, and expressions past the limits.
	f.Add([]byte(stepFile("    payload = " + strings.Repeat("{a = [(", 20_000))))
	f.Add([]byte(stepFile(`    payload = "` + strings.Repeat(`${"%{if true}`, 200) + `"`)))
	f.Add([]byte(stepFile("    success = " + strings.Repeat("!", 5000) + "true")))
	f.Add([]byte(stepFile(`    payload = { a = length(setproduct(range(1000), range(1000), range(1000))) }`)))
	f.Add([]byte(stepFile(`    success = length([for i in range(1000) : [for j in reported.a : format("%0999999999d", j)]]) > 0`)))
	f.Add([]byte(stepFile(`    progress = "${1e999 * 1e999}${1e-1000000}"`)))
	f.Add([]byte(`job "x" {
  target {
    devices = ["a"]
  }
  window "w" {
    cron     = "CRON_TZ="
    duration = "1h"
  }
  step "s" {
    method = "m"
  }
}`))
	dev := jobs.Device{
		ID:            "d",
		Tags:          map[string]any{"timezone": "Europe/Berlin"},
		Reported:      map[string]any{"a": map[string]any{"b": []any{1.0, "x", nil}}, "s": "str"},
		StepStartedAt: time.Date(2026, 3, 29, 1, 0, 0, 0, time.UTC),
	}
	at := time.Date(2026, 3, 29, 0, 30, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, src []byte) {
		jobs.Format(src)
		c, diags := jobs.Load(jobs.LoadConfig{Sources: []jobs.Source{{Name: "fuzz.hcl", Bytes: src}}})
		if c == nil {
			if !diags.HasErrors() {
				t.Fatalf("nil config without errors")
			}
			return
		}
		for _, j := range c.Jobs {
			_ = j.Hash()
			for _, s := range j.Steps {
				s.Observe(dev)
			}
			if set, err := j.WindowSet(dev); err == nil {
				set.OpenAt(at)
				set.NextOpening(at)
			}
			if j.Schedule != nil {
				j.Schedule.Next(at)
			}
		}
	})
}
