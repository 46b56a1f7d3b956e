package jobs_test

import (
	"testing"

	"github.com/hubflow/hubflow/jobs"
)

func TestQuoteString(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"press-01", `'press-01'`},
		{"", `''`},
		{"o'brien", `'o\'brien'`},
		{`back\slash`, `'back\\slash'`},
		{`"quoted"`, `'\"quoted\"'`},
		{"tab\there", `'tab\u0009here'`},
		{"new\nline", `'new\u000aline'`},
		{"ünïcode", `'ünïcode'`},
		{`\'`, `'\\\''`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := jobs.QuoteString(tt.in); got != tt.want {
				t.Errorf("QuoteString(%q) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}
