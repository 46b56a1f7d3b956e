package jobs_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"

	"github.com/hubflow/hubflow/jobs"
)

// stepFile is a job file whose step has body as line 7.
func stepFile(body string) string {
	return "job \"x\" {\n  target {\n    devices = [\"a\"]\n  }\n  step \"s\" {\n    method = \"m\"\n" + body + "\n  }\n}\n"
}

// wantError is the one error diagnostic a case must give.
type wantError struct {
	summary string
	detail  string // a part of the detail
	file    string // test.hcl when empty
	line    int
	col     int
}

// checkOneError loads cfg and checks that it fails with exactly want.
func checkOneError(t testing.TB, cfg jobs.LoadConfig, want wantError) {
	t.Helper()
	c, diags := jobs.Load(cfg)
	if c != nil || !diags.HasErrors() {
		t.Fatalf("got a config and %d diagnostics, want an error %q", len(diags), want.summary)
	}
	if len(diags) != 1 {
		logDiags(t, diags)
		t.Fatalf("got %d diagnostics, want 1", len(diags))
	}
	d := diags[0]
	if d.Summary != want.summary || !strings.Contains(d.Detail, want.detail) {
		t.Errorf("got %q: %q, want %q with %q", d.Summary, d.Detail, want.summary, want.detail)
	}
	file := want.file
	if file == "" {
		file = "test.hcl"
	}
	if d.Subject == nil {
		t.Fatalf("got no position, want %s:%d:%d", file, want.line, want.col)
	}
	got := fmt.Sprintf("%s:%d:%d", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column)
	if wantPos := fmt.Sprintf("%s:%d:%d", file, want.line, want.col); got != wantPos {
		t.Errorf("got position %s, want %s", got, wantPos)
	}
}

func source(src string) jobs.LoadConfig {
	return jobs.LoadConfig{Sources: []jobs.Source{{Name: "test.hcl", Bytes: []byte(src)}}}
}

// col returns the column of the n-th (from 1) occurrence of sub in line.
func col(line, sub string, n int) int {
	at := -1
	for range n {
		i := strings.Index(line[at+1:], sub)
		if i < 0 {
			panic(fmt.Sprintf("%q has fewer than %d of %q", line, n, sub))
		}
		at += 1 + i
	}
	return at + 1
}

