package jobs_test

import (
	"math"
	"testing"

	"github.com/hubflow/hubflow/jobs"
)

func TestParseRate(t *testing.T) {
	tests := []struct {
		in      string
		want    float64
		wantErr bool
	}{
		{"50/s", 50, false},
		{"600/m", 10, false},
		{"2/h", 2.0 / 3600, false},
		{" 0.5 / s ", 0.5, false},
		{"50", 0, true},
		{"50/d", 0, true},
		{"0/s", 0, true},
		{"-1/s", 0, true},
		{"NaN/s", 0, true},
		{"Inf/s", 0, true},
		{"fast/s", 0, true},
		{"", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := jobs.ParseRate(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseRate(%q) err = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if math.Abs(got-tt.want) > 1e-12 {
				t.Errorf("ParseRate(%q) = %g, want %g", tt.in, got, tt.want)
			}
		})
	}
}
