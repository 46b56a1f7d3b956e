package query

import (
	"iter"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Collections a query can select from, as returned by Query.Source.
const (
	SourceDevices = "devices"
	SourceModules = "devices.modules"
	SourceJobs    = "devices.jobs"
)

// Item types returned by Query.Execute, in the spelling the emulator sends
// in the x-ms-item-type header.
const (
	ItemTwin      = "Twin"
	ItemDeviceJob = "DeviceJob"
	ItemRaw       = "Raw"
)

// Limits enforced by Parse and ParseCondition.
const (
	// MaxLength is the longest query text, in characters, the hub accepts.
	MaxLength = 8192
	// MaxDepth bounds the nesting of parentheses, NOT, unary signs, array
	// constants and function calls. AND/OR chains and chains of binary
	// operators do not count, so long generated conditions stay legal.
	MaxDepth = 256
)

// Query is a parsed and compiled query. It is immutable and safe for
// concurrent use.
type Query struct {
	text      string
	source    string
	top       int // -1 without TOP
	star      bool
	where     predFn
	cols      []column
	groupKeys []*resolvedPath
	hasAgg    bool
	// ids, when idsOK, are the only device ids the WHERE clause can match.
	ids   []string
	idsOK bool
}

type aggKind uint8

const (
	aggNone aggKind = iota
	aggCount
	aggSum
	aggAvg
	aggMin
	aggMax
)

// column is one key of a projected row.
type column struct {
	name string
	// get returns a plain column's value; ok is false when it is undefined
	// and the key is left out of the row.
	get func(doc map[string]any) (any, bool)
	agg aggKind
	arg evalFn // aggregate argument; nil for COUNT()
	// groupIdx is the index of the GROUP BY key a plain column shows, or -1.
	groupIdx int
	groupKey string
}

// Parse parses and compiles an IoT Hub query:
//
//	SELECT [TOP n] <* | expr [AS alias], …> FROM <devices | devices.modules | devices.jobs>
//	    [WHERE condition] [GROUP BY path, …]
//
// Every error it returns is an *Error.
func Parse(text string) (*Query, error) {
	if err := checkLength(text); err != nil {
		return nil, err
	}
	p, err := newParser(text)
	if err != nil {
		return nil, err
	}
	ast, err := p.parseQuery()
	if err != nil {
		return nil, err
	}
	return compileQuery(text, ast)
}

func checkLength(text string) error {
	if n := utf8.RuneCountInString(text); n > MaxLength {
		pos := 0
		for i := range text {
			if pos == MaxLength {
				pos = i
				break
			}
			pos++
		}
		_, size := utf8.DecodeRuneInString(text[pos:])
		return newError(text, pos, pos+size, false, "query is %d characters long; the limit is %d", n, MaxLength)
	}
	return nil
}

func compileQuery(text string, ast *queryAST) (*Query, error) {
	c := &compiler{src: text, source: ast.source}
	q := &Query{text: text, source: ast.source, top: ast.top, star: ast.star}
	if ast.source == SourceJobs {
		if !ast.star {
			return nil, c.errAt(ast.items[0], "devices.jobs queries support only SELECT *")
		}
		if ast.groupBy != nil {
			return nil, c.errAt(ast.groupBy[0], "devices.jobs queries do not support GROUP BY")
		}
	}
	if ast.where != nil {
		c.inWhere = true
		p, err := c.pred(ast.where)
		if err != nil {
			return nil, err
		}
		q.where = p
		c.inWhere = false
		q.ids, q.idsOK = restrictedIDs(ast.where)
	}
	if ast.star && ast.groupBy != nil {
		return nil, c.errAt(ast.groupBy[0], "SELECT * cannot be used with GROUP BY; select the group keys and aggregates")
	}
	for _, g := range ast.groupBy {
		r, err := c.path(g)
		if err != nil {
			return nil, err
		}
		q.groupKeys = append(q.groupKeys, r)
	}
	taken := map[string]bool{}
	for i, item := range ast.items {
		col, err := c.column(i, item)
		if err != nil {
			return nil, err
		}
		if taken[col.name] {
			return nil, c.errAt(item, "duplicate column name %q; use AS to give it another name", col.name)
		}
		taken[col.name] = true
		if col.agg != aggNone {
			q.hasAgg = true
		}
		q.cols = append(q.cols, col)
	}
	if err := q.checkGrouping(c, ast, taken); err != nil {
		return nil, err
	}
	return q, nil
}

func (c *compiler) column(i int, item selectItem) (column, error) {
	col := column{name: item.alias, groupIdx: -1}
	if call, ok := item.x.(*callNode); ok {
		if f, _ := lookupFunc(call.name); f.agg != aggNone {
			col.agg = f.agg
			if len(call.args) == 1 {
				arg, err := c.expr(call.args[0])
				if err != nil {
					return column{}, err
				}
				col.arg = arg
			}
			if col.name == "" {
				col.name = strings.ToLower(call.name)
			}
			return col, nil
		}
	}
	if pn, ok := item.x.(*pathNode); ok {
		r, err := c.path(pn)
		if err != nil {
			return column{}, err
		}
		col.get = r.get
		col.groupKey = r.key
		if col.name == "" {
			col.name = r.name
		}
	} else {
		fn, err := c.expr(item.x)
		if err != nil {
			return column{}, err
		}
		col.get = func(d map[string]any) (any, bool) { return fn(d).toAny() }
	}
	if col.name == "" {
		col.name = "$" + strconv.Itoa(i+1)
	}
	return col, nil
}

// checkGrouping ties plain columns to GROUP BY keys and adds the keys that
// are not selected, under their last path segment.
func (q *Query) checkGrouping(c *compiler, ast *queryAST, taken map[string]bool) error {
	if q.groupKeys == nil {
		if !q.hasAgg {
			return nil
		}
		for i, col := range q.cols {
			if col.agg == aggNone {
				return c.errAt(ast.items[i], "cannot mix aggregates and plain values without GROUP BY")
			}
		}
		return nil
	}
	shown := make([]bool, len(q.groupKeys))
	for i := range q.cols {
		col := &q.cols[i]
		if col.agg != aggNone {
			continue
		}
		for k, g := range q.groupKeys {
			if col.groupKey != "" && col.groupKey == g.key {
				col.groupIdx = k
				shown[k] = true
				break
			}
		}
		if col.groupIdx < 0 {
			return c.errAt(ast.items[i], "select items in a GROUP BY query must be aggregates or GROUP BY keys")
		}
	}
	for k, g := range q.groupKeys {
		if shown[k] || g.name == "" || taken[g.name] {
			continue
		}
		taken[g.name] = true
		q.cols = append(q.cols, column{name: g.name, groupIdx: k})
	}
	return nil
}

// Source returns the collection the query reads: SourceDevices,
// SourceModules or SourceJobs.
func (q *Query) Source() string { return q.source }

// DeviceIDs returns the device ids the query's WHERE clause restricts it
// to, when it does so at its top level (deviceId = '…', deviceId IN […],
// alone or as one term of an AND), so that a collection can hand Execute
// just those documents instead of all of them. ok is false otherwise. The
// ids may repeat or name no device; the condition still decides.
func (q *Query) DeviceIDs() (ids []string, ok bool) { return q.ids, q.idsOK }

// restrictedIDs finds a top-level restriction of the device id.
func restrictedIDs(where node) ([]string, bool) {
	isID := func(x node) bool {
		p, ok := x.(*pathNode)
		return ok && len(p.segs) == 1 && !p.segs[0].isIndex && p.segs[0].name == "deviceId"
	}
	switch n := where.(type) {
	case *inNode:
		if n.negate || !isID(n.x) {
			return nil, false
		}
		ids := make([]string, 0, len(n.list))
		for _, v := range n.list {
			if v.k != kStr {
				return nil, false
			}
			ids = append(ids, v.s)
		}
		return ids, true
	case *binaryNode:
		if n.op != tEq {
			return nil, false
		}
		l, r := n.l, n.r
		if !isID(l) {
			l, r = r, l
		}
		if c, ok := r.(*constNode); ok && isID(l) && c.v.k == kStr {
			return []string{c.v.s}, true
		}
	case *logicalNode:
		if !n.and {
			return nil, false
		}
		for _, x := range n.xs {
			if ids, ok := restrictedIDs(x); ok {
				return ids, true
			}
		}
	}
	return nil, false
}

// IsSelectStar reports whether the query is SELECT * (whole documents).
func (q *Query) IsSelectStar() bool { return q.star }

// String returns the query text as given to Parse.
func (q *Query) String() string { return q.text }

// Match reports whether doc satisfies the WHERE clause, that is whether the
// condition evaluates to exactly true. A query without WHERE matches every
// document. TOP, projections and GROUP BY play no part.
func (q *Query) Match(doc map[string]any) bool {
	return q.where == nil || q.where(doc) == isTrue
}

// Execute runs the query over docs and returns the result rows and their
// item type.
//
// For devices and devices.modules, docs are twins as the REST API returns
// them, JSON-decoded (map[string]any, []any, string, float64, bool, nil).
// For devices.jobs they are device-job items (deviceId, jobId, jobType,
// status, …), which the query's devices.jobs.* paths address.
//
// SELECT * returns the matching documents themselves, not copies, with
// item type ItemTwin (ItemDeviceJob for devices.jobs). Projections and
// aggregates return map[string]any rows with item type ItemRaw; their values
// may share arrays and objects with docs. rows is never nil. With TOP and
// without aggregates or GROUP BY, iteration stops once TOP rows are found.
// Execute does not modify docs. The error is reserved for future limits and
// is currently always nil.
func (q *Query) Execute(docs iter.Seq[map[string]any]) (rows []any, itemType string, err error) {
	itemType = ItemRaw
	if q.star {
		itemType = ItemTwin
		if q.source == SourceJobs {
			itemType = ItemDeviceJob
		}
	}
	rows = []any{}
	if q.top == 0 {
		return rows, itemType, nil
	}
	switch {
	case q.groupKeys != nil:
		rows = q.grouped(docs)
	case q.hasAgg:
		rows = append(rows, q.aggregate(docs))
	default:
		for doc := range docs {
			if q.where != nil && q.where(doc) != isTrue {
				continue
			}
			if q.star {
				rows = append(rows, doc)
			} else {
				rows = append(rows, q.project(doc))
			}
			if q.top > 0 && len(rows) >= q.top {
				break
			}
		}
	}
	if q.top > 0 && len(rows) > q.top {
		rows = rows[:q.top]
	}
	return rows, itemType, nil
}

func (q *Query) project(doc map[string]any) map[string]any {
	row := make(map[string]any, len(q.cols))
	for _, c := range q.cols {
		if v, ok := c.get(doc); ok {
			row[c.name] = v
		}
	}
	return row
}

// Condition is a compiled bare WHERE condition, as a job's queryCondition
// holds. It is immutable and safe for concurrent use.
type Condition struct {
	text string
	all  bool
	fn   predFn
}

// ParseCondition parses a WHERE body evaluated against device twins, e.g.
// "deviceId IN ['a','b']" or "tags.site = 'north'". The text "*" matches
// every device; an empty condition is an error. Every error it returns is
// an *Error.
func ParseCondition(where string) (*Condition, error) {
	if err := checkLength(where); err != nil {
		return nil, err
	}
	if strings.TrimSpace(where) == "*" {
		return &Condition{text: where, all: true}, nil
	}
	p, err := newParser(where)
	if err != nil {
		return nil, err
	}
	if p.peek().kind == tEOF {
		return nil, p.errAt(p.peek(), "empty condition; use * to select every device")
	}
	x, err := p.parseCondition()
	if err != nil {
		return nil, err
	}
	c := &compiler{src: where, source: SourceDevices, inWhere: true}
	fn, err := c.pred(x)
	if err != nil {
		return nil, err
	}
	return &Condition{text: where, fn: fn}, nil
}

// Match reports whether the condition evaluates to exactly true for doc.
func (c *Condition) Match(doc map[string]any) bool {
	return c.all || c.fn(doc) == isTrue
}

// MatchesAll reports whether the condition was "*".
func (c *Condition) MatchesAll() bool { return c.all }

// String returns the condition text as given to ParseCondition.
func (c *Condition) String() string { return c.text }
