package query

import (
	"math"
	"strings"
)

// parser is a recursive-descent parser over the token slice. depth counts
// the nesting of parentheses, unary operators, array constants and function
// arguments so that hostile input cannot exhaust the stack.
type parser struct {
	src   string
	toks  []token
	i     int
	depth int
}

func newParser(src string) (*parser, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	return &parser{src: src, toks: toks}, nil
}

func (p *parser) peek() token { return p.toks[p.i] }

func (p *parser) peekAt(n int) token {
	if p.i+n < len(p.toks) {
		return p.toks[p.i+n]
	}
	return p.toks[len(p.toks)-1]
}

func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

// errAt reports a syntax error at tok.
func (p *parser) errAt(tok token, format string, args ...any) *Error {
	return newError(p.src, tok.pos, tok.end, true, format, args...)
}

func (p *parser) enter() error {
	p.depth++
	if p.depth > MaxDepth {
		return p.errAt(p.peek(), "expression nested too deeply (limit %d levels)", MaxDepth)
	}
	return nil
}

func (p *parser) leave() { p.depth-- }

// parseQuery parses a whole SELECT statement.
func (p *parser) parseQuery() (*queryAST, error) {
	q := &queryAST{top: -1}
	if t := p.peek(); !t.is("SELECT") {
		return nil, p.errAt(t, "expected SELECT at the start of the query")
	}
	p.next()
	if p.peek().is("TOP") {
		p.next()
		t := p.next()
		if t.kind != tNumber || t.num != math.Trunc(t.num) {
			return nil, p.errAt(t, "expected a whole number after TOP")
		}
		q.top = int(min(t.num, math.MaxInt32))
	}
	if t := p.peek(); t.kind == tStar {
		p.next()
		q.star = true
	} else {
		for {
			item, err := p.parseSelectItem()
			if err != nil {
				return nil, err
			}
			q.items = append(q.items, item)
			if p.peek().kind != tComma {
				break
			}
			p.next()
		}
	}
	if t := p.peek(); !t.is("FROM") {
		switch {
		case t.kind == tEOF:
			return nil, p.errAt(t, "unexpected end of query: expected FROM")
		case q.star && t.kind == tComma:
			return nil, p.errAt(t, "SELECT * cannot be combined with other select items")
		case q.star:
			return nil, p.errAt(t, "expected FROM")
		}
		return nil, p.errAt(t, "expected an operator, ',', AS or FROM")
	}
	p.next()
	if err := p.parseSource(q); err != nil {
		return nil, err
	}
	if p.peek().is("WHERE") {
		p.next()
		x, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		q.where = x
	}
	if p.peek().is("GROUP") {
		p.next()
		if !p.peek().is("BY") {
			return nil, p.errAt(p.peek(), "expected BY after GROUP")
		}
		p.next()
		for {
			x, err := p.parsePrimaryPath()
			if err != nil {
				return nil, err
			}
			q.groupBy = append(q.groupBy, x)
			if p.peek().kind != tComma {
				break
			}
			p.next()
		}
	}
	t := p.peek()
	switch {
	case t.kind == tEOF:
		return q, nil
	case t.is("ORDER"):
		return nil, p.errAt(t, "ORDER BY is not supported in IoT Hub queries")
	case q.groupBy != nil:
		return nil, p.errAt(t, "expected ',' or end of query")
	case q.where != nil && t.is("WHERE"):
		return nil, p.errAt(t, "a query can have only one WHERE clause")
	case q.where != nil:
		return nil, p.errAt(t, "expected an operator, GROUP BY or end of query")
	}
	return nil, p.errAt(t, "expected WHERE, GROUP BY or end of query")
}

// parseCondition parses a bare condition (a WHERE body) up to the end.
func (p *parser) parseCondition() (node, error) {
	x, err := p.parseExpr()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, p.errAt(t, "expected an operator or end of condition")
	}
	return x, nil
}

