package query

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"iter"
	"math"
)

// accumulator holds one aggregate's running state.
type accumulator struct {
	count float64 // COUNT: rows (or defined arguments)
	sum   float64 // SUM, AVG: sum of numeric arguments
	nums  int     // SUM, AVG: how many arguments were numbers
	best  value   // MIN, MAX: best primitive so far
}

func (a *accumulator) add(col *column, doc map[string]any) {
	if col.arg == nil {
		a.count++
		return
	}
	v := col.arg(doc)
	switch col.agg {
	case aggCount:
		if v.k != kUndef {
			a.count++
		}
	case aggSum, aggAvg:
		if v.k == kNum {
			a.sum += v.n
			a.nums++
		}
	case aggMin:
		if v.primitive() && (a.best.k == kUndef || rank(v, a.best) < 0) {
			a.best = v
		}
	case aggMax:
		if v.primitive() && (a.best.k == kUndef || rank(v, a.best) > 0) {
			a.best = v
		}
	}
}

// result returns the aggregate's value; ok is false when it is undefined
// (AVG of no numbers, MIN/MAX of no primitives) and the key is left out.
func (a *accumulator) result(kind aggKind) (any, bool) {
	switch kind {
	case aggCount:
		return a.count, true
	case aggSum:
		return a.sum, true
	case aggAvg:
		if a.nums == 0 {
			return nil, false
		}
		return a.sum / float64(a.nums), true
	}
	return a.best.toAny()
}

// aggregate computes a query that has aggregates but no GROUP BY: exactly
// one row, even over no documents.
func (q *Query) aggregate(docs iter.Seq[map[string]any]) map[string]any {
	accs := make([]accumulator, len(q.cols))
	for doc := range docs {
		if q.where != nil && q.where(doc) != isTrue {
			continue
		}
		for i := range q.cols {
			accs[i].add(&q.cols[i], doc)
		}
	}
	row := make(map[string]any, len(q.cols))
	for i, c := range q.cols {
		if v, ok := accs[i].result(c.agg); ok {
			row[c.name] = v
		}
	}
	return row
}

type group struct {
	keys []value
	accs []accumulator
}

// grouped computes a GROUP BY query: one row per distinct combination of
// key values, in order of first appearance. An undefined key forms a group
// of its own, and its column is left out of that group's row.
func (q *Query) grouped(docs iter.Seq[map[string]any]) []any {
	index := map[string]*group{}
	var order []*group
	var buf []byte
	keys := make([]value, len(q.groupKeys))
	for doc := range docs {
		if q.where != nil && q.where(doc) != isTrue {
			continue
		}
		buf = buf[:0]
		for i, k := range q.groupKeys {
			keys[i] = k.eval(doc)
			buf = appendKey(buf, keys[i])
		}
		g := index[string(buf)]
		if g == nil {
			g = &group{keys: append([]value(nil), keys...), accs: make([]accumulator, len(q.cols))}
			index[string(buf)] = g
			order = append(order, g)
		}
		for i := range q.cols {
			if q.cols[i].agg != aggNone {
				g.accs[i].add(&q.cols[i], doc)
			}
		}
	}
	rows := make([]any, 0, len(order))
	for _, g := range order {
		row := make(map[string]any, len(q.cols))
		for i, c := range q.cols {
			var v any
			var ok bool
			if c.agg != aggNone {
				v, ok = g.accs[i].result(c.agg)
			} else {
				v, ok = g.keys[c.groupIdx].toAny()
			}
			if ok {
				row[c.name] = v
			}
		}
		rows = append(rows, row)
	}
	return rows
}

// appendKey appends an unambiguous encoding of v: a kind byte, then the
// value, length-prefixed where its length varies.
func appendKey(buf []byte, v value) []byte {
	buf = append(buf, byte(v.k))
	switch v.k {
	case kBool:
		if v.b {
			return append(buf, 1)
		}
		return append(buf, 0)
	case kNum:
		n := v.n
		if n == 0 {
			n = 0 // fold -0 into 0
		}
		return binary.BigEndian.AppendUint64(buf, math.Float64bits(n))
	case kStr:
		buf = binary.AppendUvarint(buf, uint64(len(v.s)))
		return append(buf, v.s...)
	case kArr, kObj:
		// encoding/json sorts map keys, so equal objects encode equally.
		b, err := json.Marshal(v.raw)
		if err != nil {
			b = fmt.Append(nil, v.raw)
		}
		buf = binary.AppendUvarint(buf, uint64(len(b)))
		return append(buf, b...)
	}
	return buf
}
