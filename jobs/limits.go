package jobs

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/customdecode"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"
)

// MaxExpressionBytes bounds what one evaluation of one expression may
// build, by hubflow's estimate of the memory it takes (a string its length
// plus 16 bytes, a number 64 bytes, each element of a collection 16 bytes
// more), added up over the evaluation: the results of function calls, the
// values of each iteration of a for expression and of each template
// interpolation, and an element for each element of a collection that is
// iterated or copied (by a for expression, a splat, a conditional, an
// expanded argument or an argument's conversion). Functions whose result
// can be far larger than their arguments (setproduct, format and
// formatlist with a width or precision, join, indent, replace, split,
// csvdecode, jsondecode, jsonencode, regexall, and those that combine
// collections) are refused before they run when their result would not
// fit. An expression that goes over fails with "Expression too large" at
// the call or part of the expression where it went over, even inside try
// or can, rather than growing until the process runs out of memory; as
// the work of an evaluation follows what it builds, this bounds its time
// too. The same bound applies to each variable's value.
const MaxExpressionBytes = 16 << 20

// MaxNumberExponent bounds the numbers expressions compute with: zero, or
// a magnitude from about 1e-1000 to 1e1000. Printing a number takes time
// that grows with the square of its digits, so 1e-1000000 written in a
// template would take minutes. Number literals beyond it are refused when
// the file is parsed, arithmetic and functions that would go beyond it
// fail with "Number out of range", and a device twin number beyond it
// reads as null.
const MaxNumberExponent = 1000

// maxBinaryExponent is MaxNumberExponent as a power of two: 1000 / log10(2).
const maxBinaryExponent = 3322

// Names of the functions guard inserts around parts of expressions to
// count what they build. They cannot be written in a job file: an
// identifier does not start with '#'.
const (
	hookIterations = "#iterations"
	hookValue      = "#value"
)

func isHook(name string) bool { return strings.HasPrefix(name, "#") }

// limitError is a limit that an evaluation went over.
type limitError struct {
	summary, detail string
}

// Error returns the detail without its final period, for messages that
// add their own.
func (e *limitError) Error() string { return strings.TrimSuffix(e.detail, ".") }

func tooLarge(format string, args ...any) *limitError {
	return &limitError{
		summary: "Expression too large",
		detail: fmt.Sprintf(format, args...) + fmt.Sprintf("; one expression may build at most %s of strings, numbers and collections (by hubflow's estimate of their memory), so that a job file cannot exhaust the memory of hubflow.",
			byteSize(MaxExpressionBytes)),
	}
}

const numberRangeStart = "A number near"

