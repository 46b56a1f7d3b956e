package jobs

import (
	"bytes"
	"fmt"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// MaxNestingDepth is how deeply job files, var files and -var values may
// nest. Every open bracket, brace, block body, string, heredoc, template
// sequence (${ } and %{ }) and template directive (%{ if } and %{ for })
// is one level. The HCL parser and evaluator recurse once per level, so a
// file nested tens of thousands of levels deep would exhaust the stack;
// files nested deeper than this are refused before they are parsed.
const MaxNestingDepth = 256

// MaxOperatorChain is how many operators (arithmetic, comparison, logical,
// the conditional ? :, and attribute and index steps after a value) one
// expression may apply in a row, counting those of the expressions it is
// nested in. Such chains parse without recursion but evaluate with it, so
// they have a limit of their own, larger than MaxNestingDepth because
// a long chain of || is ordinary.
const MaxOperatorChain = 4096

// scanSyntax says how checkNesting reads its input.
type scanSyntax int

const (
	scanHCL scanSyntax = iota
	scanJSON
)

// checkNesting scans src without parsing it and returns a diagnostic at
// the first place where it nests deeper than MaxNestingDepth or chains
// more than MaxOperatorChain operators, or nil.
//
// For HCL it follows the HCL lexer exactly (strings, escapes, heredocs,
// comments, template sequences), so that no input can hide nesting from
// it, reading bytes itself while they are ASCII. Outside ASCII, where an
// identifier ends is decided by the lexer's own Unicode tables, which also
// take some bytes that are not letters (a quote, say) as part of one, so a
// file with a byte that may start a UTF-8 sequence outside strings and
// comments is counted from the lexer's tokens instead.
func checkNesting(filename string, src []byte, syntax scanSyntax) *hcl.Diagnostic {
	c := countNesting(filename, src, syntax)
	return c.err
}

// countNesting does checkNesting's counting.
func countNesting(filename string, src []byte, syntax scanSyntax) *nestCount {
	s := &nestScanner{src: src, filename: filename, line: 1, lastCommentEnd: bytes.LastIndex(src, []byte("*/"))}
	if bytes.HasPrefix(src, []byte("\ufeff")) {
		s.i, s.lineStart = 3, 3
	}
	s.count.at = s.rangeHere
	s.count.frames = append(s.count.frames, nestFrame{kind: nestTop})
	if syntax == scanJSON {
		s.scanJSON()
		return &s.count
	}
	if !s.scanHCL() {
		return countTokens(filename, src)
	}
	return &s.count
}

type nestKind uint8

const (
	nestTop nestKind = iota
	nestParen
	nestBrack
	nestBrace
	nestInterp
	nestQuote
	nestHeredoc
)

type nestFrame struct {
	kind nestKind
	// chain counts the operators of the frame's current expression.
	chain int
	// directives counts the open %{ if } and %{ for } of a template.
	directives int
	// marker closes a heredoc; lineStart says the heredoc is at the start
	// of a line, where the marker may be.
	marker    []byte
	lineStart bool
	// control marks a %{ sequence, whose first word may open or close a
	// directive; word says that word has been read.
	control bool
	word    bool
}

// nestCount counts levels and operators, by bytes or by tokens.
type nestCount struct {
	frames []nestFrame
	// depth is the number of open levels: frames above the top one and
	// open directives. chain is the sum of the frames' chains.
	depth, chain int
	// maxDepth is the deepest level seen.
	maxDepth int
	// at returns where the scan is, for a diagnostic.
	at  func() hcl.Range
	err *hcl.Diagnostic
}

func (c *nestCount) top() *nestFrame { return &c.frames[len(c.frames)-1] }

func (c *nestCount) push(f nestFrame) {
	c.frames = append(c.frames, f)
	c.depth++
	c.checkDepth()
}

func (c *nestCount) pop() {
	t := c.top()
	c.depth -= 1 + t.directives
	c.chain -= t.chain
	c.frames = c.frames[:len(c.frames)-1]
}

// closeBrace closes the innermost brace or template sequence, and any
// bracket left open inside it, as the HCL lexer does with }. It reports
// whether that was a template sequence.
func (c *nestCount) closeBrace() bool {
	for n := len(c.frames) - 1; n > 0; n-- {
		switch k := c.frames[n].kind; k {
		case nestParen, nestBrack:
			continue
		case nestInterp, nestBrace:
			for len(c.frames) > n {
				c.pop()
			}
			return k == nestInterp
		}
		return false
	}
	return false
}

// word handles the first word of a %{ sequence, which may open or close a
// directive of the template the sequence is in.
func (c *nestCount) word(w []byte) {
	t := c.top()
	if t.kind != nestInterp || !t.control || t.word {
		return
	}
	t.word = true
	tmpl := &c.frames[len(c.frames)-2]
	switch string(w) {
	case "if", "for":
		tmpl.directives++
		c.depth++
		c.checkDepth()
	case "endif", "endfor":
		if tmpl.directives > 0 {
			tmpl.directives--
			c.depth--
		}
	}
}

func (c *nestCount) addOp() {
	c.top().chain++
	c.chain++
	if c.chain > MaxOperatorChain && c.err == nil {
		c.err = &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Expression too long",
			Detail: fmt.Sprintf("This expression applies more than %d operators in a row here, counting those of the expressions around it; hubflow refuses longer chains. Split it, or test membership with contains([...], value) rather than a chain of || comparisons.",
				MaxOperatorChain),
			Subject: c.at().Ptr(),
		}
	}
}

