package simulator

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
)

// redactingHandler hands records on with secrets taken out of their text.
// Devices are given signed URLs (a firmware image behind a SAS, say) and
// the clients' errors may quote a URL or a token; the fleet's logs keep
// neither a URL's query nor a signature, whoever wrote the record.
type redactingHandler struct{ next slog.Handler }

func (h redactingHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h redactingHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, redact(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(redactAttr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h redactingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	clean := make([]slog.Attr, len(as))
	for i, a := range as {
		clean[i] = redactAttr(a)
	}
	return redactingHandler{h.next.WithAttrs(clean)}
}

func (h redactingHandler) WithGroup(name string) slog.Handler {
	return redactingHandler{h.next.WithGroup(name)}
}

// redactAttr returns a with secrets taken out of its value. A value that
// is not text (an error, a URL, a slice) is judged by how it prints and
// replaced by its redacted text only when that differs.
func redactAttr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		if s := redact(v.String()); s != v.String() {
			return slog.String(a.Key, s)
		}
	case slog.KindAny:
		text := fmt.Sprint(v.Any())
		if s := redact(text); s != text {
			return slog.String(a.Key, s)
		}
	case slog.KindGroup:
		group := v.Group()
		clean := make([]slog.Attr, len(group))
		for i, g := range group {
			clean[i] = redactAttr(g)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(clean...)}
	}
	return slog.Attr{Key: a.Key, Value: v}
}

// redacted stands for what was taken out.
const redacted = "REDACTED"

// secretMarkers start a value that is a secret, or part of a SAS token, in
// text outside a URL (a connection string, a token in an error); matched
// without regard to ASCII case.
var secretMarkers = [...]string{"sig=", "se=", "skn=", "sharedaccesskey=", "sharedaccesssignature="}

// redact returns s with the query (and fragment) of every URL in it
// replaced by REDACTED, and the value after each secret marker too.
func redact(s string) string {
	if !strings.Contains(s, "=") && !strings.Contains(s, "://") {
		return s
	}
	return redactMarkers(redactURLQueries(s))
}

// redactURLQueries replaces what follows the '?' or '#' of each URL: the
// query is where a SAS URL keeps its signature.
func redactURLQueries(s string) string {
	var b strings.Builder
	for {
		i := strings.Index(s, "://")
		if i < 0 {
			break
		}
		end := i + 3
		for end < len(s) && !endsURL(s[end]) {
			end++
		}
		if q := strings.IndexAny(s[i:end], "?#"); q >= 0 {
			b.WriteString(s[:i+q+1])
			b.WriteString(redacted)
		} else {
			b.WriteString(s[:end])
		}
		s = s[end:]
	}
	b.WriteString(s)
	return b.String()
}

// endsURL reports whether c cannot be part of a URL as text quotes it.
func endsURL(c byte) bool {
	return c <= ' ' || c == '"' || c == '\'' || c == '`' || c == '<' || c == '>'
}

// redactMarkers replaces the value after each secret marker; the value ends
// at ';', '&', a quote, white space or the end of s.
func redactMarkers(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		n := markerAt(s, i)
		if n == 0 {
			b.WriteByte(s[i])
			i++
			continue
		}
		b.WriteString(s[i : i+n])
		i += n
		j := i
		for j < len(s) && !endsValue(s[j]) {
			j++
		}
		if j > i && s[i:j] != redacted {
			b.WriteString(redacted)
		} else {
			b.WriteString(s[i:j])
		}
		i = j
	}
	return b.String()
}

// markerAt returns the length of the secret marker at s[i], or 0. A marker
// inside a word ("case=", "xsig=") is none.
func markerAt(s string, i int) int {
	if i > 0 && isWordByte(s[i-1]) {
		return 0
	}
	for _, m := range secretMarkers {
		if len(s)-i >= len(m) && strings.EqualFold(s[i:i+len(m)], m) {
			return len(m)
		}
	}
	return 0
}

func isWordByte(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func endsValue(c byte) bool {
	return c == ';' || c == '&' || c <= ' ' || c == '"' || c == '\''
}