// numberOutOfRange returns an error when n is beyond MaxNumberExponent.
func numberOutOfRange(n *big.Float) *limitError {
	if n.IsInf() || n.Sign() == 0 {
		return nil
	}
	exp := n.MantExp(nil)
	if exp <= maxBinaryExponent && exp >= -maxBinaryExponent {
		return nil
	}
	return &limitError{
		summary: "Number out of range",
		detail: fmt.Sprintf(numberRangeStart+" 1e%d is beyond the numbers hubflow computes with: zero, or magnitudes from 1e-%d to 1e%d.",
			int(math.Round(float64(exp)*math.Log10(2))), MaxNumberExponent, MaxNumberExponent),
	}
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.0f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

// Estimated sizes: what a value costs besides its contents.
const (
	sizeScalar     = 16
	sizeNumber     = 64
	sizeElement    = 16
	sizeCollection = 24
)

// sizeOf estimates the memory v takes, stopping once the estimate passes
// limit. It also reports numbers beyond MaxNumberExponent.
func sizeOf(v cty.Value, limit int64) (int64, *limitError) {
	s := sizer{limit: limit}
	s.add(v)
	return s.n, s.err
}

type sizer struct {
	n, limit int64
	err      *limitError
}

func (s *sizer) add(v cty.Value) {
	if s.n > s.limit || s.err != nil {
		return
	}
	v, _ = v.Unmark()
	if !v.IsKnown() || v.IsNull() {
		s.n += sizeScalar
		return
	}
	ty := v.Type()
	switch {
	case ty == cty.String:
		s.n += sizeScalar + int64(len(v.AsString()))
	case ty == cty.Number:
		s.n += sizeNumber
		s.err = numberOutOfRange(v.AsBigFloat())
	case ty.IsListType() || ty.IsSetType() || ty.IsTupleType() || ty.IsMapType() || ty.IsObjectType():
		s.n += sizeCollection
		for it := v.ElementIterator(); it.Next() && s.n <= s.limit && s.err == nil; {
			k, e := it.Element()
			s.n += sizeElement
			if k.Type() == cty.String {
				s.n += int64(len(k.AsString()))
			}
			s.add(e)
		}
	default:
		s.n += sizeScalar
	}
}

// budget is what one evaluation has built so far. Its first error sticks:
// once over a limit every later charge fails too, so that an error that
// try or can swallows still ends the evaluation quickly.
type budget struct {
	used int64
	err  *limitError
}

func (b *budget) remaining() int64 { return MaxExpressionBytes - b.used }

func (b *budget) fail(err *limitError) error {
	if b.err == nil {
		b.err = err
	}
	return b.err
}

// charge adds n estimated bytes.
func (b *budget) charge(n int64) error {
	if b.err != nil {
		return b.err
	}
	b.used += n
	if b.used > MaxExpressionBytes {
		return b.fail(tooLarge("Evaluating this expression goes over its limit here"))
	}
	return nil
}

// chargeValue adds the estimated size of v.
func (b *budget) chargeValue(v cty.Value) error {
	if b.err != nil {
		return b.err
	}
	n, err := sizeOf(v, b.remaining())
	if err != nil {
		return b.fail(err)
	}
	return b.charge(n)
}

// calls is what an expression calls: the functions and hooks its
// evaluation is given, each once. It depends only on the expression and on
// the functions on offer, so that an expression evaluated over and over (a
// step's conditions, at every observation of every device) is walked once.
type calls struct {
	expr    hcl.Expression  // the expression
	names   []string        // functions on offer and hooks it calls
	unknown bool            // it calls a function that is not on offer
	diags   hcl.Diagnostics // it calls functions where none are on offer
}

// findCalls finds what expr calls among available (nil: no functions on
// offer). Only native syntax is guarded: JSON var files are read with a nil
// context, where JSON strings are not templates.
func findCalls(expr hcl.Expression, available map[string]function.Function) *calls {
	c := &calls{expr: expr}
	node, ok := expr.(hclsyntax.Node)
	if !ok {
		return c
	}
	seen := map[string]bool{}
	hclsyntax.VisitAll(node, func(n hclsyntax.Node) hcl.Diagnostics {
		call, ok := n.(*hclsyntax.FunctionCallExpr)
		if !ok || seen[call.Name] {
			return nil
		}
		seen[call.Name] = true
		switch {
		case isHook(call.Name):
			c.names = append(c.names, call.Name)
		case available == nil:
			if len(c.diags) == 0 {
				// What HCL says when it has no functions to call.
				c.diags = append(c.diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Function calls not allowed",
					Detail:   "Functions may not be called here.",
					Subject:  call.Range().Ptr(),
				})
			}
		default:
			if _, ok := available[call.Name]; ok {
				c.names = append(c.names, call.Name)
			} else {
				c.unknown = true
			}
		}
		return nil
	})
	return c
}

func functionsOf(ctx *hcl.EvalContext) map[string]function.Function {
	if ctx == nil {
		return nil
	}
	return ctx.Functions
}

