package query

import (
	"math"
	"strconv"
	"strings"
)

// evalFn evaluates a compiled expression against one document. Values are
// passed as structs, so evaluation does not allocate.
type evalFn func(doc map[string]any) value

// compiler checks a syntax tree against the source collection and turns it
// into closures.
type compiler struct {
	src     string
	source  string
	inWhere bool
}

func (c *compiler) errAt(n node, format string, args ...any) *Error {
	pos, end := n.span()
	return newError(c.src, pos, end, false, format, args...)
}

// resolvedPath is a property path with system names in canonical spelling.
type resolvedPath struct {
	steps []pathSeg
	key   string // identity, used to match select items to GROUP BY keys
	name  string // last member name, "" when the path ends in an index
}

func (r *resolvedPath) get(doc map[string]any) (any, bool) {
	var cur any = doc
	for _, s := range r.steps {
		if s.isIndex {
			a, ok := cur.([]any)
			if !ok || s.index >= len(a) {
				return nil, false
			}
			cur = a[s.index]
			continue
		}
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[s.name]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func (r *resolvedPath) eval(doc map[string]any) value {
	x, ok := r.get(doc)
	if !ok {
		return value{}
	}
	return fromAny(x)
}

func (c *compiler) path(n *pathNode) (*resolvedPath, error) {
	segs := append([]pathSeg(nil), n.segs...)
	if c.source == SourceJobs {
		if len(segs) < 3 || segs[0].isIndex || segs[1].isIndex ||
			!strings.EqualFold(segs[0].name, "devices") || !strings.EqualFold(segs[1].name, "jobs") {
			return nil, c.errAt(n, "devices.jobs queries can only refer to devices.jobs.* properties (e.g. devices.jobs.jobId)")
		}
		segs = segs[2:]
		canonicalize(segs, jobNames)
	} else {
		canonicalize(segs, twinNames)
	}
	r := &resolvedPath{steps: segs}
	var key strings.Builder
	for _, s := range segs {
		if s.isIndex {
			key.WriteString("\x01" + strconv.Itoa(s.index))
			continue
		}
		key.WriteString("\x00" + s.name)
	}
	r.key = key.String()
	if last := segs[len(segs)-1]; !last.isIndex {
		r.name = last.name
	}
	return r, nil
}

// expr compiles an expression that may not contain aggregates.
func (c *compiler) expr(n node) (evalFn, error) {
	switch n := n.(type) {
	case *constNode:
		v := n.v
		return func(map[string]any) value { return v }, nil
	case *pathNode:
		r, err := c.path(n)
		if err != nil {
			return nil, err
		}
		return r.eval, nil
	case *unaryNode:
		if n.op != tMinus && n.op != tPlus {
			break
		}
		x, err := c.expr(n.x)
		if err != nil {
			return nil, err
		}
		if n.op == tMinus {
			return func(d map[string]any) value {
				if v := x(d); v.k == kNum {
					return numValue(-v.n)
				}
				return value{}
			}, nil
		}
		return func(d map[string]any) value {
			if v := x(d); v.k == kNum {
				return v
			}
			return value{}
		}, nil
	case *binaryNode:
		if isComparison(n.op) {
			break
		}
		l, err := c.expr(n.l)
		if err != nil {
			return nil, err
		}
		r, err := c.expr(n.r)
		if err != nil {
			return nil, err
		}
		op := n.op
		return func(d map[string]any) value { return arith(op, l(d), r(d)) }, nil
	}
	// Everything else is a condition.
	p, err := c.pred(n)
	if err != nil {
		return nil, err
	}
	return func(d map[string]any) value { return p(d).value() }, nil
}

// arith applies + - * / % to numbers; anything else, division by zero and
// non-finite results are undefined.
func arith(op tokKind, a, b value) value {
	if a.k != kNum || b.k != kNum {
		return value{}
	}
	switch op {
	case tPlus:
		return numValue(a.n + b.n)
	case tMinus:
		return numValue(a.n - b.n)
	case tStar:
		return numValue(a.n * b.n)
	case tSlash:
		if b.n == 0 {
			return value{}
		}
		return numValue(a.n / b.n)
	}
	if b.n == 0 {
		return value{}
	}
	return numValue(math.Mod(a.n, b.n))
}

// funcInfo describes a function the language accepts.
type funcInfo struct {
	minArgs, maxArgs int
	agg              aggKind
}

func (f funcInfo) arity() string {
	switch {
	case f.minArgs == f.maxArgs && f.minArgs == 0:
		return "no arguments"
	case f.minArgs == f.maxArgs && f.minArgs == 1:
		return "1 argument"
	case f.minArgs == f.maxArgs:
		return strconv.Itoa(f.minArgs) + " arguments"
	}
	return strconv.Itoa(f.minArgs) + " to " + strconv.Itoa(f.maxArgs) + " arguments"
}

// lookupFunc finds a function by its upper-case name.
func lookupFunc(name string) (funcInfo, bool) {
	switch name {
	case "IS_DEFINED", "IS_STRING", "IS_NUMBER", "IS_BOOL", "IS_NULL", "IS_OBJECT", "IS_ARRAY", "IS_PRIMITIVE":
		return funcInfo{minArgs: 1, maxArgs: 1}, true
	case "STARTSWITH", "ENDSWITH", "CONTAINS":
		return funcInfo{minArgs: 2, maxArgs: 3}, true
	case "COUNT":
		return funcInfo{minArgs: 0, maxArgs: 1, agg: aggCount}, true
	case "SUM":
		return funcInfo{minArgs: 1, maxArgs: 1, agg: aggSum}, true
	case "AVG":
		return funcInfo{minArgs: 1, maxArgs: 1, agg: aggAvg}, true
	case "MIN":
		return funcInfo{minArgs: 1, maxArgs: 1, agg: aggMin}, true
	case "MAX":
		return funcInfo{minArgs: 1, maxArgs: 1, agg: aggMax}, true
	}
	return funcInfo{}, false
}

// underscoreAlias names the twin-query spelling of functions that only
// message routing spells with an underscore; the hub rejects those in twin
// queries, and so does the emulator.
func underscoreAlias(name string) (string, bool) {
	switch name {
	case "STARTS_WITH":
		return "STARTSWITH", true
	case "ENDS_WITH":
		return "ENDSWITH", true
	}
	return "", false
}
