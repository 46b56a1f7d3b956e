package query

import (
	"math"
	"testing"
)

// TestPathCompare_AgreesWithGeneric checks the "path op constant" fast path
// against the general comparison rules, in both operand orders.
func TestPathCompare_AgreesWithGeneric(t *testing.T) {
	docs := append(fixture(t), map[string]any{
		"deviceId": "go-typed",
		"tags":     map[string]any{"site": 7, "floor": int64(1), "temp": math.NaN(), "ring": math.Inf(1)},
	})
	paths := []string{"tags.site", "tags.floor", "tags.ring", "tags.temp", "tags.loc", "tags.missing", "properties.reported.temp", "version"}
	consts := []string{"'north'", "'2'", "1", "20.5", "-4", "null", "true", "undefined", "[1]"}
	ops := []string{"=", "!=", "<", ">", "<=", ">="}
	c := &compiler{source: SourceDevices}
	for _, p := range paths {
		for _, k := range consts {
			for _, op := range ops {
				fast := mustParse(t, "SELECT * FROM devices WHERE "+p+" "+op+" "+k)
				flipped := mustParse(t, "SELECT * FROM devices WHERE "+k+" "+mirrorText(op)+" "+p)
				kv := constValue(t, k)
				r, err := c.path(parsePathText(t, p))
				if err != nil {
					t.Fatal(err)
				}
				opKind := opKind(t, op)
				for _, d := range docs {
					want := compareValues(opKind, r.eval(d), kv)
					if got := fast.where(d); got != want {
						t.Errorf("%s %s %s on %v: got %v, want %v", p, op, k, d["deviceId"], got, want)
					}
					if got := flipped.where(d); got != want {
						t.Errorf("%s %s %s on %v: got %v, want %v", k, mirrorText(op), p, d["deviceId"], got, want)
					}
				}
			}
		}
	}
}

func mirrorText(op string) string {
	switch op {
	case "<":
		return ">"
	case ">":
		return "<"
	case "<=":
		return ">="
	case ">=":
		return "<="
	}
	return op
}

func opKind(tb testing.TB, op string) tokKind {
	tb.Helper()
	toks, err := lex(op)
	if err != nil || len(toks) != 2 {
		tb.Fatalf("lex %q: %v", op, err)
	}
	return toks[0].kind
}

func constValue(tb testing.TB, text string) value {
	tb.Helper()
	p, err := newParser(text)
	if err != nil {
		tb.Fatal(err)
	}
	x, err := p.parseCondition()
	if err != nil {
		tb.Fatal(err)
	}
	c, ok := x.(*constNode)
	if !ok {
		tb.Fatalf("%q is %T, want a constant", text, x)
	}
	return c.v
}

func parsePathText(tb testing.TB, text string) *pathNode {
	tb.Helper()
	p, err := newParser(text)
	if err != nil {
		tb.Fatal(err)
	}
	n, err := p.parsePath()
	if err != nil {
		tb.Fatal(err)
	}
	return n
}