// context returns the context to evaluate an expression that makes calls
// c in: a child of ctx (which may be nil) whose functions are those the
// expression calls, wrapped to count what they build, and the hooks guard
// inserted. It returns ctx itself when the expression calls nothing.
func (b *budget) context(c *calls, ctx *hcl.EvalContext) (*hcl.EvalContext, hcl.Diagnostics) {
	if len(c.diags) > 0 {
		return nil, c.diags
	}
	if len(c.names) == 0 {
		return ctx, nil
	}
	available := functionsOf(ctx)
	funcs := make(map[string]function.Function, len(c.names))
	for _, name := range c.names {
		switch name {
		case hookIterations:
			funcs[name] = b.hook(true)
		case hookValue:
			funcs[name] = b.hook(false)
		default:
			funcs[name] = b.wrap(name, available[name])
		}
	}
	if ctx == nil {
		return &hcl.EvalContext{Functions: funcs}, nil
	}
	child := ctx.NewChild()
	if c.unknown {
		for name, f := range available {
			if _, ok := funcs[name]; !ok {
				// So that HCL's "did you mean" for an unknown function
				// still sees every name.
				funcs[name] = f
			}
		}
	}
	child.Functions = funcs
	return child, nil
}

// hook is the function guard inserts around parts of expressions. It
// returns its argument. With iterations it counts an element for each
// element of a collection that HCL iterates or copies (that of a for
// expression or splat, the results of a conditional, an expanded
// argument); without, it counts the size of a value (of each iteration of
// a for expression, of each template interpolation).
func (b *budget) hook(iterations bool) function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{{
			Name: "value", Type: cty.DynamicPseudoType,
			AllowNull: true, AllowUnknown: true, AllowDynamicType: true, AllowMarked: true,
		}},
		Type: func(args []cty.Value) (cty.Type, error) { return args[0].Type(), nil },
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			v := args[0]
			if !iterations {
				return v, b.chargeValue(v)
			}
			if u, _ := v.Unmark(); u.IsKnown() && !u.IsNull() && u.CanIterateElements() {
				return v, b.charge(int64(u.LengthInt()) * sizeElement)
			}
			return v, nil
		},
	})
}

// wrap returns f counting what it builds against the budget: it refuses
// a call whose result would not fit before making it, and counts the
// result after.
//
// The wrapper converts the arguments to f's parameter types itself, after
// counting the copies that converting a collection makes, because a big
// value named many times in one expression would otherwise be copied as
// many times before any function could refuse it. Conversion errors read
// as HCL's own.
//
// It calls f once, to learn its result type, and hands that result to the
// call that follows: try evaluates its expressions for its type and again
// for its result, and with a budget that can run out between the two they
// could disagree; calling once also spares the work.
func (b *budget) wrap(name string, f function.Function) function.Function {
	params, varParam := f.Params(), f.VarParam()
	param := func(i int) *function.Parameter {
		if i < len(params) {
			return &params[i]
		}
		return varParam
	}
	call := func(args []cty.Value) (cty.Value, error) {
		if b.err != nil {
			return cty.NilVal, b.err
		}
		conv := args
		for i, a := range args {
			p := param(i)
			if p == nil || p.Type == cty.DynamicPseudoType || customdecode.CustomExpressionDecoderForType(p.Type) != nil || a.Type().Equals(p.Type) {
				continue
			}
			if u, _ := a.Unmark(); u.IsKnown() && !u.IsNull() && u.CanIterateElements() {
				if err := b.charge(int64(u.LengthInt()) * sizeElement); err != nil {
					return cty.NilVal, err
				}
			}
			c, err := convert.Convert(a, p.Type)
			if err != nil {
				return cty.NilVal, function.NewArgError(i, err)
			}
			if len(conv) > 0 && &conv[0] == &args[0] {
				conv = slices.Clone(args)
			}
			conv[i] = c
		}
		if err := b.before(name, conv); err != nil {
			return cty.NilVal, err
		}
		v, err := f.Call(conv)
		if err != nil {
			return v, err
		}
		if err := b.chargeValue(v); err != nil {
			return cty.NilVal, err
		}
		return v, nil
	}
	// last is the result of the call whose type was asked last. Calls in
	// its arguments (try's expressions) have finished by then, and
	// function.Call asks for the implementation right after the type,
	// with the same arguments.
	var last struct {
		args []cty.Value
		v    cty.Value
		err  error
	}
	spec := &function.Spec{
		Params: passThrough(params),
		Type: func(args []cty.Value) (cty.Type, error) {
			v, err := call(args)
			last.args, last.v, last.err = args, v, err
			if err != nil {
				return cty.NilType, err
			}
			return v.Type(), nil
		},
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			if len(args) > 0 && len(last.args) == len(args) && &last.args[0] == &args[0] {
				v, err := last.v, last.err
				last.args = nil
				return v, err
			}
			return call(args)
		},
	}
	if varParam != nil {
		spec.VarParam = &passThrough([]function.Parameter{*varParam})[0]
	}
	return function.New(spec)
}

