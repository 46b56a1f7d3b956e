package query

import (
	"encoding/json"
	"slices"
	"testing"
)

// fixtureJSON is a small fleet chosen to exercise every comparison: mixed
// types for the same property (temp, fw.version), missing sections, null
// values, a tag named like a keyword and case variants of a value.
const fixtureJSON = `[
 {"deviceId":"pump-1","etag":"AAAAAAAAAAE=","version":3,"status":"enabled","connectionState":"Connected",
  "lastActivityTime":"2025-05-01T10:00:00Z","capabilities":{"iotEdge":false},
  "tags":{"site":"north","floor":1,"ring":"canary","group":"a","my-key":"x","list":["a","b"],"loc":{"lat":1.5}},
  "properties":{"desired":{"fw":{"version":"2.1"},"$version":2},
   "reported":{"fw":{"version":"2.0"},"temp":20.5,"online":true,"nothing":null,"$version":4}}},
 {"deviceId":"pump-2","version":5,"status":"enabled","connectionState":"Disconnected",
  "lastActivityTime":"2025-05-02T10:00:00Z",
  "tags":{"site":"north","floor":2,"loc":{"lat":1.5}},
  "properties":{"desired":{},"reported":{"fw":{"version":"2.1"},"temp":30,"online":false}}},
 {"deviceId":"pump-3","version":1,"status":"disabled","connectionState":"Disconnected",
  "tags":{"site":"south","floor":1},
  "properties":{"desired":{},"reported":{"fw":{"version":"2.1"},"temp":"hot"}}},
 {"deviceId":"valve-1","version":2,"status":"enabled","connectionState":"Connected",
  "tags":{"site":"North","ring":"ga"},
  "properties":{"desired":{},"reported":{"temp":10}}},
 {"deviceId":"valve-2","version":1,"status":"enabled","connectionState":"Connected",
  "properties":{"desired":{},"reported":{}}},
 {"deviceId":"sensor-9","version":7,"status":"enabled","connectionState":"Disconnected",
  "capabilities":{"iotEdge":true},
  "tags":{"site":"south","floor":3,"ring":null},
  "properties":{"desired":{},"reported":{"fw":{"version":3},"temp":-4}}}
]`

// jobsJSON holds device-job items as the emulator keeps them.
const jobsJSON = `[
 {"deviceId":"pump-1","jobId":"fw-1","jobType":"scheduleDeviceMethod","status":"completed",
  "outcome":{"deviceMethodResponse":{"status":200,"payload":{"ok":true}}}},
 {"deviceId":"pump-2","jobId":"fw-1","jobType":"scheduleDeviceMethod","status":"failed",
  "error":{"code":"DeviceNotOnline","description":"Timed out"}},
 {"deviceId":"pump-1","jobId":"cfg-1","jobType":"scheduleUpdateTwin","status":"completed",
  "outcome":{"deviceMethodResponse":null}}
]`

func decodeDocs(tb testing.TB, text string) []map[string]any {
	tb.Helper()
	var docs []map[string]any
	if err := json.Unmarshal([]byte(text), &docs); err != nil {
		tb.Fatalf("decode fixture: %v", err)
	}
	return docs
}

func fixture(tb testing.TB) []map[string]any {
	tb.Helper()
	return decodeDocs(tb, fixtureJSON)
}

// mustParse parses text or fails the test.
func mustParse(tb testing.TB, text string) *Query {
	tb.Helper()
	q, err := Parse(text)
	if err != nil {
		tb.Fatalf("Parse(%q): %v", text, err)
	}
	return q
}

// execute runs text over docs and returns the rows and item type.
func execute(tb testing.TB, text string, docs []map[string]any) ([]any, string) {
	tb.Helper()
	rows, itemType, err := mustParse(tb, text).Execute(slices.Values(docs))
	if err != nil {
		tb.Fatalf("Execute(%q): %v", text, err)
	}
	if rows == nil {
		tb.Fatalf("Execute(%q) returned nil rows, want a non-nil slice", text)
	}
	return rows, itemType
}

// ids returns the deviceId of each row.
func ids(tb testing.TB, rows []any) []string {
	tb.Helper()
	out := []string{}
	for _, r := range rows {
		m, ok := r.(map[string]any)
		if !ok {
			tb.Fatalf("row %v is %T, want map[string]any", r, r)
		}
		id, _ := m["deviceId"].(string)
		out = append(out, id)
	}
	return out
}

// asJSON renders v canonically (sorted keys) for comparison.
func asJSON(tb testing.TB, v any) string {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatalf("marshal %v: %v", v, err)
	}
	return string(b)
}
