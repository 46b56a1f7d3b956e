package service

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/hubflow/hubflow/iothub"
)

// MaxPageSize is the largest page a query may ask for.
const MaxPageSize = 1000

// QueryIterator walks the pages of one query. Each Next sends one request;
// the hub's continuation token links them. A QueryIterator is not safe for
// concurrent use.
type QueryIterator struct {
	c        *Client
	ctx      context.Context // for Pages and All, which take none
	query    []byte          // request body
	op       operation
	pageSize string
	cont     string
	itemType string
	done     bool
	err      error // input error, returned by every Next
}

// Query prepares query (the hub's SQL-like language, e.g.
// "SELECT * FROM devices WHERE tags.site = 'north'") for paging. pageSize
// asks for that many items per page (1–1000; 0 leaves it to the hub), which
// the hub treats as advice. Nothing is sent until Next, Pages or All; a
// query that is empty, longer than iothub.MaxQueryLength characters, or has
// a bad page size makes the first Next fail with ErrInvalidInput.
//
// ctx bounds the range-over-func forms Pages and All; Next uses its own.
func (c *Client) Query(ctx context.Context, query string, pageSize int) *QueryIterator {
	it := &QueryIterator{c: c, ctx: ctx, op: operation{verb: "query devices", noID: true}}
	switch n := utf8.RuneCountInString(query); {
	case strings.TrimSpace(query) == "":
		it.err = fmt.Errorf("%s: %w: query is empty", it.op, ErrInvalidInput)
	case n > iothub.MaxQueryLength:
		it.err = fmt.Errorf("%s: %w: query is %d characters long, over the hub's %d", it.op, ErrInvalidInput, n, iothub.MaxQueryLength)
	case !utf8.ValidString(query):
		it.err = fmt.Errorf("%s: %w: query is not valid UTF-8", it.op, ErrInvalidInput)
	case pageSize < 0 || pageSize > MaxPageSize:
		it.err = fmt.Errorf("%s: %w: page size %d is outside 0–%d", it.op, ErrInvalidInput, pageSize, MaxPageSize)
	}
	if it.err != nil {
		return it
	}
	body, err := marshal(struct {
		Query string `json:"query"`
	}{query})
	if err != nil {
		it.err = fmt.Errorf("%s: %w: %v", it.op, ErrInvalidInput, err)
		return it
	}
	it.query = body
	if pageSize > 0 {
		it.pageSize = strconv.Itoa(pageSize)
	}
	return it
}

// More reports whether Next may return another page: false once the hub
// sent a page without a continuation token, or when the query was refused.
func (it *QueryIterator) More() bool { return !it.done && it.err == nil }

// ItemType is the x-ms-item-type the hub gave the last page ("Twin",
// "Raw", …; compare case-insensitively), or "" before the first page.
func (it *QueryIterator) ItemType() string { return it.itemType }

// Next fetches the next page of raw JSON items. It returns io.EOF once the
// last page has been returned. After any other error Next may be called
// again and retries the same page.
func (it *QueryIterator) Next(ctx context.Context) ([]json.RawMessage, error) {
	var items []json.RawMessage
	err := it.next(ctx, func(body []byte) (n int, cont string, err error) {
		items, cont, err = decodePage(body)
		return len(items), cont, err
	})
	if err != nil {
		return nil, err
	}
	return items, nil
}

// NextTwins is Next for a query whose items are twins (SELECT * FROM
// devices, or a projection that keeps deviceId): it decodes the page
// straight into twins, without holding each item as raw JSON first. An
// item without a deviceId fails the page with ErrUnexpectedResponse.
func (it *QueryIterator) NextTwins(ctx context.Context) ([]*iothub.Twin, error) {
	var twins []*iothub.Twin
	err := it.next(ctx, func(body []byte) (n int, cont string, err error) {
		twins, cont, err = decodeTwinPage(body)
		return len(twins), cont, err
	})
	if err != nil {
		return nil, err
	}
	return twins, nil
}

// next fetches the next page and hands its body to decode, which returns
// the page's item count and the continuation token the body carries.
func (it *QueryIterator) next(ctx context.Context, decode func(body []byte) (int, string, error)) error {
	if it.err != nil {
		return it.err
	}
	if it.done {
		return io.EOF
	}
	sent := it.cont
	res, err := it.c.do(ctx, &request{
		op: it.op, method: http.MethodPost, path: "/devices/query", body: it.query,
		maxItems: it.pageSize, continuation: sent, maxBody: maxQueryBody,
	})
	if err != nil {
		return err
	}
	n, bodyCont, err := decode(res.body)
	if err != nil {
		return fmt.Errorf("%s: %w: %v", it.op, ErrUnexpectedResponse, err)
	}
	cont := res.header.Get("x-ms-continuation")
	if cont == "" {
		cont = bodyCont
	}
	if cont != "" && cont == sent && n == 0 {
		// The same token with nothing gained would page for ever.
		return fmt.Errorf("%s: %w: hub repeated the continuation token with an empty page", it.op, ErrUnexpectedResponse)
	}
	it.cont = cont
	it.done = cont == ""
	if t := res.header.Get("x-ms-item-type"); t != "" {
		it.itemType = t
	}
	return nil
}

