package query

import (
	"encoding/json"
	"math"
)

type kind uint8

// The order of the kinds is the order MIN and MAX use across types.
const (
	kUndef kind = iota
	kNull
	kBool
	kNum
	kStr
	kArr
	kObj
)

// value is an evaluated expression. It is passed by value so that
// evaluating a condition does not allocate; raw keeps the document's own
// []any or map[string]any for arrays and objects.
type value struct {
	k   kind
	b   bool
	n   float64
	s   string
	raw any
}

func boolValue(b bool) value { return value{k: kBool, b: b} }

func numValue(f float64) value {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return value{}
	}
	return value{k: kNum, n: f}
}

func (v value) primitive() bool { return v.k >= kNull && v.k <= kStr }

// fromAny classifies a JSON-decoded value. Go integer types and json.Number
// are accepted too, for documents built by hand; any other type is treated
// as undefined.
func fromAny(x any) value {
	switch t := x.(type) {
	case nil:
		return value{k: kNull}
	case string:
		return value{k: kStr, s: t}
	case float64:
		return numValue(t)
	case bool:
		return boolValue(t)
	case map[string]any:
		return value{k: kObj, raw: x}
	case []any:
		return value{k: kArr, raw: x}
	case int:
		return value{k: kNum, n: float64(t)}
	case int64:
		return value{k: kNum, n: float64(t)}
	case int32:
		return value{k: kNum, n: float64(t)}
	case uint64:
		return value{k: kNum, n: float64(t)}
	case uint32:
		return value{k: kNum, n: float64(t)}
	case uint:
		return value{k: kNum, n: float64(t)}
	case float32:
		return numValue(float64(t))
	case json.Number:
		f, err := t.Float64()
		if err != nil {
			return value{}
		}
		return numValue(f)
	}
	return value{}
}

// toAny turns v back into a JSON-shaped value; ok is false for undefined.
func (v value) toAny() (x any, ok bool) {
	switch v.k {
	case kNull:
		return nil, true
	case kBool:
		return v.b, true
	case kNum:
		return v.n, true
	case kStr:
		return v.s, true
	case kArr, kObj:
		return v.raw, true
	}
	return nil, false
}

// tri is the result of a condition: true, false or undefined (three-valued
// logic). Conditions evaluate to tri rather than value so that the WHERE
// path passes one byte around instead of a whole value.
type tri uint8

const (
	unknown tri = iota
	isFalse
	isTrue
)

func triOf(b bool) tri {
	if b {
		return isTrue
	}
	return isFalse
}

// toTri reads a value as a condition: only booleans are true or false.
func toTri(v value) tri {
	if v.k != kBool {
		return unknown
	}
	return triOf(v.b)
}

// value turns t back into an expression value.
func (t tri) value() value {
	switch t {
	case isTrue:
		return boolValue(true)
	case isFalse:
		return boolValue(false)
	}
	return value{}
}

func (t tri) not() tri {
	switch t {
	case isTrue:
		return isFalse
	case isFalse:
		return isTrue
	}
	return unknown
}

// equal compares two primitives of the same type; anything else (undefined,
// objects, arrays, mixed types) is undefined.
func equal(a, b value) tri {
	if a.k != b.k || !a.primitive() {
		return unknown
	}
	switch a.k {
	case kBool:
		return triOf(a.b == b.b)
	case kNum:
		return triOf(a.n == b.n)
	case kStr:
		return triOf(a.s == b.s)
	}
	return isTrue // null = null
}

// compare orders two numbers or two strings (strings by byte, so
// case-sensitively); ok is false for any other pair.
func compare(a, b value) (c int, ok bool) {
	if a.k != b.k {
		return 0, false
	}
	switch a.k {
	case kNum:
		switch {
		case a.n < b.n:
			return -1, true
		case a.n > b.n:
			return 1, true
		}
		return 0, true
	case kStr:
		switch {
		case a.s < b.s:
			return -1, true
		case a.s > b.s:
			return 1, true
		}
		return 0, true
	}
	return 0, false
}

// rank orders primitives of any type for MIN and MAX: null < false < true <
// numbers < strings.
func rank(a, b value) int {
	if a.k != b.k {
		if a.k < b.k {
			return -1
		}
		return 1
	}
	switch a.k {
	case kBool:
		switch {
		case a.b == b.b:
			return 0
		case !a.b:
			return -1
		}
		return 1
	case kNum, kStr:
		c, _ := compare(a, b)
		return c
	}
	return 0
}