// endExpr ends the current expression of the innermost frame.
func (c *nestCount) endExpr() {
	t := c.top()
	c.chain -= t.chain
	t.chain = 0
}

// newline ends the current expression where newlines separate items.
func (c *nestCount) newline() {
	if k := c.top().kind; k == nestTop || k == nestBrace {
		c.endExpr()
	}
}

func (c *nestCount) checkDepth() {
	c.maxDepth = max(c.maxDepth, c.depth)
	if c.depth > MaxNestingDepth && c.err == nil {
		c.err = &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Nesting too deep",
			Detail: fmt.Sprintf("This file nests brackets, braces, blocks, strings or template sequences %d levels deep here; hubflow refuses nesting deeper than %d levels.",
				c.depth, MaxNestingDepth),
			Subject: c.at().Ptr(),
		}
	}
}

// nestScanner counts by reading bytes.
type nestScanner struct {
	src      []byte
	filename string
	i        int
	// line is the current line number and lineStart its first byte.
	line, lineStart int
	// operand says the last token ended a value, so that a following [ or
	// . is an index or attribute step.
	operand bool
	// utf8 says the scan stopped at a byte outside ASCII that may start
	// an identifier, for the lexer to read.
	utf8 bool
	// lastCommentEnd is where the last */ starts, so that an unterminated
	// /* is told apart without searching the rest of the file each time.
	lastCommentEnd int
	count          nestCount
}

func (s *nestScanner) rangeHere() hcl.Range {
	at := min(s.i, len(s.src))
	col := utf8.RuneCount(s.src[s.lineStart:at]) + 1
	_, size := utf8.DecodeRune(s.src[at:])
	return hcl.Range{
		Filename: s.filename,
		Start:    hcl.Pos{Line: s.line, Column: col, Byte: at},
		End:      hcl.Pos{Line: s.line, Column: col + 1, Byte: at + size},
	}
}

// scanHCL counts HCL native syntax. It returns false, having stopped,
// when it meets a byte outside ASCII that may start an identifier.
func (s *nestScanner) scanHCL() bool {
	for s.i < len(s.src) && s.count.err == nil {
		switch s.count.top().kind {
		case nestQuote:
			s.quoted()
		case nestHeredoc:
			s.heredoc()
		default:
			if !s.code() {
				return false
			}
		}
	}
	return true
}

