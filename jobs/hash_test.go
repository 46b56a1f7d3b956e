package jobs_test

import (
	"strings"
	"testing"

	"github.com/hubflow/hubflow/jobs"
)

const hashBase = `
variable "uri" {
  default = "https://example.com/a.bin"
}
job "h" {
  target {
    query = "tags.site = 'a'"
  }
  window "night" {
    cron          = "0 1 * * *"
    duration      = "3h"
    timezone_from = tags.timezone
  }
  step "s" {
    method   = "m"
    payload  = { uri = var.uri }
    success  = reported.status == "done"
    progress = reported.status
  }
}
`

// hashBaseReformatted is hashBase with other layout and comments.
const hashBaseReformatted = `
# a comment
variable "uri" { default = "https://example.com/a.bin" }
job "h" {
  target { query = "tags.site = 'a'" }
  window "night" {
    cron = "0 1 * * *"
    duration = "3h"
    timezone_from = tags.timezone   # from the twin
  }
  step "s" {
    method = "m"
    payload = {
      uri = var.uri
    }
    success = reported.status=="done"
    progress  =  reported.status
  }
}
`

func TestJob_Hash(t *testing.T) {
	base := loadSource(t, hashBase).Jobs[0].Hash()
	tests := []struct {
		name     string
		src      string
		vars     []string
		wantSame bool
	}{
		{"same source", hashBase, nil, true},
		{"layout and comments", hashBaseReformatted, nil, true},
		{"variable value", hashBase, []string{"uri=https://example.com/b.bin"}, false},
		{"variable set to its default", hashBase, []string{"uri=https://example.com/a.bin"}, true},
		{"condition", replaceOnce(t, hashBase, `"done"`, `"completed"`), nil, false},
		{"window duration", replaceOnce(t, hashBase, `"3h"`, `"2h"`), nil, false},
		{"method", replaceOnce(t, hashBase, `method   = "m"`, `method   = "n"`), nil, false},
		{"query", replaceOnce(t, hashBase, `'a'`, `'b'`), nil, false},
		{"zone expression", replaceOnce(t, hashBase, `tags.timezone`, `tags.tz`), nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := loadSource(t, tt.src, func(cfg *jobs.LoadConfig) { cfg.Vars = tt.vars })
			got := c.Jobs[0].Hash()
			if (got == base) != tt.wantSame {
				t.Errorf("hash %s vs base %s: same = %v, want %v", got, base, got == base, tt.wantSame)
			}
		})
	}
}

func replaceOnce(t testing.TB, s, old, new string) string {
	t.Helper()
	i := strings.Index(s, old)
	if i < 0 {
		t.Fatalf("%q not in source", old)
	}
	return s[:i] + new + s[i+len(old):]
}
