package query

// The parser builds this syntax tree; compile.go checks it against the
// source collection and turns it into closures. Every node keeps the span of
// source text it came from so that semantic errors can point at it.

type node interface {
	span() (pos, end int)
}

type spanned struct{ pos, end int }

func (s spanned) span() (int, int) { return s.pos, s.end }

// pathSeg is one step of a property path: a member name or an array index.
type pathSeg struct {
	name    string
	index   int // >= 0 for [n]
	isIndex bool
}

type pathNode struct {
	spanned
	segs []pathSeg
}

type constNode struct {
	spanned
	v value
}

type unaryNode struct {
	spanned
	op tokKind // tMinus, tPlus, or tIdent for NOT
	x  node
}

type binaryNode struct {
	spanned
	op   tokKind
	l, r node
}

// logicalNode is a flattened chain of AND or OR so that long generated
// conditions (deviceId = 'a' OR deviceId = 'b' OR …) neither recurse deeply
// nor count against the nesting limit.
type logicalNode struct {
	spanned
	and bool
	xs  []node
}

type inNode struct {
	spanned
	negate bool
	x      node
	list   []value
}

type callNode struct {
	spanned
	name string // upper case
	args []node
}

type selectItem struct {
	spanned
	x     node
	alias string
}

type queryAST struct {
	top       int // -1 without TOP
	star      bool
	items     []selectItem
	source    string
	sourcePos int
	sourceEnd int
	where     node
	groupBy   []*pathNode
}