func (s *nestScanner) scanJSON() {
	src := s.src
	for s.i < len(src) && s.count.err == nil {
		switch c := src[s.i]; c {
		case '"':
			s.i++
			for s.i < len(src) && src[s.i] != '"' {
				if src[s.i] == '\\' {
					s.i++
				} else if src[s.i] == '\n' {
					s.newline()
				}
				s.i++
			}
			s.i++
		case '[', '{':
			s.count.push(nestFrame{kind: nestBrace})
			s.i++
		case ']', '}':
			if len(s.count.frames) > 1 {
				s.count.pop()
			}
			s.i++
		case '\n':
			s.newline()
			s.i++
		default:
			s.i++
		}
	}
}

// code reads one token outside templates. It returns false at a byte
// that may start a UTF-8 sequence.
func (s *nestScanner) code() bool {
	src, i, c := s.src, s.i, &s.count
	b := src[i]
	next := byte(0)
	if i+1 < len(src) {
		next = src[i+1]
	}
	operand := false
	switch {
	case b == '\n':
		s.newline()
		c.newline()
		s.i++
	case b == ' ' || b == '\t' || b == '\r':
		s.i++
		return true
	case b == '#' || (b == '/' && next == '/'):
		// The newline is left for the next step.
		if n := bytes.IndexByte(src[i:], '\n'); n >= 0 {
			s.i += n
		} else {
			s.i = len(src)
		}
		return true
	case b == '/' && next == '*' && s.lastCommentEnd >= i+2:
		// An unterminated /* is two operators to the HCL lexer.
		end := i + 2 + bytes.Index(src[i+2:], []byte("*/")) + 2
		for j := i; j < end; j++ {
			if src[j] == '\n' {
				s.i = j
				s.newline()
			}
		}
		s.i = end
		return true
	case b == '"':
		c.push(nestFrame{kind: nestQuote})
		s.i++
	case b == '<' && next == '<' && s.heredocStart():
		if s.utf8 {
			return false
		}
	case b == '(':
		c.push(nestFrame{kind: nestParen})
		s.i++
	case b == '[':
		if s.operand {
			c.addOp()
		}
		c.push(nestFrame{kind: nestBrack})
		s.i++
	case b == '{':
		c.push(nestFrame{kind: nestBrace})
		s.i++
	case b == ')' || b == ']':
		want := nestParen
		if b == ']' {
			want = nestBrack
		}
		if c.top().kind == want {
			c.pop()
			operand = true
		}
		s.i++
	case b == '}' || (b == '~' && next == '}'):
		if c.closeBrace() {
			c.top().lineStart = false
		} else {
			operand = true
		}
		if b == '~' {
			s.i++
		}
		s.i++
	case b == ',':
		c.endExpr()
		s.i++
	case isDigit(b):
		s.number()
		operand = true
	case b == '.':
		if next == '.' && i+2 < len(src) && src[i+2] == '.' {
			s.i += 3
			break
		}
		if s.operand {
			c.addOp()
		}
		s.i++
	case b == '!' || b == '=' || b == '<' || b == '>':
		switch {
		case next == '=':
			c.addOp()
			s.i += 2
		case b == '=' && next == '>':
			s.i += 2
		case b == '=':
			s.i++
		default:
			c.addOp()
			s.i++
		}
	case b == '&' || b == '|':
		c.addOp()
		if next == b {
			s.i++
		}
		s.i++
	case b == '+' || b == '-' || b == '*' || b == '/' || b == '%' || b == '?':
		c.addOp()
		s.i++
	case isIdentByte(b) && !isDigit(b) && b != '-':
		end := s.i
		for end < len(src) && isIdentByte(src[end]) {
			end++
		}
		if end < len(src) && mayStartUTF8(src[end]) {
			return false
		}
		c.word(src[s.i:end])
		s.i = end
		operand = true
	case mayStartUTF8(b):
		return false
	default:
		// Other ASCII is an invalid character, and any other byte a
		// broken one: a token on its own either way.
		s.i++
	}
	s.operand = operand
	return true
}