// decodeTwinPage is decodePage for pages of twins.
func decodeTwinPage(body []byte) ([]*iothub.Twin, string, error) {
	b := bytes.TrimSpace(body)
	var twins []*iothub.Twin
	var cont string
	switch {
	case len(b) == 0:
		return nil, "", fmt.Errorf("query answer is empty")
	case b[0] == '[':
		var ok bool
		if twins, ok = fastTwins(b); ok {
			break
		}
		if err := json.Unmarshal(b, &twins); err != nil {
			return nil, "", fmt.Errorf("query answer is not a JSON array of twins: %v", err)
		}
	case b[0] == '{':
		var page struct {
			Items             *[]*iothub.Twin `json:"items"`
			ContinuationToken *string         `json:"continuationToken"`
		}
		if err := json.Unmarshal(b, &page); err != nil || page.Items == nil {
			return nil, "", fmt.Errorf("query answer is an object without an items array of twins")
		}
		twins = *page.Items
		if page.ContinuationToken != nil {
			cont = *page.ContinuationToken
		}
	default:
		return nil, "", fmt.Errorf("query answer is neither a JSON array nor an object")
	}
	for i, t := range twins {
		if t == nil || t.DeviceID == "" {
			return nil, "", fmt.Errorf("item %d is not a twin", i)
		}
	}
	return twins, cont, nil
}

// decodePage reads a query answer: a JSON array of items (what the hub
// sends) or, defensively, an object {"items":[…],"continuationToken":…}.
func decodePage(body []byte) ([]json.RawMessage, string, error) {
	b := bytes.TrimSpace(body)
	if len(b) == 0 {
		return nil, "", fmt.Errorf("query answer is empty")
	}
	switch b[0] {
	case '[':
		var items []json.RawMessage
		if err := json.Unmarshal(b, &items); err != nil {
			return nil, "", fmt.Errorf("query answer is not a JSON array: %v", err)
		}
		return items, "", nil
	case '{':
		var page struct {
			Items             *[]json.RawMessage `json:"items"`
			ContinuationToken *string            `json:"continuationToken"`
		}
		if err := json.Unmarshal(b, &page); err != nil || page.Items == nil {
			return nil, "", fmt.Errorf("query answer is an object without an items array")
		}
		var cont string
		if page.ContinuationToken != nil {
			cont = *page.ContinuationToken
		}
		return *page.Items, cont, nil
	}
	return nil, "", fmt.Errorf("query answer is neither a JSON array nor an object")
}

// Pages yields each page in turn, using the context given to Query, and
// stops after the last page or the first error (yielded with a nil page).
func (it *QueryIterator) Pages() iter.Seq2[[]json.RawMessage, error] {
	return func(yield func([]json.RawMessage, error) bool) {
		for {
			page, err := it.Next(it.ctx)
			if err == io.EOF {
				return
			}
			if !yield(page, err) || err != nil {
				return
			}
		}
	}
}

// All yields every item of every page, using the context given to Query,
// and stops after the last item or the first error (yielded with a nil
// item).
func (it *QueryIterator) All() iter.Seq2[json.RawMessage, error] {
	return func(yield func(json.RawMessage, error) bool) {
		for page, err := range it.Pages() {
			if err != nil {
				yield(nil, err)
				return
			}
			for _, item := range page {
				if !yield(item, nil) {
					return
				}
			}
		}
	}
}

// QueryTwins runs a twin query ("SELECT * FROM devices …") and yields each
// twin. An item that is not a whole twin (a projection or an aggregate)
// ends the sequence with ErrUnexpectedResponse; use Query for those. The
// sequence stops at the first error, which it yields with a nil twin.
func (c *Client) QueryTwins(ctx context.Context, query string, pageSize int) iter.Seq2[*iothub.Twin, error] {
	return func(yield func(*iothub.Twin, error) bool) {
		it := c.Query(ctx, query, pageSize)
		n := 0
		for item, err := range it.All() {
			if err != nil {
				yield(nil, err)
				return
			}
			var t iothub.Twin
			if err := json.Unmarshal(item, &t); err != nil || t.DeviceID == "" {
				yield(nil, fmt.Errorf("query twins: %w: item %d is not a twin", ErrUnexpectedResponse, n))
				return
			}
			n++
			if !yield(&t, nil) {
				return
			}
		}
	}
}
