package emulator

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/hubflow/hubflow/iothub"
)

func TestQuery_PagingWithContinuation(t *testing.T) {
	h := startHub(t, Options{})
	for i := range 25 {
		h.mustCreate(t, fmt.Sprintf("dev-%02d", i))
	}
	c := h.rest(t, PolicyService)

	var ids []string
	cont := ""
	pages := 0
	for {
		headers := []string{"x-ms-max-item-count", "10"}
		if cont != "" {
			headers = append(headers, "x-ms-continuation", cont)
		}
		// The Go SDK capitalises the member name.
		r := c.do("POST", "/devices/query", `{"Query":"SELECT * FROM devices"}`, headers...)
		wantStatus(t, r, http.StatusOK)
		if it := r.header.Get("x-ms-item-type"); it != "Twin" {
			t.Fatalf("got x-ms-item-type %q, want Twin", it)
		}
		var rows []map[string]any
		if err := json.Unmarshal(r.body, &rows); err != nil {
			t.Fatalf("page is not an array: %s", r.body)
		}
		for _, row := range rows {
			ids = append(ids, row["deviceId"].(string))
		}
		pages++
		_, more := r.header[http.CanonicalHeaderKey("x-ms-continuation")]
		if !more {
			break
		}
		cont = r.header.Get("x-ms-continuation")
		if cont == "" || pages > 5 {
			t.Fatalf("got continuation %q on page %d", cont, pages)
		}
		// A device created mid-way does not shift later pages.
		if pages == 1 {
			h.mustCreate(t, "dev-00a")
		}
	}
	if pages != 3 || len(ids) != 25 || ids[0] != "dev-00" || ids[24] != "dev-24" {
		t.Fatalf("got %d pages with %d ids (%v), want 3 pages of 25 ids in order", pages, len(ids), ids)
	}
	if s := h.Stats(); s.Queries != 3 {
		t.Fatalf("got %d queries counted, want 3", s.Queries)
	}
	// The next first page sees the new device at once.
	r := c.do("POST", "/devices/query", `{"query":"SELECT * FROM devices"}`)
	var rows []any
	if err := json.Unmarshal(r.body, &rows); err != nil || len(rows) != 26 {
		t.Fatalf("got %d rows (%v), want 26", len(rows), err)
	}
	if _, more := r.header[http.CanonicalHeaderKey("x-ms-continuation")]; more {
		t.Fatal("a single page carries a continuation")
	}
}

func TestQuery_ResultsAndErrors(t *testing.T) {
	h := startHub(t, Options{})
	h.mustCreate(t, "a", "b", "c")
	c := h.rest(t, PolicyService)
	wantStatus(t, c.do("PATCH", "/twins/a", `{"tags":{"site":"north"}}`), http.StatusOK)
	wantStatus(t, c.do("PATCH", "/twins/b", `{"tags":{"site":"north"}}`), http.StatusOK)
	d := h.connect(t, "c")
	d.subscribe(iothub.TopicTwinResponseFilter)
	d.report(`{"firmwareStatus":"completed"}`)

	tests := []struct {
		query, itemType, want string
	}{
		{"SELECT deviceId FROM devices WHERE tags.site = 'north'", "Raw", `[{"deviceId":"a"},{"deviceId":"b"}]`},
		{"SELECT COUNT() AS total FROM devices", "Raw", `[{"total":3}]`},
		{"SELECT deviceId FROM devices WHERE properties.reported.firmwareStatus = 'completed'", "Raw", `[{"deviceId":"c"}]`},
		{"SELECT deviceId FROM devices WHERE connectionState = 'Connected'", "Raw", `[{"deviceId":"c"}]`},
		{"SELECT * FROM devices.jobs", "DeviceJob", `[]`},
		// Read by id rather than by scanning: same rows, in the same order.
		{"SELECT deviceId FROM devices WHERE deviceId IN ['c', 'nope', 'a', 'c']", "Raw", `[{"deviceId":"a"},{"deviceId":"c"}]`},
		{"SELECT deviceId FROM devices WHERE tags.site = 'north' AND deviceId IN ['c', 'b']", "Raw", `[{"deviceId":"b"}]`},
		{"SELECT deviceId FROM devices WHERE deviceId = 'b'", "Raw", `[{"deviceId":"b"}]`},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			r := c.do("POST", "/devices/query", map[string]string{"query": tt.query})
			wantStatus(t, r, http.StatusOK)
			if got := string(r.body); got != tt.want {
				t.Fatalf("got %s, want %s", got, tt.want)
			}
			if it := r.header.Get("x-ms-item-type"); it != tt.itemType {
				t.Fatalf("got item type %q, want %q", it, tt.itemType)
			}
		})
	}

	bad := []struct {
		name, body string
		headers    []string
		msg        string
	}{
		{"parse error", `{"query":"SELECT * FROM devices WHERE"}`, nil, "Query error"},
		{"no query member", `{"q":"x"}`, nil, "query"},
		{"too long", mustJSON(t, map[string]string{"query": "SELECT * FROM devices WHERE deviceId IN [" + strings.Repeat("'x',", 2100) + "'y']"}), nil, "limit"},
		{"bad page size", `{"query":"SELECT * FROM devices"}`, []string{"x-ms-max-item-count", "ten"}, "x-ms-max-item-count"},
		{"forged continuation", `{"query":"SELECT * FROM devices"}`, []string{"x-ms-continuation", "bm9wZQ"}, "continuation"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			r := c.do("POST", "/devices/query", tt.body, tt.headers...)
			wantError(t, r, http.StatusBadRequest, iothub.CodeArgumentInvalid)
			if e := iothub.ParseError(r.status, r.header, r.body); !strings.Contains(e.Message, tt.msg) {
				t.Fatalf("got message %q, want it to mention %q", e.Message, tt.msg)
			}
		})
	}
	// A continuation is bound to its query text.
	r := c.do("POST", "/devices/query", `{"query":"SELECT * FROM devices"}`, "x-ms-max-item-count", "1")
	cont := r.header.Get("x-ms-continuation")
	if cont == "" {
		t.Fatal("no continuation for a 3-row result with page size 1")
	}
	wantError(t, c.do("POST", "/devices/query", `{"query":"SELECT deviceId FROM devices"}`, "x-ms-continuation", cont), http.StatusBadRequest, iothub.CodeArgumentInvalid)
}
