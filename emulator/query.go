package emulator

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"iter"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hubflow/hubflow/emulator/query"
	"github.com/hubflow/hubflow/iothub"
)

// Query paging.
const (
	defaultPageSize = 100
	maxPageSize     = 1000
	// A result set is kept this long for its continuation pages; an expired
	// token still works, by running the query again.
	queryCacheTTL = 5 * time.Minute
	queryCacheMax = 64
)

// queryCache keeps the rows of recent multi-page queries so that later
// pages are consistent with the first.
type queryCache struct {
	mu      sync.Mutex
	entries map[string]*cachedRows
}

type cachedRows struct {
	rows     []any
	itemType string
	expires  time.Time
}

func (c *queryCache) put(rows []any, itemType string, now time.Time) string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[string]*cachedRows{}
	}
	if len(c.entries) >= queryCacheMax {
		var oldest string
		for k, e := range c.entries {
			if oldest == "" || e.expires.Before(c.entries[oldest].expires) {
				oldest = k
			}
		}
		delete(c.entries, oldest)
	}
	c.entries[id] = &cachedRows{rows: rows, itemType: itemType, expires: now.Add(queryCacheTTL)}
	return id
}

func (c *queryCache) get(id string, now time.Time) (*cachedRows, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[id]
	if ok && now.After(e.expires) {
		delete(c.entries, id)
		return nil, false
	}
	return e, ok
}

func (c *queryCache) expire(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.entries {
		if now.After(e.expires) {
			delete(c.entries, k)
		}
	}
}

// continuation is the opaque x-ms-continuation token.
type continuation struct {
	Cache  string `json:"c"`
	Offset int    `json:"o"`
	Query  string `json:"q"` // hash of the query text the token belongs to
}

func (t continuation) encode() string {
	b, _ := json.Marshal(t)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeContinuation(s string) (continuation, error) {
	var t continuation
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || json.Unmarshal(b, &t) != nil || t.Offset < 0 {
		return t, fmt.Errorf("the x-ms-continuation token is not one this hub issued")
	}
	return t, nil
}

func queryHash(text string) string {
	sum := sha256.Sum256([]byte(text))
	return hex.EncodeToString(sum[:8])
}

// twinDocs yields every twin in device-id order, as GET /twins renders it.
// Documents are shared and must not be modified.
func (h *Hub) twinDocs() iter.Seq[map[string]any] {
	return func(yield func(map[string]any) bool) {
		for _, d := range h.reg.ordered() {
			if !yield(d.cachedDoc()) {
				return
			}
		}
	}
}

// runQuery parses and executes text over the current twins.
func (h *Hub) runQuery(text string) ([]any, string, error) {
	q, err := query.Parse(text)
	if err != nil {
		return nil, "", err
	}
	if q.Source() != query.SourceDevices {
		// The emulator has neither modules nor jobs: those collections are
		// empty, which still gives aggregates their zero rows.
		return q.Execute(func(func(map[string]any) bool) {})
	}
	if ids, ok := q.DeviceIDs(); ok {
		// Batched reads of known devices (deviceId IN […]) touch only
		// those twins, not the whole registry.
		return q.Execute(h.twinDocsOf(ids))
	}
	return q.Execute(h.twinDocs())
}

// twinDocsOf yields the twins of the devices among ids, in the order of
// twinDocs.
func (h *Hub) twinDocsOf(ids []string) iter.Seq[map[string]any] {
	return func(yield func(map[string]any) bool) {
		devs := make([]*device, 0, len(ids))
		seen := make(map[string]bool, len(ids))
		for _, id := range ids {
			if seen[id] {
				continue
			}
			seen[id] = true
			if d := h.reg.get(id); d != nil {
				devs = append(devs, d)
			}
		}
		slices.SortFunc(devs, func(a, b *device) int { return strings.Compare(a.id, b.id) })
		for _, d := range devs {
			if !yield(d.cachedDoc()) {
				return
			}
		}
	}
}

// queryDevices is POST /devices/query: a JSON array page, x-ms-item-type,
// and x-ms-continuation only when more pages follow.
func (h *Hub) queryDevices(w http.ResponseWriter, r *http.Request, _ string) {
	if !h.meter(w, opQuery, 1) {
		return
	}
	h.stats.queries.Add(1)
	raw, ok := h.readBody(w, r, maxRequestBody)
	if !ok {
		return
	}
	var body map[string]json.RawMessage
	if err := json.Unmarshal(raw, &body); err != nil {
		h.badJSON(w, "query request", err)
		return
	}
	var text string
	if v, ok := member(body, "query"); !ok || json.Unmarshal(v, &text) != nil || text == "" {
		h.writeError(w, http.StatusBadRequest, iothub.CodeArgumentInvalid, `The body must be {"query":"SELECT …"}.`, nil)
		return
	}
	if len(text) > iothub.MaxQueryLength {
		h.writeError(w, http.StatusBadRequest, iothub.CodeArgumentInvalid,
			fmt.Sprintf("The query is %d characters long; the limit is %d.", len(text), iothub.MaxQueryLength), nil)
		return
	}
	pageSize := defaultPageSize
	if v := r.Header.Get("x-ms-max-item-count"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			h.writeError(w, http.StatusBadRequest, iothub.CodeArgumentInvalid, "x-ms-max-item-count must be a positive integer.", nil)
			return
		}
		pageSize = min(n, maxPageSize)
	}
	now := h.now()
	hash := queryHash(text)
	var (
		rows     []any
		itemType string
		offset   int
		cacheID  string
	)
	if v := r.Header.Get("x-ms-continuation"); v != "" {
		tok, err := decodeContinuation(v)
		if err == nil && tok.Query != hash {
			err = fmt.Errorf("the x-ms-continuation token belongs to a different query")
		}
		if err != nil {
			h.writeError(w, http.StatusBadRequest, iothub.CodeArgumentInvalid, err.Error()+".", nil)
			return
		}
		offset = tok.Offset
		if e, ok := h.queries.get(tok.Cache, now); ok {
			rows, itemType, cacheID = e.rows, e.itemType, tok.Cache
		}
	}
	if cacheID == "" {
		var err error
		rows, itemType, err = h.runQuery(text)
		if err != nil {
			h.writeError(w, http.StatusBadRequest, iothub.CodeArgumentInvalid, "Query error: "+err.Error(), nil)
			return
		}
	}
	end := min(offset+pageSize, len(rows))
	page := []any{}
	if offset < end {
		page = rows[offset:end]
	}
	if end < len(rows) {
		if cacheID == "" {
			cacheID = h.queries.put(rows, itemType, now)
		}
		w.Header().Set("x-ms-continuation", continuation{Cache: cacheID, Offset: end, Query: hash}.encode())
	}
	if itemType != "" {
		w.Header().Set("x-ms-item-type", itemType)
	}
	h.writeJSON(w, http.StatusOK, page)
}