func (p *parser) parseSelectItem() (selectItem, error) {
	start := p.peek()
	if start.kind == tStar {
		return selectItem{}, p.errAt(start, "SELECT * cannot be combined with other select items")
	}
	if start.is("FROM") {
		return selectItem{}, p.errAt(start, "expected *, a property path or an expression before FROM")
	}
	x, err := p.parseExpr()
	if err != nil {
		return selectItem{}, err
	}
	_, end := x.span()
	item := selectItem{spanned: spanned{start.pos, end}, x: x}
	if p.peek().is("AS") {
		p.next()
		t := p.next()
		switch {
		case t.kind == tQIdent:
			item.alias = t.str
		case t.kind == tIdent && !reserved(t.text):
			item.alias = t.text
		case t.is("FROM"):
			return selectItem{}, p.errAt(t, "expected a name after AS")
		case t.kind == tIdent:
			return selectItem{}, p.errAt(t, "%s is a reserved word; escape the alias as [[%s]]", t.text, t.text)
		default:
			return selectItem{}, p.errAt(t, "expected a name after AS")
		}
		item.end = t.end
	}
	return item, nil
}

// parseSource reads the collection after FROM: devices, devices.modules or
// devices.jobs, in any case.
func (p *parser) parseSource(q *queryAST) error {
	t := p.next()
	if t.kind != tIdent || reserved(t.text) {
		return p.errAt(t, "expected devices, devices.modules or devices.jobs after FROM")
	}
	q.sourcePos, q.sourceEnd = t.pos, t.end
	name := strings.ToLower(t.text)
	for p.peek().kind == tDot {
		p.next()
		t = p.next()
		if t.kind != tIdent {
			return p.errAt(t, "expected a collection name after '.'")
		}
		name += "." + strings.ToLower(t.text)
		q.sourceEnd = t.end
	}
	switch name {
	case SourceDevices, SourceModules, SourceJobs:
		q.source = name
		return nil
	}
	return newError(p.src, q.sourcePos, q.sourceEnd, false,
		"unknown collection %q; expected devices, devices.modules or devices.jobs", p.src[q.sourcePos:q.sourceEnd])
}

func (p *parser) parseExpr() (node, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer p.leave()
	return p.parseLogical(false)
}

// parseLogical parses an OR chain (and=false) or an AND chain (and=true).
func (p *parser) parseLogical(and bool) (node, error) {
	sub := func() (node, error) {
		if and {
			return p.parseNot()
		}
		return p.parseLogical(true)
	}
	kw := "OR"
	if and {
		kw = "AND"
	}
	first, err := sub()
	if err != nil {
		return nil, err
	}
	if !p.peek().is(kw) {
		return first, nil
	}
	xs := []node{first}
	for p.peek().is(kw) {
		p.next()
		x, err := sub()
		if err != nil {
			return nil, err
		}
		xs = append(xs, x)
	}
	pos, _ := first.span()
	_, end := xs[len(xs)-1].span()
	return &logicalNode{spanned: spanned{pos, end}, and: and, xs: xs}, nil
}

func (p *parser) parseNot() (node, error) {
	t := p.peek()
	if !t.is("NOT") {
		return p.parseComparison()
	}
	p.next()
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer p.leave()
	x, err := p.parseNot()
	if err != nil {
		return nil, err
	}
	_, end := x.span()
	return &unaryNode{spanned: spanned{t.pos, end}, op: tIdent, x: x}, nil
}

func (p *parser) parseComparison() (node, error) {
	l, err := p.parseAdditive()
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		pos, _ := l.span()
		switch {
		case t.kind >= tEq && t.kind <= tGe:
			p.next()
			r, err := p.parseAdditive()
			if err != nil {
				return nil, err
			}
			_, end := r.span()
			l = &binaryNode{spanned: spanned{pos, end}, op: t.kind, l: l, r: r}
		case t.is("IN"), t.is("NIN"), t.is("NOT") && p.peekAt(1).is("IN"):
			negate := !t.is("IN")
			p.next()
			if t.is("NOT") {
				p.next()
			}
			list, end, err := p.parseInList()
			if err != nil {
				return nil, err
			}
			l = &inNode{spanned: spanned{pos, end}, negate: negate, x: l, list: list}
		default:
			return l, nil
		}
	}
}