func (s *nestScanner) number() {
	src := s.src
	for s.i < len(src) {
		b := src[s.i]
		switch {
		case isDigit(b):
			s.i++
		case b == '.' && s.i+1 < len(src) && isDigit(src[s.i+1]):
			s.i += 2
		case (b == 'e' || b == 'E') && s.i+1 < len(src) && isDigit(src[s.i+1]):
			s.i += 2
		case (b == 'e' || b == 'E') && s.i+2 < len(src) && (src[s.i+1] == '+' || src[s.i+1] == '-') && isDigit(src[s.i+2]):
			s.i += 3
		default:
			return
		}
	}
}

// heredocStart reads <<MARKER or <<-MARKER and its newline, and reports
// whether there was one. A marker that reaches a byte outside ASCII is
// left for the lexer: scanHCL stops there.
func (s *nestScanner) heredocStart() bool {
	src := s.src
	j := s.i + 2
	if j < len(src) && src[j] == '-' {
		j++
	}
	k := j
	for k < len(src) && isIdentByte(src[k]) {
		k++
	}
	if k < len(src) && mayStartUTF8(src[k]) {
		s.utf8 = true
		return true
	}
	if k == j || isDigit(src[j]) || src[j] == '-' {
		return false
	}
	nl := k
	if nl < len(src) && src[nl] == '\r' {
		nl++
	}
	if nl >= len(src) || src[nl] != '\n' {
		return false
	}
	s.count.push(nestFrame{kind: nestHeredoc, marker: src[j:k], lineStart: true})
	s.i = nl
	s.newline()
	s.i = nl + 1
	return true
}

// quoted reads one step of a quoted template.
func (s *nestScanner) quoted() {
	switch b := s.src[s.i]; b {
	case '"':
		s.count.pop()
		s.operand = true
		s.i++
	case '\\':
		s.i++
		if s.i < len(s.src) && s.src[s.i] != '\n' && s.src[s.i] != '\r' {
			s.i++
		}
	case '\n':
		s.newline()
		s.i++
	case '$', '%':
		s.templateSequence(b)
	default:
		s.i++
	}
}

// heredoc reads one step of a heredoc template.
func (s *nestScanner) heredoc() {
	src := s.src
	t := s.count.top()
	if t.lineStart {
		// The lexer reads bytes that are not UTF-8 on their own, without
		// ending the start of the line.
		for s.i < len(src) && src[s.i] >= utf8.RuneSelf && lexerRuneLen(src[s.i:]) == 0 {
			s.i++
		}
		if s.i == len(src) {
			return
		}
		t.lineStart = false
		if n := bytes.IndexByte(src[s.i:], '\n'); n >= 0 && bytes.Equal(bytes.TrimSpace(src[s.i:s.i+n]), t.marker) {
			// The newline after the marker ends the line of the
			// expression the heredoc is in.
			s.count.pop()
			s.operand = true
			s.i += n
			return
		}
	}
	switch b := src[s.i]; b {
	case '\n':
		s.newline()
		t.lineStart = true
		s.i++
	case '$', '%':
		s.templateSequence(b)
	default:
		s.i++
	}
}

// templateSequence reads a $ or % in a template: ${ and %{ open a
// sequence, $${ and %%{ are escapes for their literal text.
func (s *nestScanner) templateSequence(b byte) {
	src, i := s.src, s.i
	switch {
	case i+1 < len(src) && src[i+1] == '{':
		s.count.push(nestFrame{kind: nestInterp, control: b == '%'})
		s.i += 2
		if s.i < len(src) && src[s.i] == '~' {
			s.i++
		}
		s.operand = false
	case i+2 < len(src) && src[i+1] == b && src[i+2] == '{':
		s.i += 3
	default:
		s.i++
	}
}

func (s *nestScanner) newline() {
	s.line++
	s.lineStart = s.i + 1
}