func TestLoad_nestingTooDeep(t *testing.T) {
	const n = 50_000
	deepDetail := fmt.Sprintf("nesting deeper than %d levels", jobs.MaxNestingDepth)
	object := "    payload = " + strings.Repeat("{a = ", n) + "1" + strings.Repeat("}", n)
	tuple := "    payload = { a = " + strings.Repeat("[", n) + "1" + strings.Repeat("]", n) + " }"
	parens := "    success = " + strings.Repeat("(", n) + "true" + strings.Repeat(")", n)
	blocks := "    " + strings.Repeat("x { ", n) + strings.Repeat("}", n)
	templates := "    payload = { a = " + strings.Repeat(`"${`, n) + "1" + strings.Repeat(`}"`, n) + " }"
	directives := `    payload = { a = "` + strings.Repeat("%{ if true }", 300) + strings.Repeat("%{ endif }", 300) + `" }`
	bangs := "    success = " + strings.Repeat("!", n) + "true"
	ors := "    success = " + strings.Repeat("true || ", 5000) + "true"
	// The job and step blocks are two levels; the payload adds the rest.
	tests := []struct {
		name string
		line string
		want wantError
	}{
		{"objects", object, wantError{"Nesting too deep", deepDetail, "", 7, col(object, "{", jobs.MaxNestingDepth-1)}},
		{"tuples", tuple, wantError{"Nesting too deep", deepDetail, "", 7, col(tuple, "[", jobs.MaxNestingDepth-2)}},
		{"parentheses", parens, wantError{"Nesting too deep", deepDetail, "", 7, col(parens, "(", jobs.MaxNestingDepth-1)}},
		{"blocks", blocks, wantError{"Nesting too deep", deepDetail, "", 7, col(blocks, "{", jobs.MaxNestingDepth-1)}},
		// A string and its ${ are a level each.
		{"templates", templates, wantError{"Nesting too deep", deepDetail, "", 7, col(templates, "$", (jobs.MaxNestingDepth-2)/2)}},
		// A %{ if } is a level once its sequence has closed.
		{"directives", directives, wantError{"Nesting too deep", deepDetail, "", 7, col(directives, "if", jobs.MaxNestingDepth-4)}},
		{"negations", bangs, wantError{"Expression too long", fmt.Sprintf("more than %d operators", jobs.MaxOperatorChain), "", 7, col(bangs, "!", jobs.MaxOperatorChain+1)}},
		{"or chain", ors, wantError{"Expression too long", "contains(", "", 7, col(ors, "||", jobs.MaxOperatorChain+1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkOneError(t, source(stepFile(tt.line)), tt.want)
		})
	}
}

func TestLoad_nestingAtTheLimit(t *testing.T) {
	// Two levels for the job and step blocks, the rest in the payload.
	depth := jobs.MaxNestingDepth - 2
	src := stepFile("    payload = " + strings.Repeat("{a = ", depth) + "1" + strings.Repeat("}", depth))
	c := loadSource(t, src)
	if got := len(c.Jobs[0].Steps[0].Payload); got == 0 {
		t.Errorf("got an empty payload, want %d levels of objects", depth)
	}
	checkOneError(t, source(strings.Replace(src, "{a = ", "{a = {a = ", 1)), wantError{
		"Nesting too deep", "256 levels", "", 7, col("    payload = "+strings.Repeat("{a = ", depth+1), "{", depth+1),
	})
}

func TestLoad_nestingNotCounted(t *testing.T) {
	// Brackets in strings, heredocs, comments and escapes are text.
	brackets := strings.Repeat("([{", 1000)
	src := `# ` + brackets + `
// ` + brackets + `
/* ` + brackets + ` */
job "x" {
  description = "` + brackets + ` $${ %%{ \" \\"
  target {
    devices = ["a"]
  }
  step "s" {
    method  = "m"
    payload = {
      text = <<-EOT
        ` + brackets + `
        ${"` + brackets + `"}
        EOT
      more = <<EOT
` + brackets + `
EOT
    }
  }
}
`
	loadSource(t, src)
}

func TestLoad_nestingOutsideJobFiles(t *testing.T) {
	deep := strings.Repeat("[", 1000) + strings.Repeat("]", 1000)
	jsonFile := writeFile(t, "vars.json", `{"list": `+deep+`}`)
	hclFile := writeFile(t, "vars.hcl", "\nlist = "+deep+"\n")
	job := `variable "list" {
  type    = any
  default = []
}
` + stepFile("")
	tests := []struct {
		name string
		cfg  jobs.LoadConfig
		want wantError
	}{
		{"json var file", jobs.LoadConfig{VarFiles: []string{jsonFile}}, wantError{"Nesting too deep", "256 levels", jsonFile, 1, 10 + 255}},
		{"hcl var file", jobs.LoadConfig{VarFiles: []string{hclFile}}, wantError{"Nesting too deep", "256 levels", hclFile, 2, 8 + 256}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Sources = source(job).Sources
			checkOneError(t, tt.cfg, tt.want)
		})
	}
	t.Run("-var", func(t *testing.T) {
		cfg := source(strings.Replace(job, "type    = any", "type    = list(list(number))", 1))
		cfg.Vars = []string{"list=" + deep}
		_, diags := jobs.Load(cfg)
		if len(diags) != 1 || diags[0].Summary != "Invalid value for variable" {
			logDiags(t, diags)
			t.Fatalf("got %d diagnostics, want one Invalid value for variable", len(diags))
		}
	})
	t.Run("CheckSyntax", func(t *testing.T) {
		diags := jobs.CheckSyntax("fmt.hcl", []byte("a = "+deep))
		if len(diags) != 1 || diags[0].Summary != "Nesting too deep" || diags[0].Subject.Start.Column != 5+256 {
			logDiags(t, diags)
			t.Fatalf("got %d diagnostics, want one Nesting too deep at column %d", len(diags), 5+256)
		}
	})
}

