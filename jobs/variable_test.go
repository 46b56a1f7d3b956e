package jobs_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/hubflow/hubflow/jobs"
)

const varsJob = `
variable "uri" {
  type    = string
  default = "https://example.com/a.bin"
}
variable "retries" {
  type    = number
  default = 3
}
variable "sites" {
  type    = list(string)
  default = []
}
variable "untyped" {
  default = "x"
}
variable "secret" {
  type      = string
  default   = "hunter2"
  sensitive = true
}
variable "limits" {
  type    = object({ rate = string, canary = optional(number, 1) })
  default = { rate = "1/s" }
}
variable "site" {
  type    = string
  default = "plant-7"
  validation {
    condition     = can(regex("^[a-z0-9-]+$", var.site))
    error_message = "A site is lower-case letters, digits and dashes."
  }
}
job "v" {
  target {
    query = "tags.site = '${var.site}'"
  }
  step "s" {
    method  = "m"
    payload = { uri = var.uri, token = var.secret }
  }
}
`

func writeFile(t testing.TB, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoad_variables(t *testing.T) {
	hclFile := writeFile(t, "vars.hcl", "uri = \"https://example.com/file.bin\"\nretries = 5\nsites = [\"a\", \"b\"]\n")
	jsonFile := writeFile(t, "vars.json", `{"retries": 7, "untyped": [1, 2]}`)
	tests := []struct {
		name string
		cfg  jobs.LoadConfig
		want map[string]cty.Value
	}{
		{
			name: "defaults",
			want: map[string]cty.Value{
				"uri":     cty.StringVal("https://example.com/a.bin"),
				"retries": cty.NumberIntVal(3),
				"sites":   cty.ListValEmpty(cty.String),
				"untyped": cty.StringVal("x"),
				"limits":  cty.ObjectVal(map[string]cty.Value{"rate": cty.StringVal("1/s"), "canary": cty.NumberIntVal(1)}),
			},
		},
		{
			name: "environment converts to the type",
			cfg:  jobs.LoadConfig{Env: []string{"HUBFLOW_VAR_retries=4", "HUBFLOW_VAR_sites=[\"x\"]", "HUBFLOW_VAR_unknown=1", "PATH=/bin", "HUBFLOW_VAR_untyped=5"}},
			want: map[string]cty.Value{
				"retries": cty.NumberIntVal(4),
				"sites":   cty.ListVal([]cty.Value{cty.StringVal("x")}),
				"untyped": cty.NumberIntVal(5),
			},
		},
		{
			name: "-var takes strings literally for string variables",
			cfg:  jobs.LoadConfig{Vars: []string{"uri=1.0", "untyped=hello world", "sites=[\"a\", \"b\"]", `limits={ rate = "2/s", canary = 3 }`}},
			want: map[string]cty.Value{
				"uri":     cty.StringVal("1.0"),
				"untyped": cty.StringVal("hello world"),
				"sites":   cty.ListVal([]cty.Value{cty.StringVal("a"), cty.StringVal("b")}),
				"limits":  cty.ObjectVal(map[string]cty.Value{"rate": cty.StringVal("2/s"), "canary": cty.NumberIntVal(3)}),
			},
		},
		{
			name: "var files in order",
			cfg:  jobs.LoadConfig{VarFiles: []string{hclFile, jsonFile}},
			want: map[string]cty.Value{
				"uri":     cty.StringVal("https://example.com/file.bin"),
				"retries": cty.NumberIntVal(7),
				"sites":   cty.ListVal([]cty.Value{cty.StringVal("a"), cty.StringVal("b")}),
				"untyped": cty.TupleVal([]cty.Value{cty.NumberIntVal(1), cty.NumberIntVal(2)}),
			},
		},
		{
			name: "precedence: env < var file < -var, later -var wins",
			cfg: jobs.LoadConfig{
				Env:      []string{"HUBFLOW_VAR_retries=1", "HUBFLOW_VAR_uri=env"},
				VarFiles: []string{hclFile},
				Vars:     []string{"retries=9", "retries=10"},
			},
			want: map[string]cty.Value{
				"uri":     cty.StringVal("https://example.com/file.bin"),
				"retries": cty.NumberIntVal(10),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Sources = []jobs.Source{{Name: "test.hcl", Bytes: []byte(varsJob)}}
			c, diags := jobs.Load(tt.cfg)
			if diags.HasErrors() {
				logDiags(t, diags)
				t.Fatal("load failed")
			}
			got := c.VariableValues()
			for name, want := range tt.want {
				if !got[name].RawEquals(want) {
					t.Errorf("var.%s = %#v, want %#v", name, got[name], want)
				}
			}
		})
	}
}

func TestLoad_variableErrors(t *testing.T) {
	varBlockFile := writeFile(t, "vars.hcl", "variable \"uri\" {\n  default = \"x\"\n}\n")
	badTypeFile := writeFile(t, "bad.hcl", "retries = \"many\"\nunknown = 1\n")
	tests := []struct {
		name        string
		cfg         jobs.LoadConfig
		wantSummary string
		wantDetail  string
		wantLine    int
	}{
		{"undeclared -var", jobs.LoadConfig{Vars: []string{"ur=x"}}, "Value for undeclared variable", `Did you mean "uri"?`, 0},
		{"malformed -var", jobs.LoadConfig{Vars: []string{"uri"}}, "Invalid -var option", "name=value", 0},
		// A value given without its name is not echoed: it may be a secret.
		{"-var with only a value", jobs.LoadConfig{Vars: []string{"hunter2"}}, "Invalid -var option", "not shown", 0},
		{"-var of the wrong type", jobs.LoadConfig{Vars: []string{"retries=many"}}, "Invalid value for variable", "var.retries given by -var is not a valid number", 0},
		{"env of the wrong type", jobs.LoadConfig{Env: []string{"HUBFLOW_VAR_sites=nope"}}, "Invalid value for variable", "environment", 0},
		{"validation fails for -var", jobs.LoadConfig{Vars: []string{"site=Plant 7"}}, "Invalid value for variable", "A site is lower-case letters", 30},
		{"variable block in a var file", jobs.LoadConfig{VarFiles: []string{varBlockFile}}, "Block in var file", "Move this variable block to the job file", 1},
		{"wrong type in a var file", jobs.LoadConfig{VarFiles: []string{badTypeFile}}, "Invalid value for variable", "not a valid number", 1},
		{"missing var file", jobs.LoadConfig{VarFiles: []string{filepath.Join(t.TempDir(), "none.hcl")}}, "Cannot read var file", "none.hcl", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Sources = []jobs.Source{{Name: "test.hcl", Bytes: []byte(varsJob)}}
			c, diags := jobs.Load(tt.cfg)
			if c != nil || !diags.HasErrors() {
				t.Fatalf("got config %v and %d diagnostics, want an error", c, len(diags))
			}
			var found *hcl.Diagnostic
			for _, d := range diags {
				if d.Severity == hcl.DiagError && d.Summary == tt.wantSummary {
					found = d
				}
			}
			if found == nil {
				logDiags(t, diags)
				t.Fatalf("no error %q", tt.wantSummary)
			}
			if !strings.Contains(found.Detail, tt.wantDetail) {
				t.Errorf("detail %q, want it to contain %q", found.Detail, tt.wantDetail)
			}
			line := 0
			if found.Subject != nil {
				line = found.Subject.Start.Line
			}
			if line != tt.wantLine {
				t.Errorf("line %d, want %d", line, tt.wantLine)
			}
			if strings.Contains(found.Detail, "hunter2") {
				t.Errorf("detail %q shows a sensitive value", found.Detail)
			}
		})
	}
}

