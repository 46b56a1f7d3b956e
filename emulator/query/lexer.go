package query

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

type tokKind uint8

const (
	tEOF    tokKind = iota
	tIdent          // bare name or keyword
	tQIdent         // [[escaped name]]
	tNumber
	tString
	tStar
	tComma
	tDot
	tLParen
	tRParen
	tLBrack
	tRBrack
	tPlus
	tMinus
	tSlash
	tPercent
	tEq
	tNe
	tLt
	tGt
	tLe
	tGe
)

// token is one lexeme. text is the raw source; str holds the decoded string
// or name and num the value of a number.
type token struct {
	kind     tokKind
	pos, end int
	text     string
	str      string
	num      float64
}

// is reports whether t is the keyword kw (given in upper case).
func (t token) is(kw string) bool {
	return t.kind == tIdent && strings.EqualFold(t.text, kw)
}

// reserved reports whether a bare name is a keyword of the language and so
// cannot be used as a property name without [[ ]] escaping. ORDER is listed
// although ORDER BY is not supported, so that it is reported as such.
func reserved(name string) bool {
	switch strings.ToUpper(name) {
	case "SELECT", "FROM", "WHERE", "GROUP", "BY", "ORDER", "AS", "AND", "OR", "NOT",
		"IN", "NIN", "TOP", "TRUE", "FALSE", "NULL", "UNDEFINED":
		return true
	}
	return false
}

