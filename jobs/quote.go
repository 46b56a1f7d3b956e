package jobs

import (
	"fmt"
	"strings"
)

// QuoteString returns s as an IoT Hub query string literal in single
// quotes, escaping backslashes, quotes and control characters, so that any
// device id can be put in a condition such as deviceId IN ['a', 'b'].
func QuoteString(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('\'')
	for _, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\'':
			b.WriteString(`\'`)
		case r == '"':
			b.WriteString(`\"`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('\'')
	return b.String()
}
