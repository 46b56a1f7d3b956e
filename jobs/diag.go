package jobs

import (
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// decodeContent is body.Content with one addition: diagnostics about
// unsupported arguments and blocks also say what would be valid in that
// block, since the block is where the reader has to look.
func decodeContent(body hcl.Body, schema *hcl.BodySchema, where string) (*hcl.BodyContent, hcl.Diagnostics) {
	content, diags := body.Content(schema)
	for _, d := range diags {
		switch d.Summary {
		case "Unsupported argument", "Unsupported block type":
			d.Detail = strings.TrimSpace(d.Detail + " " + validHere(schema, where))
		}
	}
	return content, diags
}

func validHere(schema *hcl.BodySchema, where string) string {
	var attrs, blocks []string
	for _, a := range schema.Attributes {
		attrs = append(attrs, a.Name)
	}
	for _, b := range schema.Blocks {
		blocks = append(blocks, b.Type)
	}
	switch {
	case len(attrs) > 0 && len(blocks) > 0:
		return fmt.Sprintf("%s, the valid arguments are %s, and the valid blocks are %s.", where, orList(attrs), orList(blocks))
	case len(attrs) > 0:
		return fmt.Sprintf("%s, the valid arguments are %s.", where, orList(attrs))
	case len(blocks) > 0:
		return fmt.Sprintf("%s, the valid blocks are %s.", where, orList(blocks))
	}
	return ""
}

// orList renders names as `a, b or c` with each name quoted.
func orList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

func errorAt(r hcl.Range, summary, detail string) *hcl.Diagnostic {
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: r.Ptr()}
}

func errorfAt(r hcl.Range, summary, format string, args ...any) *hcl.Diagnostic {
	return errorAt(r, summary, fmt.Sprintf(format, args...))
}

// posString renders a range as file:line:col for details that point at a
// second place (the first definition of a duplicate, say).
func posString(r hcl.Range) string {
	return fmt.Sprintf("%s:%d:%d", r.Filename, r.Start.Line, r.Start.Column)
}

// blockRange is the range to blame for a block: its header, which is where
// the name and labels are.
func blockRange(b *hcl.Block) hcl.Range {
	if len(b.LabelRanges) > 0 {
		return hcl.RangeBetween(b.TypeRange, b.LabelRanges[len(b.LabelRanges)-1])
	}
	return b.TypeRange
}

// uniqueBlock reports every block of typ after the first as a duplicate,
// naming the first, and returns the first (nil when there is none).
func uniqueBlock(blocks []*hcl.Block, typ, where string) (*hcl.Block, hcl.Diagnostics) {
	var first *hcl.Block
	var diags hcl.Diagnostics
	for _, b := range blocks {
		if b.Type != typ {
			continue
		}
		if first == nil {
			first = b
			continue
		}
		diags = append(diags, errorfAt(b.DefRange, fmt.Sprintf("Duplicate %s block", typ),
			"%s can have only one %s block; the first one is at %s. Merge them into one.",
			where, typ, posString(first.DefRange)))
	}
	return first, diags
}

// nameSet tracks names of labelled blocks to report duplicates, naming the
// first definition.
type nameSet struct {
	kind  string
	first map[string]hcl.Range
}

func newNameSet(kind string) *nameSet {
	return &nameSet{kind: kind, first: map[string]hcl.Range{}}
}

// add records name and returns a diagnostic when it was already defined.
func (s *nameSet) add(name string, r hcl.Range) *hcl.Diagnostic {
	if prev, ok := s.first[name]; ok {
		return errorfAt(r, fmt.Sprintf("Duplicate %s name", s.kind),
			"A %s named %q is already defined at %s. Each %s needs a unique name.",
			s.kind, name, posString(prev), s.kind)
	}
	s.first[name] = r
	return nil
}

// suggest returns the candidate closest to name when it is close enough to
// be a likely typo, or "".
func suggest(name string, candidates []string) string {
	best, bestDist := "", 3
	for _, c := range candidates {
		if d := editDistance(name, c); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

func didYouMean(name string, candidates []string) string {
	if s := suggest(name, candidates); s != "" {
		return fmt.Sprintf(" Did you mean %q?", s)
	}
	return ""
}
