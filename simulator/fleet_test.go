package simulator_test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hubflow/hubflow/simulator"
)

func loadFile(t testing.TB, path string) (*simulator.Fleet, hcl.Diagnostics) {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return simulator.LoadFleet(path, src)
}

// mustLoad decodes src and fails the test on any diagnostic.
func mustLoad(t testing.TB, src string) *simulator.Fleet {
	t.Helper()
	f, diags := simulator.LoadFleet("fleet.hcl", []byte(src))
	if len(diags) > 0 {
		for _, d := range diags {
			t.Log(d)
		}
		t.Fatalf("got %d diagnostics, want none", len(diags))
	}
	return f
}

func TestLoadFleet_Example(t *testing.T) {
	f, diags := loadFile(t, filepath.Join("..", "examples", "fleet.hcl"))
	if len(diags) > 0 {
		t.Fatalf("examples/fleet.hcl: %v", diags)
	}
	if got := f.Size(); got < 30 || got > 60 {
		t.Errorf("got %d devices, want a few dozen", got)
	}
	var names []string
	for _, g := range f.Groups {
		names = append(names, g.Name)
		fw := g.Behaviour.Firmware
		if fw.Downloading.Max > 3*time.Second || fw.Applying.Max > 3*time.Second {
			t.Errorf("group %s: stages %s and %s, want at most 3s each", g.Name, fw.Downloading, fw.Applying)
		}
	}
	if !slices.Contains(names, "plant7-press") {
		t.Errorf("got groups %v, want plant7-press among them", names)
	}
}

// TestLoadFleet_READMEExample keeps the fleet file shown in
// examples/README.md valid.
func TestLoadFleet_READMEExample(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "examples", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "```hcl\n")
	src, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("examples/README.md has no hcl block")
	}
	f := mustLoad(t, src)
	g := f.Groups[0]
	if g.Count != 12 || g.Behaviour.Firmware.VersionPattern.String() != simulator.DefaultVersionPattern {
		t.Errorf("got count %d and pattern %s, want 12 and the default pattern", g.Count, g.Behaviour.Firmware.VersionPattern)
	}
}

func TestLoadFleet_Decode(t *testing.T) {
	f := mustLoad(t, `
defaults {
  firmware {
    downloading   = "2s"
    fail_applying = 0.25
  }
  slow {
    fraction = 0.5
  }
}

group "press" {
  count = 3
  id    = "plant7-press-%03d"
  first = 7
  firmware {
    applying        = "1s..4s"
    version_pattern = "v([0-9]+)"
  }
  slow {
    delay = "3s"
  }
  flaky {
    disconnects_per_hour = 6
  }
  offline {}
}

group "plain" {
  count = 2
}
`)
	if len(f.Groups) != 2 {
		t.Fatalf("got %d groups, want 2", len(f.Groups))
	}
	g := f.Groups[0]
	if got, want := g.DeviceID(0), "plant7-press-007"; got != want {
		t.Errorf("first ID: got %q, want %q", got, want)
	}
	if got, want := mustLoad(t, "group \"x\" {\n  count = 1\n  id = \"myDeviceId\"\n}\n").Groups[0].DeviceID(0), "myDeviceId"; got != want {
		t.Errorf("single device: got %q, want %q", got, want)
	}
	if got, want := f.Groups[1].DeviceID(1), "plain-0002"; got != want {
		t.Errorf("default ID pattern: got %q, want %q", got, want)
	}
	b := g.Behaviour
	checks := []struct {
		name      string
		got, want any
	}{
		{"downloading (from defaults)", b.Firmware.Downloading, simulator.Fixed(2 * time.Second)},
		{"applying", b.Firmware.Applying, simulator.Range{Min: time.Second, Max: 4 * time.Second}},
		{"fail_applying (from defaults)", b.Firmware.FailApplying, 0.25},
		{"slow fraction (from defaults)", b.Slow.Fraction, 0.5},
		{"slow delay", b.Slow.Delay, simulator.Fixed(3 * time.Second)},
		{"flaky fraction (block without one)", b.Flaky.Fraction, 1.0},
		{"flaky rate", b.Flaky.DisconnectsPerHour, 6.0},
		{"offline (empty block)", b.Offline, 1.0},
		{"reboot (default)", b.RebootTime, simulator.Range{Min: time.Second, Max: 3 * time.Second}},
		{"window accept (default)", b.Window.Accept, 1.0},
		{"version pattern", b.Firmware.VersionPattern.String(), "v([0-9]+)"},
		{"plain offline", f.Groups[1].Behaviour.Offline, 0.0},
		{"plain slow fraction (from defaults)", f.Groups[1].Behaviour.Slow.Fraction, 0.5},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
}

// TestLoadFleet_Positions pins the file:line:col of the three mistakes the
// fleet file must refuse before any device connects.
func TestLoadFleet_Positions(t *testing.T) {
	cases := []struct {
		name, src, summary, pos string
	}{
		{
			name:    "unknown behaviour",
			src:     "group \"a\" {\n  count = 1\n  teleport {\n  }\n}\n",
			summary: "Unknown behaviour", pos: "fleet.hcl:3:3",
		},
		{
			name:    "probability above one",
			src:     "group \"a\" {\n  count = 1\n  firmware {\n    fail_applying = 1.5\n  }\n}\n",
			summary: "Probability out of range", pos: "fleet.hcl:4:21",
		},
		{
			name:    "bad duration",
			src:     "group \"a\" {\n  count = 1\n  reboot { duration = \"soon\" }\n}\n",
			summary: "Invalid duration", pos: "fleet.hcl:3:23",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, diags := simulator.LoadFleet("fleet.hcl", []byte(c.src))
			if f != nil {
				t.Errorf("got a fleet, want nil")
			}
			if len(diags) != 1 {
				t.Fatalf("got %d diagnostics (%v), want 1", len(diags), diags)
			}
			d := diags[0]
			pos := fmt.Sprintf("%s:%d:%d", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column)
			if d.Summary != c.summary || pos != c.pos {
				t.Errorf("got %s %q, want %s %q", pos, d.Summary, c.pos, c.summary)
			}
		})
	}
}