func TestLoad_expressionTooLarge(t *testing.T) {
	large := fmt.Sprintf("at most %d MiB", jobs.MaxExpressionBytes>>20)
	outOfRange := fmt.Sprintf("from 1e-%d to 1e%d", jobs.MaxNumberExponent, jobs.MaxNumberExponent)
	l := func(s string) string { return "    payload = { a = " + s + " }" }
	literals := "[" + strings.Repeat("0, ", 99) + "0]"
	tests := []struct {
		name, line string
		summary    string
		detail     string
		// at is what the diagnostic points at: its n-th occurrence.
		at string
		n  int
	}{
		{"set product", l(`length(setproduct(range(1000), range(1000), range(1000)))`),
			"Expression too large", "setproduct() would build 1000000000 combinations", "setproduct", 1},
		{"nested loops", l(`[for i in range(1000) : [for j in range(1000) : [for k in range(1000) : "x"]]]`),
			"Expression too large", large, "range", 3},
		{"nested loops over literals", l(`[for a in ` + literals + ` : [for b in ` + literals + ` : [for c in ` + literals + ` : [for d in ` + literals + ` : null]]]]`),
			"Expression too large", large, literals, 4},
		{"loop of strings", l(`[for i in range(1000) : [for j in range(1000) : format("%0100d", j)]]`),
			"Expression too large", large, "format", 1},
		{"format width", l(`format("%0999999999d", 1)`),
			"Expression too large", "format() would build text padded to 999999999 characters", "format", 1},
		{"format precision", l(`format("%.999999999f", 1)`),
			"Expression too large", "padded to 999999999", "format", 1},
		{"formatlist", l(`formatlist("%010000000d", range(10))`),
			"Expression too large", "formatlist()", "formatlist", 1},
		{"join", l(`join(format("%0100000d", 0), range(1000))`),
			"Expression too large", "join() would build", "join", 1},
		{"replace", l(`replace(format("%01000000d", 0), "0", "0123456789abcdefghij")`),
			"Expression too large", "replace() would build", "replace", 1},
		{"indent", l(`indent(1000000000, "a\nb")`),
			"Expression too large", "indent() would build", "indent", 1},
		{"split", l(`length(split("", format("%01000000d", 0)))`),
			"Expression too large", "split() would build 1000000 strings", "split", 1},
		{"template of templates", l(`[for i in range(1000) : "${format("%010000d", i)}${format("%010000d", i)}"]`),
			"Expression too large", large, "format", 2},
		{"inside try", l(`try(setproduct(range(1000), range(1000), range(1000)), [])`),
			"Expression too large", "setproduct()", "try", 1},
		{"deep jsondecode", l(`jsondecode(join("", [for i in range(1000) : "["]))`),
			"Nesting too deep", "256 levels", "jsondecode", 1},
		{"number literal", l(`1e-1000000`), "Number out of range", outOfRange, "1e", 1},
		{"arithmetic", l(`1e999 * 1e999`), "Number out of range", outOfRange, "1e", 1},
		{"function result", l(`parseint("1${format("%01500d", 0)}", 10)`), "Number out of range", outOfRange, "parseint", 1},
		{"condition", `    success = can(setproduct(range(1000), range(1000), range(1000)))`,
			"Expression too large", "setproduct()", "can", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			checkOneError(t, source(stepFile(tt.line)), wantError{tt.summary, tt.detail, "", 7, col(tt.line, tt.at, tt.n)})
		})
	}
}

