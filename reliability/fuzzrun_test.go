package reliability_test

import (
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// envFuzzTime sets how long TestFuzzTargets fuzzes each target, as go
// test's -fuzztime: a count of inputs ("20000x") or a duration ("1m"). The
// default is a count, so that a loaded machine still fuzzes after the
// fuzzer has replayed the corpus, and small enough for every CI run.
const envFuzzTime = "HUBFLOW_FUZZTIME"

// fuzzTargets are hubflow's fuzz targets by package: the job-file loader,
// the emulator's query parser, request bodies and JSON encoding, MQTT
// topics, connection strings, hub error bodies, the decoding of query
// pages of twins, and the quoting of device ids in queries.
var fuzzTargets = []struct{ pkg, name string }{
	{"../jobs", "FuzzLoad"},
	{"../emulator/query", "FuzzParse"},
	{"../emulator/query", "FuzzParseCondition"},
	{"../emulator", "FuzzTwinPatch"},
	{"../emulator", "FuzzReportedPatch"},
	{"../emulator", "FuzzMethodBody"},
	{"../emulator", "FuzzDeviceTopic"},
	{"../emulator", "FuzzDevicePayload"},
	{"../emulator", "FuzzMarshalJSON"},
	{"../iothub", "FuzzParseConnectionString"},
	{"../iothub", "FuzzParseDeviceTopic"},
	{"../iothub", "FuzzParseError"},
	{"../iothub/service", "FuzzFastTwins"},
	{".", "FuzzQuoteDeviceID"},
}

var fuzzExecs = regexp.MustCompile(`execs: (\d+)`)

// TestFuzzTargets fuzzes each target for a short time (plain `go test`
// runs only their seed corpora). An input that makes a target fail is
// written by the fuzzer to the package's testdata/fuzz directory, where it
// stays as a regression case of every later run.
func TestFuzzTargets(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped with -short: fuzzes every target")
	}
	fuzzTime := os.Getenv(envFuzzTime)
	if fuzzTime == "" {
		fuzzTime = "20000x"
	}
	var total int64
	for _, ft := range fuzzTargets {
		t.Run(ft.name, func(t *testing.T) {
			start := time.Now()
			cmd := exec.Command("go", "test", "-run", "^$", "-fuzz", "^"+ft.name+"$", "-fuzztime", fuzzTime, "-parallel", "2", ft.pkg)
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("go test -fuzz %s %s: %v\n%s", ft.name, ft.pkg, err, lastLines(string(out), 30))
			}
			m := fuzzExecs.FindAllStringSubmatch(string(out), -1)
			if len(m) == 0 {
				t.Fatalf("go test -fuzz %s %s fuzzed nothing:\n%s", ft.name, ft.pkg, lastLines(string(out), 10))
			}
			n, _ := strconv.ParseInt(m[len(m)-1][1], 10, 64)
			total += n
			t.Logf("%d inputs in %s", n, time.Since(start).Round(time.Millisecond))
		})
	}
	t.Logf("%d inputs over %d targets", total, len(fuzzTargets))
}