// parseInList reads the array constant after IN or NIN.
func (p *parser) parseInList() ([]value, int, error) {
	t := p.peek()
	if t.kind != tLBrack {
		return nil, 0, p.errAt(t, "expected an array constant after IN, e.g. IN ['a', 'b']")
	}
	c, err := p.parseArray()
	if err != nil {
		return nil, 0, err
	}
	list := make([]value, 0, len(c.v.raw.([]any)))
	for _, x := range c.v.raw.([]any) {
		list = append(list, fromAny(x))
	}
	return list, c.end, nil
}

func (p *parser) parseAdditive() (node, error) {
	l, err := p.parseMultiplicative()
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		if t.kind != tPlus && t.kind != tMinus {
			return l, nil
		}
		p.next()
		r, err := p.parseMultiplicative()
		if err != nil {
			return nil, err
		}
		pos, _ := l.span()
		_, end := r.span()
		l = &binaryNode{spanned: spanned{pos, end}, op: t.kind, l: l, r: r}
	}
}

func (p *parser) parseMultiplicative() (node, error) {
	l, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		if t.kind != tStar && t.kind != tSlash && t.kind != tPercent {
			return l, nil
		}
		p.next()
		r, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		pos, _ := l.span()
		_, end := r.span()
		l = &binaryNode{spanned: spanned{pos, end}, op: t.kind, l: l, r: r}
	}
}

func (p *parser) parseUnary() (node, error) {
	t := p.peek()
	if t.kind != tMinus && t.kind != tPlus {
		return p.parsePrimary()
	}
	p.next()
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer p.leave()
	x, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	_, end := x.span()
	// Fold signed number literals so that -1 is a constant (array
	// constants and TOP rely on it).
	if c, ok := x.(*constNode); ok && c.v.k == kNum {
		if t.kind == tMinus {
			return &constNode{spanned: spanned{t.pos, end}, v: value{k: kNum, n: -c.v.n}}, nil
		}
		return &constNode{spanned: spanned{t.pos, end}, v: c.v}, nil
	}
	return &unaryNode{spanned: spanned{t.pos, end}, op: t.kind, x: x}, nil
}

func (p *parser) parsePrimary() (node, error) {
	t := p.peek()
	switch t.kind {
	case tNumber:
		p.next()
		return &constNode{spanned: spanned{t.pos, t.end}, v: value{k: kNum, n: t.num}}, nil
	case tString:
		p.next()
		return &constNode{spanned: spanned{t.pos, t.end}, v: value{k: kStr, s: t.str}}, nil
	case tLBrack:
		return p.parseArray()
	case tLParen:
		p.next()
		x, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		if c := p.peek(); c.kind != tRParen {
			line, col := location(p.src, t.pos)
			return nil, p.errAt(c, "expected ')' to close the '(' at line %d, column %d", line, col)
		}
		p.next()
		return x, nil
	case tQIdent:
		return p.parsePath()
	case tIdent:
		switch {
		case t.is("TRUE"), t.is("FALSE"):
			p.next()
			return &constNode{spanned: spanned{t.pos, t.end}, v: boolValue(t.is("TRUE"))}, nil
		case t.is("NULL"):
			p.next()
			return &constNode{spanned: spanned{t.pos, t.end}, v: value{k: kNull}}, nil
		case t.is("UNDEFINED"):
			p.next()
			return &constNode{spanned: spanned{t.pos, t.end}, v: value{}}, nil
		case p.peekAt(1).kind == tLParen:
			return p.parseCall()
		case reserved(t.text):
			return nil, p.errAt(t, "expected an expression, found the keyword %s (escape a property named so as [[%s]])", strings.ToUpper(t.text), t.text)
		}
		return p.parsePath()
	case tEOF:
		return nil, p.errAt(t, "unexpected end of query: expected an expression")
	}
	return nil, p.errAt(t, "expected an expression")
}