// passThrough returns a copy of params that accepts whatever HCL passes,
// unconverted, so that the wrapper converts and the wrapped function, not
// its wrapper, decides about null, unknown, dynamic and marked arguments
// (and refines unknown results) as it always does. Parameters that HCL
// decodes itself (try's expressions) keep their type.
func passThrough(params []function.Parameter) []function.Parameter {
	params = slices.Clone(params)
	for i := range params {
		if customdecode.CustomExpressionDecoderForType(params[i].Type) == nil {
			params[i].Type = cty.DynamicPseudoType
		}
		params[i].AllowNull = true
		params[i].AllowUnknown = true
		params[i].AllowDynamicType = true
		params[i].AllowMarked = true
	}
	return params
}

// before checks a call before it runs.
func (b *budget) before(name string, args []cty.Value) error {
	if s, ok := knownString(args, 0); ok && name == "jsondecode" {
		if d := checkNesting("", []byte(s), scanJSON); d != nil {
			return b.fail(&limitError{summary: "Nesting too deep",
				detail: fmt.Sprintf("The JSON given to jsondecode nests deeper than %d levels, the most hubflow reads.", MaxNestingDepth)})
		}
	}
	est, what := estimate(name, args)
	if est > float64(b.remaining()) {
		return b.fail(tooLarge("%s() would build %s, about %s", name, what, byteSize(int64(min(est, math.MaxInt64/2)))))
	}
	return nil
}

// known returns the argument at i when it is known and not null.
func known(args []cty.Value, i int) (cty.Value, bool) {
	if i >= len(args) {
		return cty.NilVal, false
	}
	v, _ := args[i].Unmark()
	if !v.IsKnown() || v.IsNull() {
		return cty.NilVal, false
	}
	return v, true
}

func knownString(args []cty.Value, i int) (string, bool) {
	v, ok := known(args, i)
	if !ok || v.Type() != cty.String {
		return "", false
	}
	return v.AsString(), true
}

