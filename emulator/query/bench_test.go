package query

import (
	"fmt"
	"slices"
	"testing"
)

// benchTwins builds n twins shaped like the REST API's, a third of them on
// site "north" and half of those reporting firmware 2.0.
func benchTwins(tb testing.TB, n int) []map[string]any {
	tb.Helper()
	sites := []string{"north", "south", "east"}
	docs := make([]map[string]any, n)
	for i := range docs {
		fw := "2.1"
		if i%2 == 0 {
			fw = "2.0"
		}
		docs[i] = map[string]any{
			"deviceId":         fmt.Sprintf("dev-%06d", i),
			"etag":             "AAAAAAAAAAE=",
			"deviceEtag":       "MQ==",
			"version":          float64(4),
			"status":           "enabled",
			"connectionState":  "Connected",
			"lastActivityTime": "2025-05-01T10:00:00.1234567Z",
			"tags":             map[string]any{"site": sites[i%len(sites)], "ring": "ga", "floor": float64(i % 10)},
			"properties": map[string]any{
				"desired":  map[string]any{"fw": map[string]any{"version": "2.1"}, "$version": float64(2)},
				"reported": map[string]any{"fw": map[string]any{"version": fw}, "temp": float64(i % 40), "$version": float64(3)},
			},
		}
	}
	return docs
}

func benchQuery(b *testing.B, text string, wantMin int) {
	docs := benchTwins(b, 100_000)
	q, err := Parse(text)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		rows, _, err := q.Execute(slices.Values(docs))
		if err != nil {
			b.Fatal(err)
		}
		if len(rows) < wantMin {
			b.Fatalf("got %d rows, want at least %d", len(rows), wantMin)
		}
	}
}

// BenchmarkExecute_TagAndReported is the reference workload: a WHERE on a
// tag and a reported property over 100,000 twins.
func BenchmarkExecute_TagAndReported(b *testing.B) {
	benchQuery(b, "SELECT * FROM devices WHERE tags.site = 'north' AND properties.reported.fw.version = '2.0'", 1)
}

func BenchmarkExecute_Projection(b *testing.B) {
	benchQuery(b, "SELECT deviceId, properties.reported.temp AS temp FROM devices WHERE tags.floor >= 5", 1)
}

func BenchmarkExecute_GroupBy(b *testing.B) {
	benchQuery(b, "SELECT tags.site AS site, COUNT() AS n, AVG(properties.reported.temp) AS t FROM devices GROUP BY tags.site", 3)
}

func BenchmarkExecute_InList(b *testing.B) {
	ids := make([]string, 300)
	for i := range ids {
		ids[i] = fmt.Sprintf("'dev-%06d'", i*7)
	}
	benchQuery(b, "SELECT * FROM devices WHERE deviceId IN ["+joinComma(ids)+"]", 300)
}

func joinComma(xs []string) string {
	s := ""
	for i, x := range xs {
		if i > 0 {
			s += ","
		}
		s += x
	}
	return s
}

func BenchmarkParse(b *testing.B) {
	const text = "SELECT TOP 100 deviceId, properties.reported.fw.version AS fw FROM devices " +
		"WHERE tags.site IN ['north','south'] AND (properties.reported.temp > 20.5 OR NOT IS_DEFINED(tags.ring)) " +
		"AND STARTSWITH(deviceId, 'dev-')"
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(text); err != nil {
			b.Fatal(err)
		}
	}
}