var errorMarker = regexp.MustCompile(`#\s*ERROR:\s*(.+?)\s*$`)

// TestLoadFleet_Invalid loads each testdata/invalid file; every line that
// must get a diagnostic carries "# ERROR: <summary>".
func TestLoadFleet_Invalid(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "invalid", "*.hcl"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no invalid fleet files: %v", err)
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			want := map[int]string{}
			sc := bufio.NewScanner(bytes.NewReader(src))
			for line := 1; sc.Scan(); line++ {
				if m := errorMarker.FindStringSubmatch(sc.Text()); m != nil {
					want[line] = m[1]
				}
			}
			f, diags := simulator.LoadFleet(path, src)
			if f != nil {
				t.Errorf("got a fleet, want nil")
			}
			got := map[int]string{}
			for _, d := range diags {
				if d.Subject == nil {
					t.Errorf("diagnostic without position: %s", d.Error())
					continue
				}
				if d.Subject.Filename != path {
					t.Errorf("got file %q, want %q", d.Subject.Filename, path)
				}
				got[d.Subject.Start.Line] = d.Summary
			}
			for line, s := range want {
				if got[line] != s {
					t.Errorf("line %d: got %q, want %q", line, got[line], s)
				}
			}
			for line, s := range got {
				if _, ok := want[line]; !ok {
					t.Errorf("line %d: unexpected diagnostic %q", line, s)
				}
			}
			if t.Failed() {
				for _, d := range diags {
					t.Log(d.Error())
				}
			}
		})
	}
}

func TestLoadFleet_Messages(t *testing.T) {
	cases := []struct {
		name, src, detail string
	}{
		{"suggests a behaviour", "group \"a\" {\n  count = 1\n  rebot {}\n}\n", `Did you mean "reboot"?`},
		{"lists the behaviours", "group \"a\" {\n  count = 1\n  teleport {}\n}\n", "reboot, firmware, offline, flaky, slow, maintenance_window"},
		{"explains the range", "group \"a\" {\n  count = 1\n  firmware {\n    fail_downloading = 2\n  }\n}\n", "a number from 0 to 1"},
		{"points at the first group", "group \"a\" {\n  count = 1\n}\ngroup \"a\" {\n  count = 1\n}\n", "fleet.hcl:1,1"},
		{"no groups", "defaults {}\n", "at least one group"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, diags := simulator.LoadFleet("fleet.hcl", []byte(c.src))
			if !diags.HasErrors() {
				t.Fatal("got no error, want one")
			}
			if !strings.Contains(diags[0].Detail, c.detail) {
				t.Errorf("got detail %q, want it to contain %q", diags[0].Detail, c.detail)
			}
		})
	}
}

func TestParseRange(t *testing.T) {
	cases := []struct {
		in      string
		want    simulator.Range
		wantErr bool
	}{
		{"2s", simulator.Fixed(2 * time.Second), false},
		{"1s..3s", simulator.Range{Min: time.Second, Max: 3 * time.Second}, false},
		{" 500ms .. 1s ", simulator.Range{Min: 500 * time.Millisecond, Max: time.Second}, false},
		{"0s", simulator.Range{}, false},
		{"3s..1s", simulator.Range{}, true},
		{"-1s", simulator.Range{}, true},
		{"1s..", simulator.Range{}, true},
		{"", simulator.Range{}, true},
		{"3", simulator.Range{}, true},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, err := simulator.ParseRange(c.in)
			if (err != nil) != c.wantErr {
				t.Fatalf("got error %v, want error %v", err, c.wantErr)
			}
			if got != c.want {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}
}

func TestVersionFromURI(t *testing.T) {
	def := regexp.MustCompile(simulator.DefaultVersionPattern)
	cases := []struct {
		pattern *regexp.Regexp
		uri     string
		want    string
		ok      bool
	}{
		{def, "https://fw.example.com/edge-2.1.0.bin", "2.1.0", true},
		{def, "https://secureurl/firmware/2.0.0.bin", "2.0.0", true},
		{def, "https://fw.example.com/v3.2.bin?sig=1.2.3", "3.2", true},
		{def, "https://fw.example.com/2024.05/image-1.2.3.swu", "1.2.3", true},
		{def, "https://fw.example.com/latest.bin", "", false},
		{def, "firmware-4.0.1.bin", "4.0.1", true},
		{regexp.MustCompile(`build([0-9]+)`), "https://x/fw-build812.img", "812", true},
		{regexp.MustCompile(`r[0-9]+`), "https://x/fw-r7.img", "r7", true},
	}
	for _, c := range cases {
		t.Run(c.uri, func(t *testing.T) {
			got, ok := simulator.VersionFromURI(c.pattern, c.uri)
			if got != c.want || ok != c.ok {
				t.Errorf("got %q %v, want %q %v", got, ok, c.want, c.ok)
			}
		})
	}
}
