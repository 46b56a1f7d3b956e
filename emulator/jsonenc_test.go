package emulator

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
	"time"
)

// checkSameJSON fails unless marshalJSON and json.Marshal agree on v, both
// in output and in whether it encodes at all.
func checkSameJSON(t *testing.T, v any) {
	t.Helper()
	want, wantErr := json.Marshal(v)
	got, err := marshalJSON(v)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("marshalJSON(%#v) error %v, json.Marshal error %v", v, err, wantErr)
	}
	if err == nil && !bytes.Equal(got, want) {
		t.Fatalf("marshalJSON(%#v)\n got %s\nwant %s", v, got, want)
	}
}

func TestMarshalJSON_matchesEncodingJSON(t *testing.T) {
	values := []any{
		nil, true, false, "", "plain", `quote " and \ backslash`, "<tag> & amp", "tab\tnew\nline\x00\x1f",
		"é ünïcödé 日本", "line\u2028sep\u2029", "bad \xff utf-8 \xc3", "\u007f del",
		0.0, math.Copysign(0, -1), 1.0, -1.5, 1e20, 1e21, 123456789012345680000.0, 1e-6, 1e-7, 1.5e-9, -2.5e-10,
		1e100, -1e-100, math.MaxFloat64, math.SmallestNonzeroFloat64, 4503599627370496.0, 0.1, 1.0 / 3,
		math.Inf(1), math.NaN(),
		7, int64(-9007199254740993),
		map[string]any{}, []any{}, map[string]any(nil), []any(nil),
		map[string]any{"b": 1.0, "a": "x", "B": nil, "": []any{1.0, "two", false, nil}, "é": true, "<": ">"},
		map[string]any{"deep": map[string]any{"er": map[string]any{"est": []any{map[string]any{"k": 1e-7}}}}},
		map[string]any{"bad": math.Inf(-1)},
		[]any{map[string]any{"x": math.NaN()}},
		// Types the fast path leaves to encoding/json.
		map[string]int{"b": 2, "a": 1},
		struct {
			A string `json:"a"`
			T time.Time
		}{"x", time.Unix(1700000000, 0).UTC()},
		[]map[string]any{{"k": "v"}},
		json.RawMessage(`{"raw":true}`),
	}
	for _, v := range values {
		checkSameJSON(t, v)
	}
}

// TestMarshalJSON_twinDocument checks a whole twin document as the query
// endpoint serves it.
func TestMarshalJSON_twinDocument(t *testing.T) {
	now := time.Unix(1700000000, 0)
	d := newDevice("dev-1", now)
	u, err := parseTwinUpdate([]byte(`{"tags":{"site":"a<b","floor":3},"properties":{"desired":{"policy":{"start":"02:00","days":["sat","sun"]}}}}`), false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.twin.patchService(u.tags, u.desired, false, now); err != nil {
		t.Fatal(err)
	}
	checkSameJSON(t, d.twinDoc())
	checkSameJSON(t, []any{d.twinDoc(), d.twinDoc()})
}

func FuzzMarshalJSON(f *testing.F) {
	for _, s := range []string{
		`{"a":1,"b":[true,null,"x"],"c":{"d":1e-7,"e":1e21}}`,
		`"<&>\u2028\ud800"`, `[0.000001,-0,123456789012345678901234567890]`, `{"\u00e9":"\xff"}`,
		`{"properties":{"reported":{"$metadata":{"$lastUpdated":"2026-01-01T00:00:00Z"},"$version":4}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var v any
		if json.Unmarshal(b, &v) != nil {
			// Not JSON: still a string worth encoding.
			v = string(b)
		}
		checkSameJSON(t, v)
	})
}

func BenchmarkMarshalJSON_queryPage(b *testing.B) {
	now := time.Unix(1700000000, 0)
	page := make([]any, 100)
	for i := range page {
		d := newDevice("bench-"+string(rune('a'+i%26)), now)
		p, err := parseTwinUpdate([]byte(`{"tags":{"site":"bench"},"properties":{"desired":{"fw":"2.1.0"}}}`), false)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := d.twin.patchService(p.tags, p.desired, false, now); err != nil {
			b.Fatal(err)
		}
		page[i] = d.twinDoc()
	}
	b.Run("marshalJSON", func(b *testing.B) {
		for b.Loop() {
			if _, err := marshalJSON(page); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		for b.Loop() {
			if _, err := json.Marshal(page); err != nil {
				b.Fatal(err)
			}
		}
	})
}
