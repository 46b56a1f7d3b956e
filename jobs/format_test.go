package jobs_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hubflow/hubflow/jobs"
)

func TestFormat(t *testing.T) {
	ins, err := filepath.Glob("testdata/fmt/*_in.hcl")
	if err != nil || len(ins) == 0 {
		t.Fatalf("glob: %v, %d files", err, len(ins))
	}
	for _, in := range ins {
		name := strings.TrimSuffix(filepath.Base(in), "_in.hcl")
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(strings.TrimSuffix(in, "_in.hcl") + "_out.hcl")
			if err != nil {
				t.Fatal(err)
			}
			if d := jobs.CheckSyntax(in, src); d.HasErrors() {
				t.Fatalf("CheckSyntax: %v", d)
			}
			got := jobs.Format(src)
			if !bytes.Equal(got, want) {
				t.Errorf("Format(%s):\ngot:\n%s\nwant:\n%s", in, got, want)
			}
			if again := jobs.Format(got); !bytes.Equal(again, got) {
				t.Errorf("Format is not idempotent:\nfirst:\n%s\nsecond:\n%s", got, again)
			}
		})
	}
}

func TestCheckSyntax(t *testing.T) {
	d := jobs.CheckSyntax("bad.hcl", []byte("job \"x\" {\n  target {\n"))
	if !d.HasErrors() || d[0].Subject == nil || d[0].Subject.Filename != "bad.hcl" {
		t.Errorf("got %v, want a syntax error in bad.hcl", d)
	}
	if d := jobs.CheckSyntax("ok.hcl", []byte("a = 1\n")); d.HasErrors() {
		t.Errorf("got %v for valid HCL, want none", d)
	}
}

func TestFormat_empty(t *testing.T) {
	if got := jobs.Format([]byte("\n\n  \n")); len(got) != 0 {
		t.Errorf("Format(blank) = %q, want empty", got)
	}
}