func TestLoad_expressionTooLargeInVariables(t *testing.T) {
	literals := "[" + strings.Repeat("0, ", 99) + "0]"
	loops := `[for a in ` + literals + ` : [for b in ` + literals + ` : [for c in ` + literals + ` : [for d in ` + literals + ` : 0]]]]`
	t.Run("default", func(t *testing.T) {
		src := "variable \"v\" {\n  default = " + loops + "\n}\n" + stepFile("")
		checkOneError(t, source(src), wantError{"Expression too large", "16 MiB", "", 2, col("  default = "+loops, "[for c", 1)})
	})
	t.Run("validation", func(t *testing.T) {
		src := "variable \"v\" {\n  default = 1\n  validation {\n    condition     = length(setproduct(range(1000), range(1000), range(1000))) > 0\n    error_message = \"no\"\n  }\n}\n" + stepFile("")
		checkOneError(t, source(src), wantError{"Expression too large", "setproduct()", "", 4, 28})
	})
	t.Run("var file", func(t *testing.T) {
		path := writeFile(t, "vars.hcl", "v = "+loops+"\n")
		cfg := source("variable \"v\" {\n  default = 1\n}\n" + stepFile(""))
		cfg.VarFiles = []string{path}
		checkOneError(t, cfg, wantError{"Expression too large", "16 MiB", path, 1, col("v = "+loops, "[for c", 1)})
	})
	t.Run("-var", func(t *testing.T) {
		cfg := source("variable \"n\" {\n  type    = number\n  default = 1\n}\n" + stepFile(""))
		cfg.Vars = []string{"n=1e-5000"}
		_, diags := jobs.Load(cfg)
		if len(diags) != 1 || diags[0].Summary != "Invalid value for variable" || !strings.Contains(diags[0].Detail, "1e-5000 is beyond") {
			logDiags(t, diags)
			t.Fatalf("got %d diagnostics, want one Invalid value for variable about 1e-5000", len(diags))
		}
	})
}

// TestLoad_withinLimits loads what the limits must leave alone.
func TestLoad_withinLimits(t *testing.T) {
	c := loadSource(t, `job "x" {
  target {
    devices = [for i in range(1000) : format("dev-%04d", i)]
  }
  step "s" {
    method  = "m"
    payload = { a = [for i in range(30) : [for j in range(30) : i * j]], big = 1e300 * 1e300 / 1e500, s = format("%05d", 7) }
    success = length([for k, v in reported : k if v != null]) > 0
  }
}
`)
	j := c.Jobs[0]
	if len(j.Target.Devices) != 1000 || j.Target.Devices[999] != "dev-0999" {
		t.Errorf("got %d devices, want dev-0000 to dev-0999", len(j.Target.Devices))
	}
	var payload struct {
		A   [][]float64
		Big float64
		S   string
	}
	if err := json.Unmarshal(j.Steps[0].Payload, &payload); err != nil {
		t.Fatal(err)
	}
	if len(payload.A) != 30 || payload.A[29][29] != 841 || payload.S != "00007" {
		t.Errorf("got payload %s, want 30 rows up to 29*29, s 00007", j.Steps[0].Payload)
	}
}

func TestStep_Observe_limits(t *testing.T) {
	list := make([]any, 1000)
	for i := range list {
		list[i] = float64(i)
	}
	t.Run("too large for a device", func(t *testing.T) {
		s := loadStep(t, `success = length(setproduct(reported.a, reported.a, reported.a)) > 0`)
		o := s.Observe(jobs.Device{ID: "d", Reported: map[string]any{"a": list}})
		var ee *jobs.EvalError
		if !errors.As(o.Err, &ee) || len(ee.Diagnostics) != 1 || ee.Diagnostics[0].Summary != "Expression too large" {
			t.Fatalf("got %v, want one Expression too large", o.Err)
		}
		if o.Success {
			t.Errorf("got success, want false for a failed condition")
		}
		if r := ee.Diagnostics[0].Subject; r == nil || r.Start.Line != 11 || r.Start.Column != 22 {
			t.Errorf("got position %v, want 11:22, the setproduct call", r)
		}
	})
	t.Run("twin number out of range", func(t *testing.T) {
		s := loadStep(t, `success = reported.n == null`)
		o := s.Observe(jobs.Device{ID: "d", Reported: map[string]any{"n": json.Number("1e-5000")}})
		if o.Err != nil || !o.Success {
			t.Errorf("got success %v (err %v), want true: the number reads as null", o.Success, o.Err)
		}
	})
}