// estimate returns an upper bound of the size of the result of the
// functions whose result can be far larger than their arguments, and what
// the result is, or 0 for other functions and arguments it cannot judge.
// Arguments are already converted to the parameters' types.
func estimate(name string, args []cty.Value) (float64, string) {
	switch name {
	case "setproduct":
		combos := 1.0
		for i := range args {
			v, ok := known(args, i)
			if !ok || !v.CanIterateElements() {
				return 0, ""
			}
			combos *= float64(v.LengthInt())
		}
		return combos * (sizeCollection + sizeElement + float64(len(args))*sizeElement), fmt.Sprintf("%.0f combinations", combos)
	case "format", "formatlist":
		f, ok := knownString(args, 0)
		if !ok {
			return 0, ""
		}
		widths, verbs := formatWidths(f)
		rows, scalar, lists := 1.0, 0.0, 0.0
		for i := 1; i < len(args); i++ {
			v, ok := known(args, i)
			if !ok {
				continue
			}
			n, _ := sizeOf(v, MaxExpressionBytes)
			if name == "formatlist" && v.CanIterateElements() {
				rows = max(rows, float64(v.LengthInt()))
				lists += float64(n)
				continue
			}
			scalar = max(scalar, float64(n))
		}
		est := rows*(float64(len(f))+widths+float64(verbs)*scalar) + float64(verbs)*lists
		if widths > MaxExpressionBytes {
			return est, fmt.Sprintf("text padded to %.0f characters", widths)
		}
		return est, "text"
	case "indent":
		v, ok := known(args, 0)
		s, ok2 := knownString(args, 1)
		if !ok || !ok2 {
			return 0, ""
		}
		spaces, _ := v.AsBigFloat().Float64()
		return float64(len(s)) + (float64(strings.Count(s, "\n"))+1)*max(spaces, 0), "indented text"
	case "join":
		sep, ok := knownString(args, 0)
		if !ok {
			return 0, ""
		}
		var elems, size float64
		for i := 1; i < len(args); i++ {
			v, ok := known(args, i)
			if !ok || !v.CanIterateElements() {
				continue
			}
			n, _ := sizeOf(v, MaxExpressionBytes)
			elems += float64(v.LengthInt())
			size += float64(n)
		}
		return size + elems*float64(len(sep)), "a joined string"
	case "replace":
		s, ok := knownString(args, 0)
		sub, ok2 := knownString(args, 1)
		repl, ok3 := knownString(args, 2)
		if !ok || !ok2 || !ok3 {
			return 0, ""
		}
		count := strings.Count(s, sub)
		return float64(len(s)) + float64(count)*float64(len(repl)), "a string with replacements"
	case "split":
		sep, ok := knownString(args, 0)
		s, ok2 := knownString(args, 1)
		if !ok || !ok2 {
			return 0, ""
		}
		n := float64(strings.Count(s, sep) + 1)
		if sep == "" {
			n = float64(utf8.RuneCountInString(s))
		}
		return float64(len(s)) + n*(sizeScalar+sizeElement), fmt.Sprintf("%.0f strings", n)
	case "csvdecode", "jsondecode":
		s, ok := knownString(args, 0)
		if !ok {
			return 0, ""
		}
		// Every byte can start a value: a field, or a number in [0,0,...].
		return float64(len(s)+1) * (sizeNumber + sizeElement) / 2, "decoded values"
	case "jsonencode":
		v, ok := known(args, 0)
		if !ok {
			return 0, ""
		}
		n, _ := sizeOf(v, MaxExpressionBytes+1)
		return float64(n), "JSON text"
	case "regexall":
		p, ok := knownString(args, 0)
		s, ok2 := knownString(args, 1)
		if !ok || !ok2 {
			return 0, ""
		}
		re, err := regexp.Compile(p)
		if err != nil {
			return 0, ""
		}
		matches := float64(utf8.RuneCountInString(s) + 1)
		return matches * (sizeCollection + sizeElement + float64(re.NumSubexp()+1)*(sizeScalar+sizeElement)), "matches"
	}
	// Other functions build at most an element for each element of their
	// arguments (concat, flatten, merge, distinct, ...), or less.
	var elems float64
	for i := range args {
		if v, ok := known(args, i); ok && v.CanIterateElements() {
			elems += float64(v.LengthInt())
		}
	}
	return elems * sizeElement, "a collection"
}

// formatWidths returns the sum of the widths and precisions the verbs of a
// format string ask for, and the number of verbs.
func formatWidths(f string) (float64, int) {
	var widths float64
	verbs := 0
	for i := 0; i < len(f); i++ {
		if f[i] != '%' {
			continue
		}
		i++
		if i < len(f) && f[i] == '%' {
			continue
		}
		verbs++
		for i < len(f) && strings.IndexByte("+- #0123456789.[]*", f[i]) >= 0 {
			if f[i] >= '1' && f[i] <= '9' {
				n := 0.0
				for i < len(f) && f[i] >= '0' && f[i] <= '9' {
					n = n*10 + float64(f[i]-'0')
					i++
				}
				widths += n
				continue
			}
			i++
		}
	}
	return widths, verbs
}

// evaluate evaluates expr in ctx (nil for a literal) within
// MaxExpressionBytes and MaxNumberExponent. Its diagnostics carry no
// evaluation context.
func evaluate(expr hcl.Expression, ctx *hcl.EvalContext) (cty.Value, hcl.Diagnostics) {
	return evaluateCalls(expr, ctx, findCalls(expr, functionsOf(ctx)))
}