// parsePrimaryPath parses a GROUP BY key, which must be a property path.
func (p *parser) parsePrimaryPath() (*pathNode, error) {
	t := p.peek()
	if t.kind == tQIdent || (t.kind == tIdent && !reserved(t.text) && p.peekAt(1).kind != tLParen) {
		x, err := p.parsePath()
		if err != nil {
			return nil, err
		}
		return x, nil
	}
	return nil, p.errAt(t, "expected a property path after GROUP BY")
}

// parsePath parses name{.name | .[[name]] | [[name]] | ['name'] | [n]}.
func (p *parser) parsePath() (*pathNode, error) {
	first := p.next()
	n := &pathNode{spanned: spanned{first.pos, first.end}}
	n.segs = append(n.segs, pathSeg{name: first.str})
	for {
		switch t := p.peek(); t.kind {
		case tDot:
			p.next()
			s := p.next()
			switch {
			case s.kind == tQIdent:
				n.segs = append(n.segs, pathSeg{name: s.str})
			case s.kind == tIdent && reserved(s.text):
				return nil, p.errAt(s, "%s is a reserved word; escape the property name as [[%s]]", s.text, s.text)
			case s.kind == tIdent:
				n.segs = append(n.segs, pathSeg{name: s.str})
			default:
				return nil, p.errAt(s, "expected a property name after '.'")
			}
			n.end = s.end
		case tQIdent:
			// tags[[group]] reads like tags['group'].
			p.next()
			n.segs = append(n.segs, pathSeg{name: t.str})
			n.end = t.end
		case tLBrack:
			p.next()
			s := p.next()
			switch {
			case s.kind == tString:
				n.segs = append(n.segs, pathSeg{name: s.str})
			case s.kind == tNumber && s.num >= 0 && s.num == math.Trunc(s.num) && s.num <= math.MaxInt32:
				n.segs = append(n.segs, pathSeg{index: int(s.num), isIndex: true})
			default:
				return nil, p.errAt(s, "expected a quoted property name or an array index inside [ ]")
			}
			c := p.next()
			if c.kind != tRBrack {
				return nil, p.errAt(c, "expected ']'")
			}
			n.end = c.end
		default:
			return n, nil
		}
	}
}

func (p *parser) parseCall() (node, error) {
	name := p.next()
	p.next() // (
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer p.leave()
	c := &callNode{name: strings.ToUpper(name.text)}
	if p.peek().kind != tRParen {
		for {
			x, err := p.parseExpr()
			if err != nil {
				return nil, err
			}
			c.args = append(c.args, x)
			if p.peek().kind != tComma {
				break
			}
			p.next()
		}
	}
	end := p.next()
	if end.kind != tRParen {
		return nil, p.errAt(end, "expected ',' or ')' in the arguments of %s", name.text)
	}
	c.spanned = spanned{name.pos, end.end}
	f, ok := lookupFunc(c.name)
	if !ok {
		if alt, ok := underscoreAlias(c.name); ok {
			return nil, p.errAt(name, "%s is not supported in twin queries; use %s", c.name, alt)
		}
		return nil, p.errAt(name, "unknown function %s", name.text)
	}
	if len(c.args) < f.minArgs || len(c.args) > f.maxArgs {
		return nil, p.errAt(name, "%s takes %s, got %d", c.name, f.arity(), len(c.args))
	}
	return c, nil
}

// parseArray parses an array constant; its elements must be constants.
func (p *parser) parseArray() (*constNode, error) {
	open := p.next()
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer p.leave()
	elems := []any{}
	if p.peek().kind != tRBrack {
		for {
			x, err := p.parseUnary()
			if err != nil {
				return nil, err
			}
			c, ok := x.(*constNode)
			if !ok || c.v.k == kUndef {
				pos, end := x.span()
				return nil, newError(p.src, pos, end, true, "array elements must be constants (strings, numbers, true, false, null or arrays)")
			}
			v, _ := c.v.toAny()
			elems = append(elems, v)
			if p.peek().kind != tComma {
				break
			}
			p.next()
		}
	}
	end := p.next()
	if end.kind != tRBrack {
		return nil, p.errAt(end, "expected ',' or ']' in the array constant")
	}
	return &constNode{spanned: spanned{open.pos, end.end}, v: value{k: kArr, raw: elems}}, nil
}
