package query

import "strings"

// predFn evaluates a compiled condition against one document.
type predFn func(doc map[string]any) tri

func isComparison(op tokKind) bool { return op >= tEq && op <= tGe }

// pred compiles n as a condition. Comparisons, IN, AND/OR/NOT and the
// boolean functions are compiled here directly; any other expression is
// evaluated as a value and is true only when it is the boolean true.
func (c *compiler) pred(n node) (predFn, error) {
	switch n := n.(type) {
	case *constNode:
		t := toTri(n.v)
		return func(map[string]any) tri { return t }, nil
	case *logicalNode:
		return c.logical(n)
	case *unaryNode:
		if n.op != tIdent {
			break
		}
		x, err := c.pred(n.x)
		if err != nil {
			return nil, err
		}
		return func(d map[string]any) tri { return x(d).not() }, nil
	case *binaryNode:
		if !isComparison(n.op) {
			break
		}
		return c.comparison(n)
	case *inNode:
		x, err := c.expr(n.x)
		if err != nil {
			return nil, err
		}
		set := newInSet(n.list)
		hit, miss := isTrue, isFalse
		if n.negate {
			hit, miss = isFalse, isTrue
		}
		return func(d map[string]any) tri {
			v := x(d)
			switch {
			case !v.primitive():
				return unknown
			case set.has(v):
				return hit
			}
			return miss
		}, nil
	case *callNode:
		return c.call(n)
	}
	v, err := c.expr(n)
	if err != nil {
		return nil, err
	}
	return func(d map[string]any) tri { return toTri(v(d)) }, nil
}

// logical evaluates AND/OR with three-valued logic: a false operand decides
// AND and a true one decides OR; otherwise any undefined operand makes the
// result undefined.
func (c *compiler) logical(n *logicalNode) (predFn, error) {
	ps := make([]predFn, len(n.xs))
	for i, x := range n.xs {
		p, err := c.pred(x)
		if err != nil {
			return nil, err
		}
		ps[i] = p
	}
	decide, otherwise := isFalse, isTrue // AND
	if !n.and {
		decide, otherwise = isTrue, isFalse
	}
	return func(d map[string]any) tri {
		res := otherwise
		for _, p := range ps {
			switch p(d) {
			case decide:
				return decide
			case unknown:
				res = unknown
			}
		}
		return res
	}, nil
}

// mirror turns "a op b" into "b op' a".
func mirror(op tokKind) tokKind {
	switch op {
	case tLt:
		return tGt
	case tGt:
		return tLt
	case tLe:
		return tGe
	case tGe:
		return tLe
	}
	return op
}

func (c *compiler) comparison(n *binaryNode) (predFn, error) {
	op := n.op
	// "path op constant" is what nearly every twin query is made of; it
	// gets a closure that reads the document's value without building a
	// value struct.
	path, pOK := n.l.(*pathNode)
	k, kOK := n.r.(*constNode)
	if !pOK || !kOK {
		path, pOK = n.r.(*pathNode)
		k, kOK = n.l.(*constNode)
		op = mirror(op)
	}
	if pOK && kOK {
		r, err := c.path(path)
		if err != nil {
			return nil, err
		}
		return pathCompare(r, op, k.v), nil
	}
	op = n.op
	l, err := c.expr(n.l)
	if err != nil {
		return nil, err
	}
	r, err := c.expr(n.r)
	if err != nil {
		return nil, err
	}
	return func(d map[string]any) tri { return compareValues(op, l(d), r(d)) }, nil
}

// compareValues applies a comparison operator under the package's rules:
// = and != on same-typed primitives, ordering on numbers and strings,
// undefined otherwise.
func compareValues(op tokKind, a, b value) tri {
	switch op {
	case tEq:
		return equal(a, b)
	case tNe:
		return equal(a, b).not()
	}
	c, ok := compare(a, b)
	if !ok {
		return unknown
	}
	return orderResult(op, c)
}

func orderResult(op tokKind, c int) tri {
	switch op {
	case tEq:
		return triOf(c == 0)
	case tNe:
		return triOf(c != 0)
	case tLt:
		return triOf(c < 0)
	case tGt:
		return triOf(c > 0)
	case tLe:
		return triOf(c <= 0)
	}
	return triOf(c >= 0)
}