// evaluateCalls is evaluate for an expression whose calls c are known.
func evaluateCalls(expr hcl.Expression, ctx *hcl.EvalContext, c *calls) (cty.Value, hcl.Diagnostics) {
	b := &budget{}
	evalCtx, diags := b.context(c, ctx)
	if diags.HasErrors() {
		return cty.DynamicVal, diags
	}
	v, diags := expr.Value(evalCtx)
	if b.err != nil {
		return cty.DynamicVal, hcl.Diagnostics{limitDiag(b.err, limitRange(b.err, expr, diags))}
	}
	if diags.HasErrors() {
		return v, numberDiags(stripDiags(diags))
	}
	if err := checkValue(v); err != nil {
		return cty.DynamicVal, hcl.Diagnostics{limitDiag(err, expr.Range())}
	}
	return v, stripDiags(diags)
}

// limitRange is where an evaluation went over a limit: the function call
// or guarded part of the expression that failed, or the whole expression
// when try or can swallowed the failure.
func limitRange(err *limitError, expr hcl.Expression, diags hcl.Diagnostics) hcl.Range {
	for _, d := range diags {
		extra, ok := hcl.DiagnosticExtra[hclsyntax.FunctionCallDiagExtra](d)
		if !ok || !errors.Is(extra.FunctionCallError(), err) {
			continue
		}
		if d.Context != nil {
			return *d.Context
		}
		if d.Subject != nil {
			return *d.Subject
		}
	}
	return expr.Range()
}

// isLimitDiag reports whether d is about a limit of evaluation.
func isLimitDiag(d *hcl.Diagnostic) bool {
	return d.Summary == "Expression too large" || d.Summary == "Number out of range"
}

func limitDiag(err *limitError, r hcl.Range) *hcl.Diagnostic {
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: err.summary, Detail: err.detail, Subject: r.Ptr()}
}

// checkValue reports a value from outside a job file (a -var option, the
// environment) that is beyond MaxExpressionBytes or MaxNumberExponent.
func checkValue(v cty.Value) *limitError {
	n, err := sizeOf(v, MaxExpressionBytes)
	if err != nil {
		return err
	}
	if n > MaxExpressionBytes {
		return tooLarge("The value takes more than %s", byteSize(MaxExpressionBytes))
	}
	return nil
}

// numberDiags gives the failures of arithmetic beyond MaxNumberExponent,
// which HCL reports as "Operation failed", their own summary.
func numberDiags(diags hcl.Diagnostics) hcl.Diagnostics {
	const prefix = "Error during operation: "
	for _, d := range diags {
		if d.Summary == "Operation failed" && strings.HasPrefix(d.Detail, prefix+numberRangeStart) {
			d.Summary = "Number out of range"
			d.Detail = strings.TrimPrefix(d.Detail, prefix)
		}
	}
	return diags
}

// guard prepares a parsed file for evaluate. It wraps in hooks the parts
// of expressions that HCL iterates or copies (see hook), makes arithmetic
// fail beyond MaxNumberExponent, and reports number literals beyond it.
// Variable types are only checked, not wrapped, because HCL evaluates the
// defaults in them itself, with no functions: a for expression there,
// which nothing could bound, is refused.
type guard struct {
	ops   map[*hclsyntax.Operation]*hclsyntax.Operation
	diags hcl.Diagnostics
}

func newGuard() *guard {
	g := &guard{ops: map[*hclsyntax.Operation]*hclsyntax.Operation{}}
	for _, op := range []*hclsyntax.Operation{hclsyntax.OpAdd, hclsyntax.OpSubtract, hclsyntax.OpMultiply, hclsyntax.OpDivide, hclsyntax.OpModulo} {
		c := *op
		c.Impl = checkedNumbers(op.Impl)
		g.ops[op] = &c
	}
	return g
}

// checkedNumbers returns f failing when its result is beyond
// MaxNumberExponent.
func checkedNumbers(f function.Function) function.Function {
	params := f.Params()
	for i := range params {
		params[i].AllowNull = true
		params[i].AllowUnknown = true
		params[i].AllowDynamicType = true
		params[i].AllowMarked = true
	}
	return function.New(&function.Spec{
		// BinaryOpExpr converts the operands to these types itself.
		Params: params,
		Type:   f.ReturnTypeForValues,
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			v, err := f.Call(args)
			if err != nil || !v.IsKnown() || v.IsNull() || v.Type() != cty.Number {
				return v, err
			}
			if err := numberOutOfRange(v.AsBigFloat()); err != nil {
				return cty.NilVal, err
			}
			return v, nil
		},
	})
}

