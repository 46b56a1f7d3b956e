package service_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hubflow/hubflow/iothub"
	"github.com/hubflow/hubflow/iothub/service"
)

// pagedHub answers /devices/query with pages[i] and continuation conts[i]
// ("" leaves the header out).
func pagedHub(t testing.TB, pages, conts []string) *fakeHub {
	t.Helper()
	return newFakeHub(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n >= len(pages) {
			answer(w, 400, `{"Message":"ErrorCode:ArgumentInvalid;no such page"}`)
			return
		}
		if conts[n] != "" {
			w.Header().Set("x-ms-continuation", conts[n])
		}
		w.Header().Set("x-ms-item-type", "Twin")
		answer(w, 200, pages[n])
	})
}

func TestClient_Query_Paging(t *testing.T) {
	h := pagedHub(t,
		[]string{`[{"deviceId":"d1"},{"deviceId":"d2"}]`, `[{"deviceId":"d3"},{"deviceId":"d4"}]`, `[{"deviceId":"d5"}]`},
		[]string{"c1+/=", "c2", ""})
	c := h.client(t, service.Config{})
	ctx := context.Background()
	const q = "SELECT * FROM devices WHERE properties.reported.x < 5 AND tags.site = 'north & south'"
	it := c.Query(ctx, q, 2)
	var got []string
	for it.More() {
		page, err := it.Next(ctx)
		if err != nil {
			t.Fatalf("page %d: %v", len(got), err)
		}
		got = append(got, strings.Join(rawStrings(page), ","))
	}
	want := []string{`{"deviceId":"d1"},{"deviceId":"d2"}`, `{"deviceId":"d3"},{"deviceId":"d4"}`, `{"deviceId":"d5"}`}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("pages: got %q, want %q", got, want)
	}
	if _, err := it.Next(ctx); err != io.EOF {
		t.Errorf("after the last page: got %v, want io.EOF", err)
	}
	if it.ItemType() != "Twin" {
		t.Errorf("item type: got %q, want Twin", it.ItemType())
	}
	reqs := h.requests()
	if len(reqs) != 3 {
		t.Fatalf("requests: got %d, want 3", len(reqs))
	}
	wantCont := []string{"", "c1+/=", "c2"}
	for i, r := range reqs {
		if r.Method != http.MethodPost || r.RequestURI != "/devices/query?api-version=2021-04-12" {
			t.Errorf("request %d: got %s %s, want POST /devices/query?api-version=2021-04-12", i, r.Method, r.RequestURI)
		}
		if want := `{"query":"` + q + `"}`; string(r.Body) != want {
			t.Errorf("request %d body:\n got %s\nwant %s", i, r.Body, want)
		}
		if got := r.Header.Get("x-ms-max-item-count"); got != "2" {
			t.Errorf("request %d x-ms-max-item-count: got %q, want 2", i, got)
		}
		got, has := r.Header["X-Ms-Continuation"]
		switch {
		case wantCont[i] == "" && has:
			t.Errorf("request %d x-ms-continuation: got %q, want none", i, got)
		case wantCont[i] != "" && r.Header.Get("x-ms-continuation") != wantCont[i]:
			t.Errorf("request %d x-ms-continuation: got %q, want %q", i, got, wantCont[i])
		}
		if _, ok := r.Header["If-Match"]; ok {
			t.Errorf("request %d: got an If-Match, want none", i)
		}
		checkCommonHeaders(t, r, h.host(), time.Now())
	}
}

func rawStrings[T ~[]byte](items []T) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = string(it)
	}
	return out
}

func TestClient_Query_Shapes(t *testing.T) {
	tests := []struct {
		name     string
		pages    []string
		conts    []string
		pageSize int
		want     []string
		wantReqs int
	}{
		{
			name:  "empty continuation header ends",
			pages: []string{`[1,2]`, `[3]`}, conts: []string{"c1", ""},
			want: []string{"1", "2", "3"}, wantReqs: 2,
		},
		{
			name:  "object form with token in body",
			pages: []string{`{"type":"twin","items":[{"a":1}],"continuationToken":"t1"}`, `{"items":[{"a":2}],"continuationToken":null}`},
			conts: []string{"", ""}, want: []string{`{"a":1}`, `{"a":2}`}, wantReqs: 2,
		},
		{
			name:  "empty result",
			pages: []string{`[]`}, conts: []string{""}, want: nil, wantReqs: 1,
		},
		{
			name:  "empty page in the middle",
			pages: []string{`[1]`, `[]`, `[2]`}, conts: []string{"a", "b", ""}, want: []string{"1", "2"}, wantReqs: 3,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := pagedHub(t, tt.pages, tt.conts)
			c := h.client(t, service.Config{})
			var got []string
			for item, err := range c.Query(context.Background(), "SELECT * FROM devices", tt.pageSize).All() {
				if err != nil {
					t.Fatalf("item %d: %v", len(got), err)
				}
				got = append(got, string(item))
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("items: got %q, want %q", got, tt.want)
			}
			if n := h.count.Load(); int(n) != tt.wantReqs {
				t.Errorf("requests: got %d, want %d", n, tt.wantReqs)
			}
			if _, has := h.last(t).Header["X-Ms-Max-Item-Count"]; has {
				t.Errorf("x-ms-max-item-count: got one, want none for page size 0")
			}
		})
	}
}