func pathCompare(r *resolvedPath, op tokKind, k value) predFn {
	switch k.k {
	case kStr:
		s := k.s
		return func(d map[string]any) tri {
			x, ok := r.get(d)
			if !ok {
				return unknown
			}
			if xs, ok := x.(string); ok {
				switch op {
				case tEq:
					return triOf(xs == s)
				case tNe:
					return triOf(xs != s)
				}
				return orderResult(op, strings.Compare(xs, s))
			}
			// Only a string compares with a string.
			return unknown
		}
	case kNum:
		f := k.n
		return func(d map[string]any) tri {
			x, ok := r.get(d)
			if !ok {
				return unknown
			}
			if xf, ok := x.(float64); ok && xf-xf == 0 {
				switch {
				case xf < f:
					return orderResult(op, -1)
				case xf > f:
					return orderResult(op, 1)
				}
				return orderResult(op, 0)
			}
			return compareValues(op, fromAny(x), k)
		}
	}
	return func(d map[string]any) tri { return compareValues(op, r.eval(d), k) }
}

// inSet answers membership in an IN/NIN list in constant time, so that a
// batched deviceId IN [...] of a few hundred ids stays cheap per twin.
type inSet struct {
	strs                       map[string]struct{}
	nums                       map[float64]struct{}
	hasNull, hasTrue, hasFalse bool
}

func newInSet(list []value) *inSet {
	s := &inSet{strs: map[string]struct{}{}, nums: map[float64]struct{}{}}
	for _, v := range list {
		switch v.k {
		case kStr:
			s.strs[v.s] = struct{}{}
		case kNum:
			s.nums[v.n] = struct{}{}
		case kNull:
			s.hasNull = true
		case kBool:
			if v.b {
				s.hasTrue = true
			} else {
				s.hasFalse = true
			}
		}
	}
	return s
}

func (s *inSet) has(v value) bool {
	switch v.k {
	case kStr:
		_, ok := s.strs[v.s]
		return ok
	case kNum:
		_, ok := s.nums[v.n]
		return ok
	case kNull:
		return s.hasNull
	case kBool:
		if v.b {
			return s.hasTrue
		}
		return s.hasFalse
	}
	return false
}

// call compiles a function call; every non-aggregate function is a test.
func (c *compiler) call(n *callNode) (predFn, error) {
	f, _ := lookupFunc(n.name)
	if f.agg != aggNone {
		if c.inWhere {
			return nil, c.errAt(n, "aggregate function %s is not allowed in WHERE", n.name)
		}
		return nil, c.errAt(n, "aggregate function %s must be a whole select item (e.g. %s(…) AS name)", n.name, n.name)
	}
	args := make([]evalFn, len(n.args))
	for i, a := range n.args {
		fn, err := c.expr(a)
		if err != nil {
			return nil, err
		}
		args[i] = fn
	}
	typeTest := func(ok func(v value) bool) predFn {
		x := args[0]
		return func(d map[string]any) tri { return triOf(ok(x(d))) }
	}
	switch n.name {
	case "IS_DEFINED":
		return typeTest(func(v value) bool { return v.k != kUndef }), nil
	case "IS_STRING":
		return typeTest(func(v value) bool { return v.k == kStr }), nil
	case "IS_NUMBER":
		return typeTest(func(v value) bool { return v.k == kNum }), nil
	case "IS_BOOL":
		return typeTest(func(v value) bool { return v.k == kBool }), nil
	case "IS_NULL":
		return typeTest(func(v value) bool { return v.k == kNull }), nil
	case "IS_OBJECT":
		return typeTest(func(v value) bool { return v.k == kObj }), nil
	case "IS_ARRAY":
		return typeTest(func(v value) bool { return v.k == kArr }), nil
	case "IS_PRIMITIVE":
		return typeTest(value.primitive), nil
	case "STARTSWITH":
		return stringTest(args, strings.HasPrefix), nil
	case "ENDSWITH":
		return stringTest(args, strings.HasSuffix), nil
	}
	return stringTest(args, strings.Contains), nil
}

// stringTest builds STARTSWITH/ENDSWITH/CONTAINS: both operands must be
// strings, and an optional third boolean argument asks for a comparison
// that ignores case (by Unicode lower-casing).
func stringTest(args []evalFn, test func(s, t string) bool) predFn {
	a, b := args[0], args[1]
	if len(args) == 2 {
		return func(d map[string]any) tri {
			x, y := a(d), b(d)
			if x.k != kStr || y.k != kStr {
				return unknown
			}
			return triOf(test(x.s, y.s))
		}
	}
	ic := args[2]
	return func(d map[string]any) tri {
		x, y, fold := a(d), b(d), ic(d)
		if x.k != kStr || y.k != kStr || fold.k != kBool {
			return unknown
		}
		if fold.b {
			return triOf(test(strings.ToLower(x.s), strings.ToLower(y.s)))
		}
		return triOf(test(x.s, y.s))
	}
}
