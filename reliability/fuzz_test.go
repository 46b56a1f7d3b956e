package reliability_test

import (
	"testing"
	"unicode/utf8"

	"github.com/hubflow/hubflow/emulator/query"
	"github.com/hubflow/hubflow/jobs"
)

// FuzzQuoteDeviceID checks the quoting of device ids in the queries hubflow
// builds (deviceId IN [...], for listed targets and batched twin reads):
// whatever the id, the hub's query language reads the quoted literal back
// as exactly that id, so the condition selects the device with that id and
// no other, and a literal after it is still read as a literal.
func FuzzQuoteDeviceID(f *testing.F) {
	for _, s := range []string{
		"press-01", "quote'd", "'", "''", `\`, `\'`, `a\'b`, `x' OR 1=1 --`, `x') OR ('1'='1`,
		"x'] OR true OR deviceId IN ['", `"`, `\"`, "%27", "\u202e1234", "nul\x00", "line\nbreak",
		"tab\t", "\x7f", "é", "😀", "$where", "[[group]]", "a,b", "']", "\\u0027",
	} {
		f.Add(s, s+"x")
	}
	f.Fuzz(func(t *testing.T, id, other string) {
		// Device ids are text; the quoting works on runes.
		if !utf8.ValidString(id) || !utf8.ValidString(other) || len(id) > 1000 || len(other) > 1000 {
			t.Skip()
		}
		q := jobs.QuoteString(id)
		cond, err := query.ParseCondition("deviceId IN [" + q + ", 'sentinel-device']")
		if err != nil {
			t.Fatalf("id %q quoted as %s: the condition does not parse: %v", id, q, err)
		}
		if !cond.Match(map[string]any{"deviceId": id}) {
			t.Fatalf("id %q quoted as %s: the condition does not select the device", id, q)
		}
		if !cond.Match(map[string]any{"deviceId": "sentinel-device"}) {
			t.Fatalf("id %q quoted as %s: the literal after it is no longer read as one", id, q)
		}
		if other != id && other != "sentinel-device" && cond.Match(map[string]any{"deviceId": other}) {
			t.Fatalf("id %q quoted as %s: the condition also selects %q", id, q, other)
		}
	})
}
