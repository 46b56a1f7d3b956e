package jobs

import (
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// attrDecoder decodes the static attributes of one block: it checks their
// references, evaluates them with var.* and job.name, converts them and
// collects diagnostics. Absent and null attributes are both "not set".
type attrDecoder struct {
	l     *loader
	ctx   *hcl.EvalContext
	attrs hcl.Attributes
	where string
	diags hcl.Diagnostics
}

func (l *loader) attrDecoder(attrs hcl.Attributes, ctx *hcl.EvalContext, where string) *attrDecoder {
	return &attrDecoder{l: l, ctx: ctx, attrs: attrs, where: where}
}

// staticContext is the context of static attributes in a job.
func (l *loader) staticContext(jobName string) *hcl.EvalContext {
	return &hcl.EvalContext{
		Functions: l.funcs,
		Variables: map[string]cty.Value{
			"var": l.varObj,
			"job": cty.ObjectVal(map[string]cty.Value{"name": cty.StringVal(jobName)}),
		},
	}
}

// value evaluates attribute name and converts it to ty. It returns the
// attribute only when it is set to a usable value.
func (d *attrDecoder) value(name string, ty cty.Type) (cty.Value, *hcl.Attribute) {
	attr, ok := d.attrs[name]
	if !ok {
		return cty.NilVal, nil
	}
	if diags := d.l.checkExpr(attr.Expr, scopeStatic, name); diags.HasErrors() {
		d.diags = append(d.diags, diags...)
		return cty.NilVal, nil
	}
	v, diags := evaluate(attr.Expr, d.ctx)
	d.diags = append(d.diags, diags...)
	if diags.HasErrors() || v.IsNull() {
		return cty.NilVal, nil
	}
	if !v.IsWhollyKnown() {
		d.diags = append(d.diags, errorfAt(attr.Expr.Range(), "Invalid "+name, "The value of %s cannot be determined.", name))
		return cty.NilVal, nil
	}
	if ty == cty.DynamicPseudoType {
		return v, attr
	}
	conv, err := convertValue(v, ty)
	if err != nil {
		d.diags = append(d.diags, errorfAt(attr.Expr.Range(), "Incorrect attribute value type",
			"Inappropriate value for %s: %s is required, not %s.", name, typeWanted(ty), v.Type().FriendlyName()))
		return cty.NilVal, nil
	}
	if conv.IsNull() {
		return cty.NilVal, nil
	}
	return conv, attr
}

func typeWanted(ty cty.Type) string {
	switch {
	case ty == cty.String:
		return "a string"
	case ty == cty.Number:
		return "a number"
	case ty == cty.Bool:
		return "true or false"
	case ty.IsListType() && ty.ElementType() == cty.String:
		return "a list of strings"
	case ty.IsListType() && ty.ElementType() == cty.Number:
		return "a list of numbers"
	}
	return ty.FriendlyName()
}

func (d *attrDecoder) errorf(attr *hcl.Attribute, summary, format string, args ...any) {
	d.diags = append(d.diags, errorfAt(attr.Expr.Range(), summary, format, args...))
}

func (d *attrDecoder) str(name string) (string, *hcl.Attribute) {
	v, attr := d.value(name, cty.String)
	if attr == nil {
		return "", nil
	}
	return v.AsString(), attr
}

func (d *attrDecoder) boolean(name string, def bool) bool {
	v, attr := d.value(name, cty.Bool)
	if attr == nil {
		return def
	}
	return v.True()
}

// integer reads a whole number in [lo, hi], or def when it is not set.
func (d *attrDecoder) integer(name string, def, lo, hi int) int {
	v, attr := d.value(name, cty.Number)
	if attr == nil {
		return def
	}
	bf := v.AsBigFloat()
	i, acc := bf.Int64()
	if acc != big.Exact || i < int64(lo) || i > int64(hi) {
		d.errorf(attr, "Invalid "+name, "%s must be a whole number from %d to %d, not %s.", name, lo, hi, bf.Text('g', 10))
		return def
	}
	return int(i)
}

func (d *attrDecoder) number(name string) (float64, *hcl.Attribute) {
	v, attr := d.value(name, cty.Number)
	if attr == nil {
		return 0, nil
	}
	f, _ := v.AsBigFloat().Float64()
	return f, attr
}

func (d *attrDecoder) strings(name string) ([]string, *hcl.Attribute) {
	v, attr := d.value(name, cty.List(cty.String))
	if attr == nil {
		return nil, nil
	}
	out := make([]string, 0, v.LengthInt())
	for _, e := range v.AsValueSlice() {
		if e.IsNull() {
			d.errorf(attr, "Invalid "+name, "%s cannot contain null.", name)
			return nil, nil
		}
		out = append(out, e.AsString())
	}
	return out, attr
}

// duration reads a Go duration string in [lo, hi], or def when not set.
// When whole is true it must also be a whole number of seconds.
func (d *attrDecoder) duration(name string, def, lo, hi time.Duration, whole bool) time.Duration {
	s, attr := d.str(name)
	if attr == nil {
		return def
	}
	dur, err := parseDuration(s)
	if err != nil {
		d.errorf(attr, "Invalid duration", "%s: %v.", name, err)
		return def
	}
	switch {
	case dur < lo || (hi > 0 && dur > hi):
		if hi > 0 {
			d.errorf(attr, "Duration out of range", "%s must be from %s to %s, not %s.", name, fmtDuration(lo), fmtDuration(hi), s)
		} else {
			d.errorf(attr, "Duration out of range", "%s must be at least %s, not %s.", name, fmtDuration(lo), s)
		}
		return def
	case whole && dur%time.Second != 0:
		d.errorf(attr, "Invalid duration", "%s is sent to the hub in whole seconds, so %s must be a whole number of seconds, such as %q.",
			name, s, fmtDuration(dur.Round(time.Second)))
		return def
	}
	return dur
}

// parseDuration reads a Go duration and explains the common slips.
func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err == nil {
		return d, nil
	}
	hint := `a duration is a number and a unit, such as "30s", "5m" or "1h30m" (units ns, us, ms, s, m, h)`
	t := strings.TrimSpace(s)
	if strings.HasSuffix(t, "d") {
		hint += `; there is no day unit, write "24h" for a day`
	}
	return 0, fmt.Errorf("%q is not a duration: %s", s, hint)
}

// fmtDuration prints a duration the way it would be written in a job
// file: "30s", "5m", "1h30m".
func fmtDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// convertValue is convert.Convert, except that a tuple becomes a list of a
// primitive type element by element. cty first unifies the types
// of a tuple's elements, comparing each with the others: a list of 10,000
// device ids written out in a job file took a second to load, 100,000 a
// minute and a half.
func convertValue(v cty.Value, ty cty.Type) (cty.Value, error) {
	if !v.Type().IsTupleType() || !ty.IsListType() || !ty.ElementType().IsPrimitiveType() ||
		v.IsMarked() || !v.IsKnown() || v.IsNull() || v.LengthInt() == 0 {
		return convert.Convert(v, ty)
	}
	et := ty.ElementType()
	elems := make([]cty.Value, 0, v.LengthInt())
	for it := v.ElementIterator(); it.Next(); {
		_, e := it.Element()
		c, err := convert.Convert(e, et)
		if err != nil || c.IsMarked() {
			// convert.Convert says which element, in its own words.
			return convert.Convert(v, ty)
		}
		elems = append(elems, c)
	}
	return cty.ListVal(elems), nil
}
