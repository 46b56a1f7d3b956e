package jobs

import (
	"bytes"
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// scope says which variables an expression may use.
type scope int

const (
	// scopeStatic expressions are evaluated once at load: var.* only.
	scopeStatic scope = iota
	// scopeCondition expressions (progress, success, failure) are evaluated
	// per device and observation.
	scopeCondition
	// scopeZone expressions (timezone_from) are evaluated per device, before
	// any step has started.
	scopeZone
)

func (s scope) roots() []string {
	switch s {
	case scopeCondition:
		return []string{"reported", "desired", "tags", "device_id", "step", "job", "var"}
	case scopeZone:
		return []string{"reported", "desired", "tags", "device_id", "job", "var"}
	}
	return []string{"var", "job"}
}

func (s scope) describe() string {
	switch s {
	case scopeCondition:
		return "Conditions can use reported, desired, tags, device_id, step.started_at, job.name and var.<name>."
	case scopeZone:
		return "timezone_from can use tags, reported, desired, device_id, job.name and var.<name>."
	}
	return "Here only var.<name> and job.name can be used: the value is computed once for the whole job."
}

// isDeviceRoot reports whether a variable's value depends on the device
// or its step.
func isDeviceRoot(root string) bool {
	switch root {
	case "reported", "desired", "tags", "device_id", "step":
		return true
	}
	return false
}

// checkExpr reports references to variables that do not exist in the
// expression's scope and calls to unknown functions. Both would otherwise
// surface only when the expression is evaluated, and inside try() not even
// then.
func (l *loader) checkExpr(expr hcl.Expression, sc scope, what string) hcl.Diagnostics {
	var diags hcl.Diagnostics
	allowed := sc.roots()
	for _, tr := range expr.Variables() {
		root := tr.RootName()
		r := tr.SourceRange()
		switch {
		case !contains(allowed, root) && sc == scopeStatic && isDeviceRoot(root):
			diags = append(diags, errorfAt(r, "Device value not allowed here",
				"%s is the same for every device, so it cannot use %s. %s Device values can be used in progress, success, failure and timezone_from.",
				what, root, sc.describe()))
		case !contains(allowed, root):
			diags = append(diags, errorfAt(r, "Unknown variable",
				"There is no variable named %q.%s %s", root, didYouMean(root, allowed), sc.describe()))
		case root == "var":
			diags = append(diags, l.checkVarRef(tr)...)
		case root == "step":
			diags = append(diags, checkFixedAttr(tr, "step", "started_at")...)
		case root == "job":
			diags = append(diags, checkFixedAttr(tr, "job", "name")...)
		}
	}
	if node, ok := expr.(hclsyntax.Node); ok {
		diags = append(diags, hclsyntax.VisitAll(node, func(n hclsyntax.Node) hcl.Diagnostics {
			call, ok := n.(*hclsyntax.FunctionCallExpr)
			if !ok || isHook(call.Name) {
				return nil
			}
			if _, ok := l.funcs[call.Name]; ok {
				return nil
			}
			names := make([]string, 0, len(l.funcs))
			for n := range l.funcs {
				names = append(names, n)
			}
			return hcl.Diagnostics{errorfAt(call.NameRange, "Call to unknown function",
				"There is no function named %q.%s", call.Name, didYouMean(call.Name, names))}
		})...)
	}
	return diags
}

func (l *loader) checkVarRef(tr hcl.Traversal) hcl.Diagnostics {
	if len(tr) < 2 {
		return nil
	}
	name, ok := traverserKey(tr[1])
	if !ok {
		return nil
	}
	if _, ok := l.vars[name]; ok {
		return nil
	}
	return hcl.Diagnostics{errorfAt(tr.SourceRange(), "Reference to undeclared variable",
		"There is no variable named %q.%s Declare it with a variable %q {} block.", name, didYouMean(name, l.varNames()), name)}
}

func checkFixedAttr(tr hcl.Traversal, root, attr string) hcl.Diagnostics {
	if len(tr) < 2 {
		return nil
	}
	if name, ok := traverserKey(tr[1]); ok && name == attr {
		return nil
	}
	return hcl.Diagnostics{errorfAt(tr.SourceRange(), "Unsupported attribute",
		"%s has only one attribute: %s.%s.", root, root, attr)}
}

// traverserKey returns the name an attribute step or a string index step
// selects.
func traverserKey(t hcl.Traverser) (string, bool) {
	switch t := t.(type) {
	case hcl.TraverseAttr:
		return t.Name, true
	case hcl.TraverseIndex:
		if t.Key.Type() == cty.String && t.Key.IsKnown() && !t.Key.IsNull() {
			return t.Key.AsString(), true
		}
	}
	return "", false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// probeContext is a device context with every device value unknown. An
// expression that fails to evaluate in it fails for every device (a
// function given the wrong number of arguments, a string where a bool must
// be), so the error can be reported at load time.
func (l *loader) probeContext(jobName string) *hcl.EvalContext {
	return &hcl.EvalContext{
		Functions: l.funcs,
		Variables: map[string]cty.Value{
			"reported":  cty.DynamicVal,
			"desired":   cty.DynamicVal,
			"tags":      cty.DynamicVal,
			"device_id": cty.UnknownVal(cty.String),
			"step":      cty.ObjectVal(map[string]cty.Value{"started_at": cty.UnknownVal(cty.String)}),
			"job":       cty.ObjectVal(map[string]cty.Value{"name": cty.StringVal(jobName)}),
			"var":       l.varObj,
		},
	}
}

// probeExpr evaluates a device expression with unknown device values and
// checks that its result can become want.
func (l *loader) probeExpr(expr hcl.Expression, jobName, what string, want cty.Type) hcl.Diagnostics {
	v, diags := evaluate(expr, l.probeContext(jobName))
	if diags.HasErrors() {
		return diags
	}
	if want == cty.DynamicPseudoType || v.Type() == cty.DynamicPseudoType || v.IsNull() {
		return nil
	}
	if _, err := convert.Convert(cty.UnknownVal(v.Type()), want); err != nil {
		return hcl.Diagnostics{errorfAt(expr.Range(), fmt.Sprintf("Invalid %s expression", what),
			"%s must give %s, but this expression gives %s.", what, friendlyType(want), v.Type().FriendlyName())}
	}
	if v.IsKnown() {
		if _, err := convert.Convert(v, want); err != nil {
			return hcl.Diagnostics{errorfAt(expr.Range(), fmt.Sprintf("Invalid %s expression", what),
				"%s must give %s: %s.", what, friendlyType(want), err)}
		}
	}
	return nil
}

func friendlyType(t cty.Type) string {
	switch t {
	case cty.Bool:
		return "true or false"
	case cty.String:
		return "a string"
	}
	return t.FriendlyName()
}

// stripDiags drops the evaluation context and expression HCL attaches to
// diagnostics, so that a recorded error does not keep a device's twin
// alive.
func stripDiags(diags hcl.Diagnostics) hcl.Diagnostics {
	if len(diags) == 0 {
		return nil
	}
	out := make(hcl.Diagnostics, 0, len(diags))
	for _, d := range diags {
		c := *d
		c.Expression, c.EvalContext, c.Extra = nil, nil, nil
		out = append(out, &c)
	}
	return out
}

// normalizeExpr renders an expression's tokens separated by single spaces,
// without comments or newlines, so that the rendering changes when the
// expression does and not when its layout does.
func (l *loader) normalizeExpr(expr hcl.Expression) string {
	if expr == nil {
		return ""
	}
	src := l.exprSource(expr.Range())
	toks, diags := hclsyntax.LexExpression(src, "", hcl.InitialPos)
	if diags.HasErrors() {
		return string(src)
	}
	var parts []string
	for _, t := range toks {
		switch t.Type {
		case hclsyntax.TokenNewline, hclsyntax.TokenComment, hclsyntax.TokenEOF:
			continue
		}
		parts = append(parts, string(t.Bytes))
	}
	return strings.Join(parts, " ")
}

// oneLine is expr's source as written, for display, with the line breaks
// and comments of an expression written over several lines each made one
// space.
func (l *loader) oneLine(expr hcl.Expression) string {
	src := l.exprSource(expr.Range())
	toks, diags := hclsyntax.LexExpression(src, "", hcl.InitialPos)
	if diags.HasErrors() {
		return strings.Join(strings.Fields(string(src)), " ")
	}
	var b strings.Builder
	prev := -1 // end of the last token written
	for _, t := range toks {
		switch t.Type {
		case hclsyntax.TokenNewline, hclsyntax.TokenComment, hclsyntax.TokenEOF:
			continue
		}
		if prev >= 0 && prev <= t.Range.Start.Byte {
			gap := src[prev:t.Range.Start.Byte]
			if len(bytes.TrimSpace(gap)) > 0 || bytes.ContainsAny(gap, "\r\n") {
				b.WriteByte(' ')
			} else {
				b.Write(gap)
			}
		}
		b.Write(t.Bytes)
		prev = t.Range.End.Byte
	}
	return b.String()
}

// needTree records, for one root (reported, desired or tags), every
// property path an expression names, so that a device's value can be given
// a null at each path its twin lacks.
type needTree map[string]needTree

func (n needTree) add(path []string) {
	cur := n
	for _, p := range path {
		next, ok := cur[p]
		if !ok {
			next = needTree{}
			cur[p] = next
		}
		cur = next
	}
}

// collectNeeds adds the property paths expr names under the twin roots to
// needs. A path stops at the first step that is not a plain name (a numeric
// index or a splat): the value there is whatever the twin holds.
func collectNeeds(needs map[string]needTree, expr hcl.Expression) {
	if expr == nil {
		return
	}
	for _, tr := range expr.Variables() {
		root := tr.RootName()
		if root != "reported" && root != "desired" && root != "tags" {
			continue
		}
		var path []string
		for _, step := range tr[1:] {
			key, ok := traverserKey(step)
			if !ok {
				break
			}
			path = append(path, key)
		}
		tree, ok := needs[root]
		if !ok {
			tree = needTree{}
			needs[root] = tree
		}
		tree.add(path)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func sortedAttrs(attrs hcl.Attributes) []*hcl.Attribute {
	out := make([]*hcl.Attribute, 0, len(attrs))
	for _, k := range sortedKeys(attrs) {
		out = append(out, attrs[k])
	}
	sort.SliceStable(out, func(i, j int) bool {
		return out[i].Range.Start.Byte < out[j].Range.Start.Byte
	})
	return out
}
