package query

import (
	"errors"
	"slices"
	"testing"
)

// checkError asserts the invariants every rejection must hold.
func checkError(t *testing.T, text string, err error) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("got %T (%v), want *Error", err, err)
	}
	if e.Pos < 0 || e.Pos > len(text) || e.Line < 1 || e.Col < 1 || e.Msg == "" {
		t.Fatalf("malformed error %+v for %q", e, text)
	}
}

// FuzzParse checks that no query text makes Parse or Execute panic, that
// rejections are well-formed *Errors and that TOP bounds the result.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"SELECT * FROM devices",
		"SELECT * FROM devices WHERE tags.site = 'north' AND properties.reported.fw.version = '2.0'",
		"SELECT TOP 2 deviceId, lastActivityTime FROM devices WHERE status != 'disabled'",
		"SELECT COUNT() AS total FROM devices",
		"SELECT tags.site AS site, COUNT() AS n, AVG(properties.reported.temp) FROM devices GROUP BY tags.site",
		"SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'fw-1'",
		"SELECT * FROM devices WHERE deviceId IN ['a', \"b\", 0x1F, -2.5e3, null, [true]]",
		"SELECT * FROM devices WHERE tags.[[group]] = 'a' OR NOT IS_DEFINED(tags['my-key'])",
		"SELECT * FROM devices WHERE STARTSWITH(deviceId, 'p') AND (version % 2 = 1 OR version / 0 > 1)",
		"SELECT * FROM devices WHERE tags.x = '\\u00e9\\'\\\\'",
	} {
		f.Add(s)
	}
	docs := fixture(f)
	f.Fuzz(func(t *testing.T, text string) {
		q, err := Parse(text)
		if err != nil {
			checkError(t, text, err)
			return
		}
		rows, itemType, err := q.Execute(slices.Values(docs))
		if err != nil {
			t.Fatalf("Execute(%q): %v", text, err)
		}
		if q.top >= 0 && len(rows) > q.top {
			t.Fatalf("Execute(%q): got %d rows, want at most TOP %d", text, len(rows), q.top)
		}
		switch itemType {
		case ItemTwin, ItemDeviceJob, ItemRaw:
		default:
			t.Fatalf("Execute(%q): item type %q", text, itemType)
		}
		for _, d := range docs {
			q.Match(d)
		}
	})
}

// FuzzParseCondition checks that no condition text makes ParseCondition or
// Match panic.
func FuzzParseCondition(f *testing.F) {
	for _, s := range []string{
		"*",
		"deviceId IN ['a','b']",
		"tags.site = 'north'",
		"properties.reported.temp > 20 AND NOT ENDSWITH(deviceId, '-1', true)",
		"(((tags.floor + 1) * 2) % 3 <> 0)",
	} {
		f.Add(s)
	}
	docs := fixture(f)
	f.Fuzz(func(t *testing.T, where string) {
		c, err := ParseCondition(where)
		if err != nil {
			checkError(t, where, err)
			return
		}
		for _, d := range docs {
			c.Match(d)
		}
	})
}