func TestClient_Query_BadAnswers(t *testing.T) {
	tests := []struct {
		name  string
		pages []string
		conts []string
	}{
		{"not json", []string{`SELECT`}, []string{""}},
		{"null", []string{`null`}, []string{""}},
		{"string", []string{`"x"`}, []string{""}},
		{"object without items", []string{`{"continuationToken":"x"}`}, []string{""}},
		{"items not an array", []string{`{"items":{}}`}, []string{""}},
		{"broken array", []string{`[1,`}, []string{""}},
		{"empty body", []string{``}, []string{""}},
		{"same token with nothing", []string{`[1]`, `[]`}, []string{"t", "t"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := pagedHub(t, tt.pages, tt.conts)
			c := h.client(t, service.Config{})
			var err error
			n := 0
			for _, err = range c.Query(context.Background(), "SELECT * FROM devices", 0).All() {
				if err != nil {
					break
				}
				n++
			}
			if !errors.Is(err, service.ErrUnexpectedResponse) {
				t.Fatalf("got %v after %d items, want ErrUnexpectedResponse", err, n)
			}
		})
	}
}

func TestClient_Query_BadInput(t *testing.T) {
	h := pagedHub(t, []string{`[]`}, []string{""})
	c := h.client(t, service.Config{})
	ctx := context.Background()
	tests := []struct {
		name     string
		query    string
		pageSize int
		want     string
	}{
		{"empty", "", 0, "query is empty"},
		{"blank", "  \n", 0, "query is empty"},
		{"too long", "SELECT * FROM devices WHERE deviceId IN [" + strings.Repeat("'d',", 2100) + "'d']", 0, "over the hub's 8192"},
		{"negative page", "SELECT * FROM devices", -1, "page size -1"},
		{"page too big", "SELECT * FROM devices", 1001, "page size 1001"},
		{"bad utf-8", "SELECT * FROM devices WHERE tags.x = '\xff'", 0, "UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			it := c.Query(ctx, tt.query, tt.pageSize)
			if it.More() {
				t.Errorf("More: got true, want false for a refused query")
			}
			for range 2 {
				_, err := it.Next(ctx)
				if !errors.Is(err, service.ErrInvalidInput) || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("got %v, want ErrInvalidInput containing %q", err, tt.want)
				}
			}
		})
	}
	// Exactly at the limit (counted in characters) is accepted.
	q := "SELECT * FROM devices WHERE tags.n = '" + strings.Repeat("é", iothub.MaxQueryLength-39) + "'"
	if _, err := c.Query(ctx, q, 0).Next(ctx); err != nil {
		t.Errorf("query of %d characters: got %v, want nil", iothub.MaxQueryLength, err)
	}
	if got := h.count.Load(); got != 1 {
		t.Errorf("requests sent: got %d, want 1 (only the valid query)", got)
	}
}

func TestClient_Query_RetryAfterError(t *testing.T) {
	h := newFakeHub(t, func(w http.ResponseWriter, r *http.Request, n int) {
		switch n {
		case 0:
			w.Header().Set("x-ms-continuation", "c1")
			answer(w, 200, `[1]`)
		case 1:
			w.Header().Set("Retry-After", "2")
			answer(w, 429, string(iothub.ErrorBody(iothub.CodeThrottlingException, "slow down", nil, "t", time.Now())))
		default:
			answer(w, 200, `[2]`)
		}
	})
	c := h.client(t, service.Config{})
	ctx := context.Background()
	it := c.Query(ctx, "SELECT * FROM devices", 0)
	if _, err := it.Next(ctx); err != nil {
		t.Fatalf("page 1: %v", err)
	}
	_, err := it.Next(ctx)
	if iothub.KindOf(err) != iothub.KindThrottled || iothub.RetryAfterOf(err) != 2*time.Second {
		t.Fatalf("page 2: got %v, want throttled with a 2s delay", err)
	}
	page, err := it.Next(ctx)
	if err != nil || len(page) != 1 || string(page[0]) != "2" {
		t.Fatalf("page 2 retried: got %q, %v; want [2]", rawStrings(page), err)
	}
	if got := h.last(t).Header.Get("x-ms-continuation"); got != "c1" {
		t.Errorf("retry continuation: got %q, want c1", got)
	}
	if it.More() {
		t.Errorf("More after the last page: got true, want false")
	}
}

