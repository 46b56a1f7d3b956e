package query

import (
	"errors"
	"strings"
	"testing"
)

// parseError parses text and returns the *Error it must fail with.
func parseError(tb testing.TB, text string) *Error {
	tb.Helper()
	_, err := Parse(text)
	if err == nil {
		tb.Fatalf("Parse(%q): got no error, want one", text)
	}
	var qe *Error
	if !errors.As(err, &qe) {
		tb.Fatalf("Parse(%q): got %T (%v), want *Error", text, err, err)
	}
	return qe
}

func TestParse_ErrorString(t *testing.T) {
	tests := []struct {
		text string
		want string
	}{
		{"SELECT * FROM devices WHER tags.x = 1",
			`syntax error at line 1, column 23 near "WHER": expected WHERE, GROUP BY or end of query`},
		{"SELECT * FROM devices WHERE",
			`syntax error at line 1, column 28 at end of query: unexpected end of query: expected an expression`},
		{"SELECT * FROM devices WHERE COUNT() > 1",
			`invalid query at line 1, column 29 near "COUNT()": aggregate function COUNT is not allowed in WHERE`},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			if got := parseError(t, tt.text).Error(); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestParse_Errors(t *testing.T) {
	tests := []struct {
		name       string
		text       string
		line, col  int
		wantMsg    string // substring of Msg
		wantSyntax bool
	}{
		{"empty", "", 1, 1, "expected SELECT", true},
		{"misspelt select", "SELEC * FROM devices", 1, 1, "expected SELECT", true},
		{"missing from", "SELECT *", 1, 9, "expected FROM", true},
		{"star with items", "SELECT *, deviceId FROM devices", 1, 9, "SELECT * cannot be combined", true},
		{"item after star", "SELECT deviceId, * FROM devices", 1, 18, "SELECT * cannot be combined", true},
		{"unknown collection", "SELECT * FROM things", 1, 15, `unknown collection "things"`, false},
		{"unknown sub-collection", "SELECT * FROM devices.twins", 1, 15, `unknown collection "devices.twins"`, false},
		{"starts_with", "SELECT * FROM devices WHERE STARTS_WITH(deviceId, 'a')", 1, 29,
			"STARTS_WITH is not supported in twin queries; use STARTSWITH", true},
		{"ends_with any case", "SELECT * FROM devices WHERE ends_with(deviceId, 'a')", 1, 29,
			"ENDS_WITH is not supported in twin queries; use ENDSWITH", true},
		{"unknown function", "SELECT * FROM devices WHERE Foo(deviceId)", 1, 29, "unknown function Foo", true},
		{"wrong arity", "SELECT * FROM devices WHERE STARTSWITH(deviceId)", 1, 29, "STARTSWITH takes 2 to 3 arguments, got 1", true},
		{"count arity", "SELECT COUNT(1, 2) FROM devices", 1, 8, "COUNT takes 0 to 1 arguments, got 2", true},
		{"is_defined arity", "SELECT * FROM devices WHERE IS_DEFINED()", 1, 29, "IS_DEFINED takes 1 argument, got 0", true},
		{"reserved word as key", "SELECT * FROM devices WHERE tags.group = 'a'", 1, 34,
			"group is a reserved word; escape the property name as [[group]]", true},
		{"reserved word as root", "SELECT * FROM devices WHERE group = 'a'", 1, 29, "found the keyword GROUP", true},
		{"reserved alias", "SELECT deviceId AS group FROM devices", 1, 20, "group is a reserved word; escape the alias as [[group]]", true},
		{"missing alias", "SELECT deviceId AS FROM devices", 1, 20, "expected a name after AS", true},
		{"unterminated string", "SELECT * FROM devices WHERE tags.site = 'north", 1, 41, "unterminated string", true},
		{"double equals", "SELECT * FROM devices WHERE tags.site == 'north'", 1, 39, "use = to compare", true},
		{"ampersands", "SELECT * FROM devices WHERE tags.a = 1 && tags.b = 2", 1, 40, "use AND", true},
		{"pipes", "SELECT * FROM devices WHERE tags.a = 1 || tags.b = 2", 1, 40, "use OR", true},
		{"bang", "SELECT * FROM devices WHERE !tags.a", 1, 29, "use NOT", true},
		{"in with parentheses", "SELECT * FROM devices WHERE deviceId IN ('a','b')", 1, 41, "expected an array constant after IN", true},
		{"in with a path element", "SELECT * FROM devices WHERE deviceId IN ['a', tags.x]", 1, 47, "array elements must be constants", true},
		{"unclosed array", "SELECT * FROM devices WHERE deviceId IN ['a' 'b']", 1, 46, "expected ',' or ']'", true},
		{"aggregate in expression", "SELECT COUNT() + 1 AS n FROM devices", 1, 8, "must be a whole select item", false},
		{"aggregate inside function", "SELECT STARTSWITH(MAX(deviceId), 'a') AS n FROM devices", 1, 19, "must be a whole select item", false},
		{"aggregate of aggregate", "SELECT SUM(COUNT()) AS n FROM devices", 1, 12, "must be a whole select item", false},
		{"aggregates and plain values", "SELECT deviceId, COUNT() FROM devices", 1, 8, "cannot mix aggregates and plain values", false},
		{"non-key in group by", "SELECT deviceId, COUNT() AS n FROM devices GROUP BY status", 1, 8, "must be aggregates or GROUP BY keys", false},
		{"star with group by", "SELECT * FROM devices GROUP BY status", 1, 32, "SELECT * cannot be used with GROUP BY", false},
		{"group without by", "SELECT COUNT() FROM devices GROUP status", 1, 35, "expected BY after GROUP", true},
		{"group by expression", "SELECT COUNT() FROM devices GROUP BY COUNT()", 1, 38, "expected a property path after GROUP BY", true},
		{"duplicate column", "SELECT tags.site, properties.reported.site FROM devices", 1, 19, `duplicate column name "site"`, false},
		{"duplicate aggregate name", "SELECT SUM(version), SUM(tags.floor) FROM devices", 1, 22, `duplicate column name "sum"`, false},
		{"top without number", "SELECT TOP x * FROM devices", 1, 12, "expected a whole number after TOP", true},
		{"fractional top", "SELECT TOP 1.5 * FROM devices", 1, 12, "expected a whole number after TOP", true},
		{"negative top", "SELECT TOP -1 * FROM devices", 1, 12, "expected a whole number after TOP", true},
		{"order by", "SELECT * FROM devices ORDER BY deviceId", 1, 23, "ORDER BY is not supported", true},
		{"second where", "SELECT * FROM devices WHERE tags.x = 1 WHERE tags.y = 2", 1, 40, "only one WHERE", true},
		{"junk after where", "SELECT * FROM devices WHERE tags.x = 1 tags.y", 1, 40, "expected an operator, GROUP BY or end of query", true},
		{"junk after group by", "SELECT COUNT() FROM devices GROUP BY status x", 1, 45, "expected ',' or end of query", true},
		{"unclosed parenthesis", "SELECT * FROM devices WHERE (tags.x = 1", 1, 40, "expected ')' to close the '(' at line 1, column 29", true},
		{"unknown escape", `SELECT * FROM devices WHERE tags.x = 'a\qb'`, 1, 40, "unknown escape sequence", true},
		{"short unicode escape", `SELECT * FROM devices WHERE tags.x = '\u12'`, 1, 39, `invalid \u escape`, true},
		{"letters after number", "SELECT * FROM devices WHERE tags.x = 12abc", 1, 38, "invalid number", true},
		{"empty hex", "SELECT * FROM devices WHERE tags.x = 0x", 1, 38, "hexadecimal number has no digits", true},
		{"huge number", "SELECT * FROM devices WHERE tags.x = 1e999", 1, 38, "number out of range", true},
		{"stray character", "SELECT * FROM devices WHERE tags.x = #", 1, 38, "unexpected character '#'", true},
		{"numeric key", "SELECT * FROM devices WHERE tags.1 = 1", 1, 34, "expected a property name after '.'", true},
		{"bad index", "SELECT * FROM devices WHERE tags.list[-1] = 1", 1, 39, "expected a quoted property name or an array index", true},
		{"multi-line", "SELECT *\nFROM devices\nWHERE tags.x = = 1", 3, 16, "expected an expression", true},
		{"columns count characters", "SELECT * FROM devices WHERE tags.ü = 'é' AND #", 1, 46, "unexpected character", true},
		{"trailing and", "SELECT * FROM devices WHERE tags.x = 1 AND", 1, 43, "unexpected end of query", true},
		{"from after comma", "SELECT deviceId, FROM devices", 1, 18, "expected *, a property path or an expression before FROM", true},
		{"missing comma", "SELECT deviceId status FROM devices", 1, 17, "expected an operator, ',', AS or FROM", true},
		{"member of expression", "SELECT * FROM devices WHERE (tags).x = 1", 1, 35, "expected an operator", true},

		// devices.jobs
		{"jobs projection", "SELECT deviceId FROM devices.jobs", 1, 8, "devices.jobs queries support only SELECT *", false},
		{"jobs aggregate", "SELECT COUNT() AS n FROM devices.jobs", 1, 8, "devices.jobs queries support only SELECT *", false},
		{"jobs twin condition", "SELECT * FROM devices.jobs WHERE deviceId = 'a'", 1, 34, "devices.jobs queries can only refer to devices.jobs.*", false},
		{"jobs prefix only", "SELECT * FROM devices.jobs WHERE devices.jobs = 'a'", 1, 34, "devices.jobs queries can only refer to devices.jobs.*", false},
		{"jobs group by", "SELECT * FROM devices.jobs GROUP BY devices.jobs.status", 1, 37, "devices.jobs queries do not support GROUP BY", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := parseError(t, tt.text)
			if e.Line != tt.line || e.Col != tt.col {
				t.Errorf("position: got line %d, column %d, want line %d, column %d (%v)", e.Line, e.Col, tt.line, tt.col, e)
			}
			if !strings.Contains(e.Msg, tt.wantMsg) {
				t.Errorf("message: got %q, want it to contain %q", e.Msg, tt.wantMsg)
			}
			if e.Syntax != tt.wantSyntax {
				t.Errorf("Syntax: got %v, want %v (%v)", e.Syntax, tt.wantSyntax, e)
			}
			if e.Pos < 0 || e.Pos > len(tt.text) {
				t.Errorf("Pos: got %d, want within [0, %d]", e.Pos, len(tt.text))
			}
		})
	}
}

func TestParse_ErrorPosIsByteOffset(t *testing.T) {
	text := "SELECT * FROM devices WHERE tags.ü = 'é' AND #"
	e := parseError(t, text)
	if want := strings.Index(text, "#"); e.Pos != want {
		t.Errorf("Pos: got %d, want %d", e.Pos, want)
	}
	if e.Near != "#" {
		t.Errorf("Near: got %q, want %q", e.Near, "#")
	}
}

func TestParse_Limits(t *testing.T) {
	pad := func(s string, n int) string { return s + strings.Repeat(" ", n-len(s)) }
	base := "SELECT * FROM devices WHERE deviceId = 'pump-1'"
	tests := []struct {
		name    string
		text    string
		wantErr string // "" when the query must parse
	}{
		{"exactly the length limit", pad(base, MaxLength), ""},
		{"one over the length limit", pad(base, MaxLength+1), "the limit is 8192"},
		{"multi-byte characters count once", pad(base+" AND tags.x != '"+strings.Repeat("é", 4000)+"'", MaxLength), ""},
		{"nesting at the limit", "SELECT * FROM devices WHERE " + strings.Repeat("(", MaxDepth-1) + "true" + strings.Repeat(")", MaxDepth-1), ""},
		{"parentheses too deep", "SELECT * FROM devices WHERE " + strings.Repeat("(", 300) + "true" + strings.Repeat(")", 300), "nested too deeply"},
		{"not too deep", "SELECT * FROM devices WHERE " + strings.Repeat("NOT ", 300) + "true", "nested too deeply"},
		{"signs too deep", "SELECT * FROM devices WHERE " + strings.Repeat("- ", 300) + "1 = 1", "nested too deeply"},
		{"arrays too deep", "SELECT * FROM devices WHERE deviceId IN " + strings.Repeat("[ ", 300) + strings.Repeat("] ", 300), "nested too deeply"},
		{"functions too deep", "SELECT * FROM devices WHERE " + strings.Repeat("IS_DEFINED(", 300) + "x" + strings.Repeat(")", 300), "nested too deeply"},
		{"unclosed parentheses flood", "SELECT * FROM devices WHERE " + strings.Repeat("(", 8000), "nested too deeply"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.text)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("got %v, want no error", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("got %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestParse_LongFlatExpressions checks that long generated conditions, which
// the depth limit must not reject, parse and evaluate.
func TestParse_LongFlatExpressions(t *testing.T) {
	docs := fixture(t)
	var or []string
	for i := range 300 {
		or = append(or, "deviceId = 'd"+strings.Repeat("x", i%5)+"'")
	}
	or = append(or, "deviceId = 'valve-1'")
	sum := "1" + strings.Repeat(" + 1", 1500)
	tests := []struct {
		name  string
		where string
		want  []string
	}{
		{"300 ORs", strings.Join(or, " OR "), []string{"valve-1"}},
		{"1500 additions", sum + " = 1501 AND deviceId = 'pump-2'", []string{"pump-2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, _ := execute(t, "SELECT * FROM devices WHERE "+tt.where, docs)
			if got := ids(t, rows); strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseCondition_Errors(t *testing.T) {
	tests := []struct {
		where   string
		col     int
		wantMsg string
	}{
		{"", 1, "empty condition"},
		{"   ", 4, "empty condition"},
		{"tags.site = ", 13, "unexpected end of query"},
		{"COUNT() > 1", 1, "not allowed in WHERE"},
		{"SELECT * FROM devices", 1, "found the keyword SELECT"},
		{"tags.site = 'north' GROUP BY tags.site", 21, "expected an operator or end of condition"},
		{"STARTS_WITH(deviceId, 'a')", 1, "use STARTSWITH"},
		{strings.Repeat("(", 300) + "true" + strings.Repeat(")", 300), 257, "nested too deeply"},
		{"deviceId = '" + strings.Repeat("x", MaxLength) + "'", MaxLength + 1, "the limit is 8192"},
	}
	for _, tt := range tests {
		name := tt.where
		if len(name) > 40 {
			name = name[:40]
		}
		t.Run(name, func(t *testing.T) {
			_, err := ParseCondition(tt.where)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("got %v, want *Error", err)
			}
			if e.Col != tt.col || !strings.Contains(e.Msg, tt.wantMsg) {
				t.Errorf("got column %d %q, want column %d containing %q", e.Col, e.Msg, tt.col, tt.wantMsg)
			}
		})
	}
}