// countTokens counts HCL native syntax from the lexer's tokens, as
// nestScanner counts it from bytes.
func countTokens(filename string, src []byte) *nestCount {
	toks, _ := hclsyntax.LexConfig(src, filename, hcl.InitialPos)
	c := &nestCount{}
	var tok hclsyntax.Token
	c.at = func() hcl.Range { return tok.Range }
	c.frames = append(c.frames, nestFrame{kind: nestTop})
	operand := false
	for i := 0; i < len(toks) && c.err == nil; i++ {
		tok = toks[i]
		wasOperand := operand
		operand = false
		switch tok.Type {
		case hclsyntax.TokenOBrace:
			c.push(nestFrame{kind: nestBrace})
		case hclsyntax.TokenOBrack:
			if wasOperand {
				c.addOp()
			}
			c.push(nestFrame{kind: nestBrack})
		case hclsyntax.TokenOParen:
			c.push(nestFrame{kind: nestParen})
		case hclsyntax.TokenOQuote:
			c.push(nestFrame{kind: nestQuote})
		case hclsyntax.TokenOHeredoc:
			c.push(nestFrame{kind: nestHeredoc})
		case hclsyntax.TokenTemplateInterp, hclsyntax.TokenTemplateControl:
			c.push(nestFrame{kind: nestInterp, control: tok.Type == hclsyntax.TokenTemplateControl})
		case hclsyntax.TokenCParen, hclsyntax.TokenCBrack:
			want := nestParen
			if tok.Type == hclsyntax.TokenCBrack {
				want = nestBrack
			}
			if c.top().kind == want {
				c.pop()
				operand = true
			}
		case hclsyntax.TokenCBrace, hclsyntax.TokenTemplateSeqEnd:
			operand = !c.closeBrace()
		case hclsyntax.TokenCQuote, hclsyntax.TokenCHeredoc:
			if k := c.top().kind; k == nestQuote || k == nestHeredoc {
				c.pop()
				operand = true
			}
		case hclsyntax.TokenIdent:
			c.word(tok.Bytes)
			operand = true
		case hclsyntax.TokenNumberLit:
			operand = true
		case hclsyntax.TokenNewline:
			c.newline()
		case hclsyntax.TokenComment:
			if bytes.HasSuffix(tok.Bytes, []byte("\n")) {
				c.newline()
			}
		case hclsyntax.TokenComma:
			c.endExpr()
		case hclsyntax.TokenDot:
			if wasOperand {
				c.addOp()
			}
		case hclsyntax.TokenPlus, hclsyntax.TokenMinus, hclsyntax.TokenStar, hclsyntax.TokenSlash,
			hclsyntax.TokenPercent, hclsyntax.TokenBang, hclsyntax.TokenQuestion,
			hclsyntax.TokenEqualOp, hclsyntax.TokenNotEqual, hclsyntax.TokenLessThan, hclsyntax.TokenGreaterThan,
			hclsyntax.TokenLessThanEq, hclsyntax.TokenGreaterThanEq, hclsyntax.TokenAnd, hclsyntax.TokenOr,
			hclsyntax.TokenBitwiseAnd, hclsyntax.TokenBitwiseOr:
			c.addOp()
		}
	}
	return c
}

// lexerRuneLen is the length of the UTF-8 sequence at the start of b as
// the HCL lexer reads UTF-8 (lead byte and continuation bytes, without
// Go's checks for overlong forms and surrogates), or 0 when it reads the
// first byte as broken.
func lexerRuneLen(b []byte) int {
	var n int
	switch c := b[0]; {
	case c < 0x80:
		return 1
	case c >= 0xC0 && c <= 0xDF:
		n = 2
	case c >= 0xE0 && c <= 0xEF:
		n = 3
	case c >= 0xF0 && c <= 0xF7:
		n = 4
	default:
		return 0
	}
	if len(b) < n {
		return 0
	}
	for _, c := range b[1:n] {
		if c < 0x80 || c > 0xBF {
			return 0
		}
	}
	return n
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }

// isIdentByte reports whether b may be part of an identifier in ASCII:
// letters, digits, _ and -.
func isIdentByte(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || isDigit(b) || b == '_' || b == '-'
}

// mayStartUTF8 reports whether b is a byte with which the lexer's Unicode
// tables may start a character of an identifier.
func mayStartUTF8(b byte) bool { return b >= 0xC2 && b <= 0xF4 }
