package jobs

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// lexedDepth is the deepest nesting of src by the HCL lexer's own tokens,
// counted as checkNesting counts it.
func lexedDepth(src []byte) int {
	toks, _ := hclsyntax.LexConfig(src, "x.hcl", hcl.InitialPos)
	type frame struct {
		kind       hclsyntax.TokenType
		directives int
	}
	stack := []frame{{}}
	depth, deepest := 0, 0
	push := func(k hclsyntax.TokenType) {
		stack = append(stack, frame{kind: k})
		depth++
		deepest = max(deepest, depth)
	}
	pop := func() {
		depth -= 1 + stack[len(stack)-1].directives
		stack = stack[:len(stack)-1]
	}
	for i, t := range toks {
		switch t.Type {
		case hclsyntax.TokenOBrace, hclsyntax.TokenOBrack, hclsyntax.TokenOParen,
			hclsyntax.TokenTemplateInterp, hclsyntax.TokenOQuote, hclsyntax.TokenOHeredoc:
			push(t.Type)
		case hclsyntax.TokenTemplateControl:
			push(t.Type)
			if i+1 < len(toks) && toks[i+1].Type == hclsyntax.TokenIdent {
				tmpl := &stack[len(stack)-2]
				switch string(toks[i+1].Bytes) {
				case "if", "for":
					tmpl.directives++
					depth++
					deepest = max(deepest, depth)
				case "endif", "endfor":
					if tmpl.directives > 0 {
						tmpl.directives--
						depth--
					}
				}
			}
		case hclsyntax.TokenCParen, hclsyntax.TokenCBrack:
			want := hclsyntax.TokenOParen
			if t.Type == hclsyntax.TokenCBrack {
				want = hclsyntax.TokenOBrack
			}
			if stack[len(stack)-1].kind == want {
				pop()
			}
		case hclsyntax.TokenCBrace, hclsyntax.TokenTemplateSeqEnd:
		find:
			for n := len(stack) - 1; n > 0; n-- {
				switch stack[n].kind {
				case hclsyntax.TokenOParen, hclsyntax.TokenOBrack:
					continue
				case hclsyntax.TokenOBrace, hclsyntax.TokenTemplateInterp, hclsyntax.TokenTemplateControl:
					for len(stack) > n {
						pop()
					}
				}
				break find
			}
		case hclsyntax.TokenCQuote, hclsyntax.TokenCHeredoc:
			if k := stack[len(stack)-1].kind; k == hclsyntax.TokenOQuote || k == hclsyntax.TokenOHeredoc {
				pop()
			}
		}
	}
	return deepest
}

func scannedDepth(src []byte) int {
	return countNesting("x.hcl", src, scanHCL).maxDepth
}

func nestingSeeds(tb testing.TB) [][]byte {
	tb.Helper()
	var seeds [][]byte
	for _, pattern := range []string{"testdata/*/*.hcl", "../examples/*.hcl", "../reliability/testdata/hostile/*.hcl"} {
		files, _ := filepath.Glob(pattern)
		for _, f := range files {
			src, err := os.ReadFile(f)
			if err != nil {
				tb.Fatal(err)
			}
			seeds = append(seeds, src)
		}
	}
	for _, s := range []string{
		`a = "${"${"${x}"}"}"`,
		"a = <<EOT\n${<<-X\n  in\n  X\n}\nEOT\n",
		"a = <<EOT\n  EOT\n",
		"a = <<EOT\nEOT",
		`a = "$${x} %%{y} $$${z} \" \\" # not a comment`,
		`a = "%{ if x }%{ for y in z }${y}%{ endfor }%{ else }no%{ endif }"`,
		"a = /* { [ */ 1\nb = /* unterminated { (",
		"a = {\n  b = [1, 2, { c = (3) }]\n}\n# { \n// [ \n",
		`a = "${ ( }" b = ")"`,
		`a = "~}${x~}"`,
		"block {\n  inner {\n    x = 1\n  }\n}\n",
		"a = <<EOT\r\nline\r\nEOT\r\n",
	} {
		seeds = append(seeds, []byte(s))
	}
	return seeds
}

func TestCheckNesting_matchesLexer(t *testing.T) {
	for i, src := range nestingSeeds(t) {
		if got, want := scannedDepth(src), lexedDepth(src); got != want {
			t.Errorf("seed %d: got depth %d, want %d (the lexer's)\n%s", i, got, want, src)
		}
	}
}

// FuzzCheckNesting checks that the scanner counts the nesting the HCL
// lexer sees, so that no input can hide nesting from it.
func FuzzCheckNesting(f *testing.F) {
	for _, src := range nestingSeeds(f) {
		f.Add(src)
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		c := countNesting("x.hcl", src, scanHCL)
		if want := lexedDepth(src); c.err == nil && c.maxDepth < want {
			t.Errorf("got depth %d, want at least %d (the lexer's)", c.maxDepth, want)
		}
	})
}