// take returns the diagnostics so far and forgets them.
func (g *guard) take() hcl.Diagnostics {
	d := g.diags
	g.diags = nil
	return d
}

// body guards the attributes of a body and its blocks.
func (g *guard) body(body *hclsyntax.Body, inVariable bool) {
	for _, name := range sortedKeys(body.Attributes) {
		attr := body.Attributes[name]
		g.expr(attr.Expr, !(inVariable && name == "type"))
	}
	for _, blk := range body.Blocks {
		g.body(blk.Body, blk.Type == "variable")
	}
}

// expr guards one expression; with wrap false it only checks numbers.
func (g *guard) expr(expr hclsyntax.Expression, wrap bool) {
	hclsyntax.VisitAll(expr, func(n hclsyntax.Node) hcl.Diagnostics {
		switch e := n.(type) {
		case *hclsyntax.LiteralValueExpr:
			g.number(e.Val, e.SrcRange)
		case *hclsyntax.ScopeTraversalExpr:
			g.traversal(e.Traversal)
		case *hclsyntax.RelativeTraversalExpr:
			g.traversal(e.Traversal)
		case *hclsyntax.BinaryOpExpr:
			if op, ok := g.ops[e.Op]; ok && wrap {
				e.Op = op
			}
		case *hclsyntax.ForExpr:
			if !wrap {
				g.diags = append(g.diags, errorAt(e.SrcRange, "For expression in a type",
					"A default in a variable's type cannot be computed with a for expression, which would be evaluated without hubflow's limits. Write the value out, or give it with the variable's default."))
			}
			if wrap {
				e.CollExpr = withHook(hookIterations, e.CollExpr)
				e.ValExpr = withHook(hookValue, e.ValExpr)
				if e.KeyExpr != nil {
					e.KeyExpr = withHook(hookValue, e.KeyExpr)
				}
			}
		case *hclsyntax.SplatExpr:
			if wrap {
				e.Source = withHook(hookIterations, e.Source)
			}
		case *hclsyntax.ConditionalExpr:
			// Both results are evaluated, and converted to one type.
			if wrap {
				e.TrueResult = withHook(hookIterations, e.TrueResult)
				e.FalseResult = withHook(hookIterations, e.FalseResult)
			}
		case *hclsyntax.FunctionCallExpr:
			// HCL makes an argument of each element of an expanded one.
			if wrap && e.ExpandFinal && !isHook(e.Name) {
				e.Args[len(e.Args)-1] = withHook(hookIterations, e.Args[len(e.Args)-1])
			}
		case *hclsyntax.TemplateExpr:
			if wrap {
				for i, p := range e.Parts {
					if _, literal := p.(*hclsyntax.LiteralValueExpr); !literal {
						e.Parts[i] = withHook(hookValue, p)
					}
				}
			}
		}
		return nil
	})
}

func (g *guard) traversal(tr hcl.Traversal) {
	for _, step := range tr {
		if idx, ok := step.(hcl.TraverseIndex); ok {
			g.number(idx.Key, idx.SrcRange)
		}
	}
}

func (g *guard) number(v cty.Value, r hcl.Range) {
	if v.Type() != cty.Number || !v.IsKnown() || v.IsNull() {
		return
	}
	if err := numberOutOfRange(v.AsBigFloat()); err != nil {
		g.diags = append(g.diags, limitDiag(err, r))
	}
}

// withHook wraps expr in a call of the hook, with expr's range so that
// diagnostics about it point where they did.
func withHook(name string, expr hclsyntax.Expression) hclsyntax.Expression {
	r := expr.Range()
	return &hclsyntax.FunctionCallExpr{
		Name:            name,
		Args:            []hclsyntax.Expression{expr},
		NameRange:       r,
		OpenParenRange:  r,
		CloseParenRange: r,
	}
}
