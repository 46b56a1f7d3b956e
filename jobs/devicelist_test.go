package jobs_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/hubflow/hubflow/jobs"
)

// deviceListJob is a job whose target lists n devices, written out, and a
// list(string) variable with the same ids as its default.
func deviceListJob(n int) (string, []string) {
	ids := make([]string, n)
	quoted := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("press-%06d", i)
		quoted[i] = `"` + ids[i] + `"`
	}
	list := "[" + strings.Join(quoted, ", ") + "]"
	return fmt.Sprintf(`
variable "spare" {
  type    = list(string)
  default = %s
}
job "many" {
  target { devices = %s }
  step "reboot" { method = "rebootDevice" }
}
`, list, list), ids
}

func TestLoad_longDeviceList(t *testing.T) {
	src, ids := deviceListJob(20000)
	cfg := loadSource(t, src)
	if got := cfg.Jobs[0].Target.Devices; !slices.Equal(got, ids) {
		t.Fatalf("target has %d devices, want the %d listed in order", len(got), len(ids))
	}
	v := cfg.Variables[0].Value
	if !v.Type().IsListType() || v.LengthInt() != len(ids) || v.Index(cty.NumberIntVal(19999)).AsString() != ids[19999] {
		t.Fatalf("variable spare is %s of %d, want list(string) of %d", v.Type().FriendlyName(), v.LengthInt(), len(ids))
	}
}

// TestLoad_deviceListElements checks that elements of a written-out list
// convert as HCL converts them: numbers and bools to strings, and the
// errors name the element.
func TestLoad_deviceListElements(t *testing.T) {
	cfg := loadSource(t, `
job "mixed" {
  target { devices = ["a", 7, true, "b"] }
  step "reboot" { method = "rebootDevice" }
}`)
	if got, want := cfg.Jobs[0].Target.Devices, []string{"a", "7", "true", "b"}; !slices.Equal(got, want) {
		t.Fatalf("devices = %q, want %q", got, want)
	}
	for _, tt := range []struct{ list, detail string }{
		{`["a", null]`, "devices cannot contain null"},
		{`["a", { id = "b" }]`, "list of strings is required"},
		{`["a", ["b"]]`, "list of strings is required"},
	} {
		_, diags := jobs.Load(jobs.LoadConfig{Sources: []jobs.Source{{Name: "t.hcl", Bytes: []byte(`
job "bad" {
  target { devices = ` + tt.list + ` }
  step "reboot" { method = "rebootDevice" }
}`)}}})
		if !diags.HasErrors() || !strings.Contains(diags.Error(), tt.detail) {
			t.Errorf("devices = %s: got %v, want an error saying %q", tt.list, diags, tt.detail)
		}
	}
}

// BenchmarkLoad_deviceList loads a job file listing 10,000 devices.
func BenchmarkLoad_deviceList(b *testing.B) {
	src, _ := deviceListJob(10000)
	for b.Loop() {
		if _, diags := jobs.Load(jobs.LoadConfig{Sources: []jobs.Source{{Name: "t.hcl", Bytes: []byte(src)}}}); diags.HasErrors() {
			b.Fatal(diags)
		}
	}
}