func TestLoad_ignoreUndeclaredVars(t *testing.T) {
	c, diags := jobs.Load(jobs.LoadConfig{
		Sources:              []jobs.Source{{Name: "test.hcl", Bytes: []byte(varsJob)}},
		Vars:                 []string{"elsewhere=1", "retries=2"},
		IgnoreUndeclaredVars: true,
	})
	if c == nil || len(diags) != 0 {
		logDiags(t, diags)
		t.Fatal("load failed")
	}
	if got := c.VariableValues()["retries"]; !got.RawEquals(cty.NumberIntVal(2)) {
		t.Errorf("retries = %#v, want 2", got)
	}
}

func TestLoad_undeclaredInVarFileWarns(t *testing.T) {
	f := writeFile(t, "vars.hcl", "uri = \"x\"\nother = 1\n")
	c, diags := jobs.Load(jobs.LoadConfig{
		Sources:  []jobs.Source{{Name: "test.hcl", Bytes: []byte(varsJob)}},
		VarFiles: []string{f},
	})
	if c == nil || diags.HasErrors() {
		logDiags(t, diags)
		t.Fatal("load failed")
	}
	if len(diags) != 1 || diags[0].Severity != hcl.DiagWarning || diags[0].Summary != "Value for undeclared variable" {
		logDiags(t, diags)
		t.Errorf("got %d diagnostics, want one warning about var.other", len(diags))
	}
}

func TestConfig_RedactedVariables(t *testing.T) {
	c := loadSource(t, varsJob)
	got := c.RedactedVariables()
	if string(got["secret"]) != `"(sensitive)"` {
		t.Errorf("secret = %s, want redacted", got["secret"])
	}
	if string(got["uri"]) != `"https://example.com/a.bin"` {
		t.Errorf("uri = %s, want the value", got["uri"])
	}
	if string(got["sites"]) != `[]` {
		t.Errorf("sites = %s, want []", got["sites"])
	}
	all, err := json.Marshal(got)
	if err != nil || strings.Contains(string(all), "hunter2") {
		t.Errorf("redacted variables %s (err %v) show the secret", all, err)
	}
	if !c.Jobs[0].Steps[0].Sensitive {
		t.Errorf("step using var.secret: Sensitive = false, want true")
	}
	var v *jobs.Variable
	for _, x := range c.Variables {
		if x.Name == "secret" {
			v = x
		}
	}
	if v == nil || !v.Sensitive || v.ValueFrom != "default" {
		t.Errorf("variable secret = %+v, want sensitive from default", v)
	}
}