// TestLoad_limitsAreDiagnostics checks that a limit stops evaluation with
// its diagnostic rather than with whatever the expression would do next.
func TestLoad_limitsAreDiagnostics(t *testing.T) {
	src := stepFile(`    payload = { a = [for i in range(1000) : try([for j in range(1000) : [for k in range(1000) : i]], 0)] }`)
	_, diags := jobs.Load(source(src))
	if len(diags) != 1 || diags[0].Summary != "Expression too large" || diags[0].Severity != hcl.DiagError {
		logDiags(t, diags)
		t.Fatalf("got %d diagnostics, want one Expression too large", len(diags))
	}
}

// BenchmarkStep_Observe measures a condition's evaluation with its limits.
func BenchmarkStep_Observe(b *testing.B) {
	s := loadStep(b, `success = contains(["2.1.0", "2.2.0"], lower(reported.fw)) && reported.uptime + 1 > 2
    progress = "${reported.fw}: ${reported.uptime}"`)
	dev := jobs.Device{ID: "d", Reported: map[string]any{"fw": "2.1.0", "uptime": 10.0}}
	for b.Loop() {
		if o := s.Observe(dev); o.Err != nil || !o.Success {
			b.Fatalf("got %+v, want success", o)
		}
	}
}

// TestLoad_repeatedReferences checks the ways one large value named many
// times could be copied each time.
func TestLoad_repeatedReferences(t *testing.T) {
	// A list: converting a long tuple to a list takes HCL a time that
	// grows with the square of its length.
	vars := "variable \"v\" {\n  type    = list(number)\n  default = [" + strings.Repeat("0, ", 1999) + "0]\n}\n"
	refs := func(ref string, n int) string { return strings.TrimSuffix(strings.Repeat(ref+", ", n), ", ") }
	tests := []struct {
		name, line string
		detail     string
		at         string
		n          int
	}{
		{"concat", "    payload = { a = length(concat(" + refs("var.v", 600) + ")) }", "concat() would build a collection", "concat", 1},
		{"converted for join", `    payload = { a = length(join(",", ` + refs("var.v", 600) + ")) }", "at most 16 MiB", "join", 1},
		{"splat", "    payload = { a = length([" + refs("var.v[*]", 600) + "]) }", "at most 16 MiB", "var.v", 525},
		{"conditional", "    payload = { a = length([" + refs("true ? var.v : []", 600) + "]) }", "at most 16 MiB", "var.v", 525},
		{"expanded", "    payload = { a = length([" + refs("length(concat(var.v...))", 600) + "]) }", "at most 16 MiB", "var.v", 525},
	}
	// Each copy of var.v counts 2000 elements of 16 bytes, so the 525th
	// goes over 16 MiB.
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			checkOneError(t, source(vars+stepFile(tt.line)), wantError{"Expression too large", tt.detail, "", 11, col(tt.line, tt.at, tt.n)})
		})
	}
}

func TestLoad_forExpressionInType(t *testing.T) {
	src := "variable \"v\" {\n  type = object({ a = optional(list(number), [for i in [1, 2] : i]) })\n  default = {}\n}\n" + stepFile("")
	checkOneError(t, source(src), wantError{"For expression in a type", "without hubflow's limits", "", 2, 46})
}

func TestLoad_varOptionTooLarge(t *testing.T) {
	cfg := source("variable \"v\" {\n  type    = any\n  default = 1\n}\n" + stepFile(""))
	literals := "[" + strings.Repeat("0, ", 99) + "0]"
	cfg.Vars = []string{"v=[for a in " + literals + " : [for b in " + literals + " : [for c in " + literals + " : [for d in " + literals + " : 0]]]]"}
	_, diags := jobs.Load(cfg)
	if len(diags) != 1 || diags[0].Summary != "Invalid value for variable" || !strings.Contains(diags[0].Detail, "at most 16 MiB") {
		logDiags(t, diags)
		t.Fatalf("got %d diagnostics, want one Invalid value for variable about the limit", len(diags))
	}
}
