package jobs

import (
	"bytes"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
)

// Format returns src in canonical layout: indentation, spacing and aligned
// equals signs as hclwrite produces them, LF line endings, trailing blank
// lines trimmed and one final newline. It changes whitespace only and
// accepts source with syntax errors (check with CheckSyntax first to refuse
// those).
func Format(src []byte) []byte {
	out := hclwrite.Format(bytes.ReplaceAll(src, []byte("\r\n"), []byte("\n")))
	out = bytes.TrimRight(out, " \t\r\n")
	if len(out) == 0 {
		return []byte{}
	}
	return append(out, '\n')
}

// CheckSyntax parses src as HCL native syntax and returns its syntax
// errors; it does not decode the job schema.
func CheckSyntax(filename string, src []byte) hcl.Diagnostics {
	if d := checkNesting(filename, src, scanHCL); d != nil {
		return hcl.Diagnostics{d}
	}
	_, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	return diags
}
