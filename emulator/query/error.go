package query

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Error is the error returned for every query the package rejects, whether
// its text is malformed or it asks for something the language does not allow
// (an aggregate in WHERE, a projection on devices.jobs, …). The emulator
// answers it with 400 ArgumentInvalid; Error() is meant to be shown to the
// caller unchanged.
type Error struct {
	// Pos is the byte offset into the query text of the offending token.
	Pos int
	// Line and Col are 1-based; Col counts characters, not bytes.
	Line, Col int
	// Near is the text of the offending token, or "" at the end of the query.
	Near string
	// Msg says what was wrong or expected, without the position.
	Msg string
	// Syntax is true when the text itself is malformed, false when a
	// well-formed query uses the language in a way it does not allow.
	Syntax bool
}

// Error formats e as `syntax error at line 1, column 23 near "WHER": expected
// WHERE, GROUP BY or end of query` (or "invalid query" for non-syntax errors).
func (e *Error) Error() string {
	kind := "invalid query"
	if e.Syntax {
		kind = "syntax error"
	}
	near := "at end of query"
	if e.Near != "" {
		near = fmt.Sprintf("near %q", e.Near)
	}
	return fmt.Sprintf("%s at line %d, column %d %s: %s", kind, e.Line, e.Col, near, e.Msg)
}

// maxNear bounds the quoted token in messages so a long string literal does
// not swamp the explanation.
const maxNear = 40

// newError builds an *Error for the span [pos, end) of src.
func newError(src string, pos, end int, syntax bool, format string, args ...any) *Error {
	pos = min(max(pos, 0), len(src))
	end = min(max(end, pos), len(src))
	near := src[pos:end]
	if utf8.RuneCountInString(near) > maxNear {
		r := []rune(near)
		near = string(r[:maxNear]) + "…"
	}
	line, col := location(src, pos)
	return &Error{
		Pos:    pos,
		Line:   line,
		Col:    col,
		Near:   strings.TrimSpace(near),
		Msg:    fmt.Sprintf(format, args...),
		Syntax: syntax,
	}
}

// location turns a byte offset into a 1-based line and character column.
func location(src string, pos int) (line, col int) {
	line, col = 1, 1
	for _, r := range src[:pos] {
		if r == '\n' {
			line++
			col = 1
			continue
		}
		col++
	}
	return line, col
}