// lex splits src into tokens, ending with tEOF.
func lex(src string) ([]token, error) {
	toks := make([]token, 0, len(src)/3+1)
	i := 0
	for {
		for i < len(src) && isSpace(src[i]) {
			i++
		}
		if i >= len(src) {
			return append(toks, token{kind: tEOF, pos: i, end: i}), nil
		}
		tok, err := lexOne(src, i)
		if err != nil {
			return nil, err
		}
		toks = append(toks, tok)
		i = tok.end
	}
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isIdentStart(r rune) bool {
	return r == '_' || r == '$' || unicode.IsLetter(r)
}

func isIdentPart(r rune) bool {
	return isIdentStart(r) || unicode.IsDigit(r)
}

func lexOne(src string, i int) (token, error) {
	c := src[i]
	switch {
	case c == '[' && strings.HasPrefix(src[i:], "[["):
		if tok, ok := lexEscapedName(src, i); ok {
			return tok, nil
		}
		return token{kind: tLBrack, pos: i, end: i + 1, text: "["}, nil
	case isDigit(c):
		return lexNumber(src, i)
	case c == '\'' || c == '"':
		return lexString(src, i)
	}
	r, size := utf8.DecodeRuneInString(src[i:])
	if isIdentStart(r) {
		j := i + size
		for j < len(src) {
			r, size := utf8.DecodeRuneInString(src[j:])
			if !isIdentPart(r) {
				break
			}
			j += size
		}
		return token{kind: tIdent, pos: i, end: j, text: src[i:j], str: src[i:j]}, nil
	}
	punct := func(k tokKind, n int) (token, error) {
		return token{kind: k, pos: i, end: i + n, text: src[i : i+n]}, nil
	}
	next := byte(0)
	if i+1 < len(src) {
		next = src[i+1]
	}
	switch c {
	case '*':
		return punct(tStar, 1)
	case ',':
		return punct(tComma, 1)
	case '.':
		return punct(tDot, 1)
	case '(':
		return punct(tLParen, 1)
	case ')':
		return punct(tRParen, 1)
	case '[':
		return punct(tLBrack, 1)
	case ']':
		return punct(tRBrack, 1)
	case '+':
		return punct(tPlus, 1)
	case '-':
		return punct(tMinus, 1)
	case '/':
		return punct(tSlash, 1)
	case '%':
		return punct(tPercent, 1)
	case '=':
		if next == '=' {
			return token{}, newError(src, i, i+2, true, "use = to compare for equality")
		}
		return punct(tEq, 1)
	case '!':
		if next == '=' {
			return punct(tNe, 2)
		}
		return token{}, newError(src, i, i+1, true, "unexpected '!'; use NOT, != or <>")
	case '<':
		switch next {
		case '=':
			return punct(tLe, 2)
		case '>':
			return punct(tNe, 2)
		}
		return punct(tLt, 1)
	case '>':
		if next == '=' {
			return punct(tGe, 2)
		}
		return punct(tGt, 1)
	case '&':
		if next == '&' {
			return token{}, newError(src, i, i+2, true, "use AND instead of &&")
		}
	case '|':
		if next == '|' {
			return token{}, newError(src, i, i+2, true, "use OR instead of ||")
		}
	}
	return token{}, newError(src, i, i+size, true, "unexpected character %q", r)
}

// lexEscapedName reads [[name]]. It declines (ok false) when the brackets
// do not enclose a plain name, so that a nested array constant such as
// [['a','b']] still lexes as two '[' tokens.
func lexEscapedName(src string, i int) (token, bool) {
	body := src[i+2:]
	n := strings.Index(body, "]]")
	if n <= 0 {
		return token{}, false
	}
	name := body[:n]
	if strings.ContainsAny(name, "[]'\",. \t\r\n\f\v") {
		return token{}, false
	}
	end := i + 2 + n + 2
	return token{kind: tQIdent, pos: i, end: end, text: src[i:end], str: name}, true
}

func lexNumber(src string, i int) (token, error) {
	j := i
	var v float64
	if src[i] == '0' && i+1 < len(src) && (src[i+1] == 'x' || src[i+1] == 'X') {
		j = i + 2
		for j < len(src) && isHex(src[j]) {
			j++
		}
		if j == i+2 {
			return token{}, newError(src, i, j, true, "hexadecimal number has no digits")
		}
		u, err := strconv.ParseUint(src[i+2:j], 16, 64)
		if err != nil {
			return token{}, newError(src, i, j, true, "number out of range")
		}
		v = float64(u)
	} else {
		for j < len(src) && isDigit(src[j]) {
			j++
		}
		if j+1 < len(src) && src[j] == '.' && isDigit(src[j+1]) {
			j++
			for j < len(src) && isDigit(src[j]) {
				j++
			}
		}
		if j < len(src) && (src[j] == 'e' || src[j] == 'E') {
			k := j + 1
			if k < len(src) && (src[k] == '+' || src[k] == '-') {
				k++
			}
			if k < len(src) && isDigit(src[k]) {
				for k < len(src) && isDigit(src[k]) {
					k++
				}
				j = k
			}
		}
		f, err := strconv.ParseFloat(src[i:j], 64)
		if err != nil {
			return token{}, newError(src, i, j, true, "number out of range")
		}
		v = f
	}
	if j < len(src) {
		if r, _ := utf8.DecodeRuneInString(src[j:]); isIdentPart(r) {
			k := j
			for k < len(src) {
				r, size := utf8.DecodeRuneInString(src[k:])
				if !isIdentPart(r) {
					break
				}
				k += size
			}
			return token{}, newError(src, i, k, true, "invalid number; names that start with a digit must be escaped as [[name]]")
		}
	}
	return token{kind: tNumber, pos: i, end: j, text: src[i:j], num: v}, nil
}

func isHex(c byte) bool {
	return isDigit(c) || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}

// lexString reads a '…' or "…" literal with the escapes \' \" \\ \/ \b \f
// \n \r \t and \uXXXX (UTF-16 surrogate pairs are joined).
func lexString(src string, i int) (token, error) {
	quote := src[i]
	var b strings.Builder
	j := i + 1
	plain := j
	for j < len(src) {
		c := src[j]
		if c == quote {
			b.WriteString(src[plain:j])
			return token{kind: tString, pos: i, end: j + 1, text: src[i : j+1], str: b.String()}, nil
		}
		if c != '\\' {
			j++
			continue
		}
		b.WriteString(src[plain:j])
		if j+1 >= len(src) {
			break
		}
		esc := src[j+1]
		switch esc {
		case '\'', '"', '\\', '/':
			b.WriteByte(esc)
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'u':
			r, n, ok := unicodeEscape(src[j:])
			if !ok {
				return token{}, newError(src, j, min(j+6, len(src)), true, `invalid \u escape; want \u followed by four hex digits`)
			}
			b.WriteRune(r)
			j += n
			plain = j
			continue
		default:
			_, size := utf8.DecodeRuneInString(src[j+1:])
			return token{}, newError(src, j, j+1+size, true, `unknown escape sequence; use \' \" \\ or \uXXXX`)
		}
		j += 2
		plain = j
	}
	return token{}, newError(src, i, len(src), true, "unterminated string; add the closing %c", quote)
}

// unicodeEscape decodes \uXXXX at the start of s, joining a following low
// surrogate escape. It returns the rune and the bytes consumed.
func unicodeEscape(s string) (rune, int, bool) {
	hex4 := func(s string) (rune, bool) {
		if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
			return 0, false
		}
		u, err := strconv.ParseUint(s[2:6], 16, 32)
		if err != nil {
			return 0, false
		}
		return rune(u), true
	}
	r, ok := hex4(s)
	if !ok {
		return 0, 0, false
	}
	if utf16.IsSurrogate(r) {
		if r2, ok := hex4(s[6:]); ok {
			if d := utf16.DecodeRune(r, r2); d != unicode.ReplacementChar {
				return d, 12, true
			}
		}
		return unicode.ReplacementChar, 6, true
	}
	return r, 6, true
}