func TestClient_QueryTwins(t *testing.T) {
	h := pagedHub(t,
		[]string{`[{"deviceId":"d1","etag":"AAAAAAAAAAE=","properties":{"reported":{"fw":"2.0","$version":4}}}]`, `[{"deviceId":"d2"}]`},
		[]string{"c1", ""})
	c := h.client(t, service.Config{})
	var ids []string
	for tw, err := range c.QueryTwins(context.Background(), "SELECT * FROM devices", 100) {
		if err != nil {
			t.Fatalf("twin %d: %v", len(ids), err)
		}
		ids = append(ids, tw.DeviceID)
		if tw.DeviceID == "d1" && (tw.Properties.Reported["fw"] != "2.0" || iothub.SectionVersion(tw.Properties.Reported) != 4) {
			t.Errorf("d1 reported: got %v, want fw 2.0 at $version 4", tw.Properties.Reported)
		}
	}
	if strings.Join(ids, ",") != "d1,d2" {
		t.Errorf("twins: got %v, want d1,d2", ids)
	}

	t.Run("projection is not a twin", func(t *testing.T) {
		h := pagedHub(t, []string{`[{"deviceId":"d1"},{"numberOfDevices":3}]`}, []string{""})
		c := h.client(t, service.Config{})
		var n int
		var err error
		for _, err = range c.QueryTwins(context.Background(), "SELECT COUNT() AS numberOfDevices FROM devices", 0) {
			if err != nil {
				break
			}
			n++
		}
		if n != 1 || !errors.Is(err, service.ErrUnexpectedResponse) || !strings.Contains(err.Error(), "item 1 is not a twin") {
			t.Errorf("got %d twins then %v, want 1 then ErrUnexpectedResponse for item 1", n, err)
		}
	})

	t.Run("stopping early sends no more requests", func(t *testing.T) {
		h := pagedHub(t, []string{`[{"deviceId":"d1"},{"deviceId":"d2"}]`, `[{"deviceId":"d3"}]`}, []string{"c1", ""})
		c := h.client(t, service.Config{})
		for range c.QueryTwins(context.Background(), "SELECT * FROM devices", 0) {
			break
		}
		if got := h.count.Load(); got != 1 {
			t.Errorf("requests: got %d, want 1", got)
		}
	})
}

func TestClient_Query_NextTwins(t *testing.T) {
	h := pagedHub(t,
		[]string{`[{"deviceId":"d1","properties":{"reported":{"fw":"2.0","$version":4}}}]`, `{"items":[{"deviceId":"d2"}],"continuationToken":null}`},
		[]string{"c1", ""})
	it := h.client(t, service.Config{}).Query(context.Background(), "SELECT * FROM devices", 0)
	var ids []string
	for it.More() {
		twins, err := it.NextTwins(context.Background())
		if err != nil {
			t.Fatalf("page after %v: %v", ids, err)
		}
		for _, tw := range twins {
			ids = append(ids, tw.DeviceID)
			if tw.DeviceID == "d1" && tw.Properties.Reported["fw"] != "2.0" {
				t.Errorf("d1 reported: got %v, want fw 2.0", tw.Properties.Reported)
			}
		}
	}
	if strings.Join(ids, ",") != "d1,d2" {
		t.Errorf("twins: got %v, want d1,d2", ids)
	}
	if _, err := it.NextTwins(context.Background()); err != io.EOF {
		t.Errorf("after the last page: got %v, want io.EOF", err)
	}

	for _, page := range []string{`[{"deviceId":"d1"},{"numberOfDevices":3}]`, `[{"deviceId":"d1"},null]`, `{"items":[{}]}`, `[1]`} {
		t.Run(page, func(t *testing.T) {
			h := pagedHub(t, []string{page}, []string{""})
			twins, err := h.client(t, service.Config{}).Query(context.Background(), "SELECT * FROM devices", 0).NextTwins(context.Background())
			if !errors.Is(err, service.ErrUnexpectedResponse) || twins != nil {
				t.Errorf("got %v, %v; want no twins and ErrUnexpectedResponse", twins, err)
			}
		})
	}
}
