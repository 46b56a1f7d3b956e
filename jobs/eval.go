package jobs

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"
	ctyjson "github.com/zclconf/go-cty/cty/json"
)

// Device is what device-dependent expressions see of one device: its id,
// its twin's tags and desired and reported properties as decoded JSON
// (map[string]any, []any, string, float64 or json.Number, bool, nil), and
// when the current step started for it. Numbers that are NaN, infinite or
// beyond MaxNumberExponent read as null.
type Device struct {
	ID       string
	Tags     map[string]any
	Desired  map[string]any
	Reported map[string]any
	// StepStartedAt is when the step was first invoked for the device;
	// step.started_at is its RFC 3339 form in UTC, or null when it is zero.
	StepStartedAt time.Time
}

// Observation is what a step's expressions say about one device at one
// observation.
type Observation struct {
	// Progress is the progress expression's value as text: strings as they
	// are, numbers and bools in their HCL form, objects and lists as JSON,
	// and "" for null or when the step has no progress expression.
	Progress string
	// Success and Failure are the step's conditions. A condition that is
	// absent, null or failed to evaluate is false. When both are true the
	// runner should treat the device as failed.
	Success bool
	Failure bool
	// Err is non-nil when an expression failed to evaluate for this device;
	// it is an *EvalError. Its text is the same at every observation while
	// the cause lasts, so the runner can record it once.
	Err error
}

// EvalError is an expression that failed to evaluate for one device.
type EvalError struct {
	Diagnostics hcl.Diagnostics
}

// Error renders each diagnostic as "file:line:col: Summary: Detail",
// joined by "; ".
func (e *EvalError) Error() string {
	parts := make([]string, 0, len(e.Diagnostics))
	for _, d := range e.Diagnostics {
		var b strings.Builder
		if d.Subject != nil {
			fmt.Fprintf(&b, "%s:%d:%d: ", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column)
		}
		b.WriteString(d.Summary)
		if d.Detail != "" {
			b.WriteString(": ")
			b.WriteString(d.Detail)
		}
		parts = append(parts, b.String())
	}
	return strings.Join(parts, "; ")
}

// evalEnv is what every device evaluation in one job shares: the
// functions, the variables and the job's name. It is immutable.
type evalEnv struct {
	funcs map[string]function.Function
	vars  cty.Value
	job   string
}

// context builds the evaluation context for one device. needs lists the
// property paths the expressions name, which get null values where the
// twin has nothing.
func (e *evalEnv) context(dev Device, needs map[string]needTree) *hcl.EvalContext {
	started := cty.NullVal(cty.String)
	if !dev.StepStartedAt.IsZero() {
		started = cty.StringVal(dev.StepStartedAt.UTC().Format(time.RFC3339Nano))
	}
	return &hcl.EvalContext{
		Functions: e.funcs,
		Variables: map[string]cty.Value{
			"reported":  twinValue(dev.Reported, needs["reported"]),
			"desired":   twinValue(dev.Desired, needs["desired"]),
			"tags":      twinValue(dev.Tags, needs["tags"]),
			"device_id": cty.StringVal(dev.ID),
			"step":      cty.ObjectVal(map[string]cty.Value{"started_at": started}),
			"job":       cty.ObjectVal(map[string]cty.Value{"name": cty.StringVal(e.job)}),
			"var":       e.vars,
		},
	}
}

// twinValue converts a twin section to an object, adding a null for every
// property path in need that the twin lacks, so that reading a missing
// property gives null instead of an error. Where the expression reads
// below a missing or null property, that property becomes an object of
// nulls (reported.a.b is null when reported has no a).
func twinValue(section map[string]any, need needTree) cty.Value {
	v := jsonToCty(section, need)
	if v.IsNull() {
		return cty.EmptyObjectVal
	}
	return v
}

// jsonToCty converts decoded JSON to a cty value, filling the paths in need
// (which may be nil).
func jsonToCty(v any, need needTree) cty.Value {
	switch v := v.(type) {
	case nil:
		return fillNeed(need)
	case map[string]any:
		attrs := make(map[string]cty.Value, len(v)+len(need))
		for k, x := range v {
			attrs[k] = jsonToCty(x, need[k])
		}
		for k, sub := range need {
			if _, ok := attrs[k]; !ok {
				attrs[k] = fillNeed(sub)
			}
		}
		return cty.ObjectVal(attrs)
	case []any:
		if len(v) == 0 {
			return cty.EmptyTupleVal
		}
		elems := make([]cty.Value, len(v))
		for i, x := range v {
			elems[i] = jsonToCty(x, nil)
		}
		return cty.TupleVal(elems)
	case string:
		return cty.StringVal(v)
	case bool:
		return cty.BoolVal(v)
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return cty.NullVal(cty.Number)
		}
		return cty.NumberFloatVal(v)
	case json.Number:
		n, err := cty.ParseNumberVal(v.String())
		if err != nil {
			return cty.StringVal(v.String())
		}
		if numberOutOfRange(n.AsBigFloat()) != nil {
			return cty.NullVal(cty.Number)
		}
		return n
	case int:
		return cty.NumberIntVal(int64(v))
	case int64:
		return cty.NumberIntVal(v)
	}
	// Anything else (a struct a caller built by hand) goes through JSON.
	b, err := json.Marshal(v)
	if err != nil {
		return cty.NullVal(cty.DynamicPseudoType)
	}
	var decoded any
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	if err := dec.Decode(&decoded); err != nil {
		return cty.NullVal(cty.DynamicPseudoType)
	}
	return jsonToCty(decoded, need)
}

// fillNeed is the value of a property the twin lacks: null, or an object
// of such values when the expression reads below it.
func fillNeed(need needTree) cty.Value {
	if len(need) == 0 {
		return cty.NullVal(cty.DynamicPseudoType)
	}
	attrs := make(map[string]cty.Value, len(need))
	for k, sub := range need {
		attrs[k] = fillNeed(sub)
	}
	return cty.ObjectVal(attrs)
}

// Observe evaluates the step's progress, success and failure expressions
// for one device. It never panics on odd twins: missing properties are
// null, and an expression that still fails (a function given null, a
// string compared as a number) makes its condition false and is reported
// in Err. It is safe for concurrent use.
func (s *Step) Observe(dev Device) Observation {
	var o Observation
	if s.env == nil {
		return o
	}
	ctx := s.env.context(dev, s.needs)
	var diags hcl.Diagnostics
	if s.Progress != nil {
		v, d := evaluateCalls(s.Progress, ctx, s.callsOf(0, s.Progress))
		if d.HasErrors() {
			diags = append(diags, d...)
		} else {
			o.Progress = valueText(v)
		}
	}
	var d hcl.Diagnostics
	o.Success, d = condition(s.Success, ctx, s.callsOf(1, s.Success), "success")
	diags = append(diags, d...)
	o.Failure, d = condition(s.Failure, ctx, s.callsOf(2, s.Failure), "failure")
	diags = append(diags, d...)
	if diags.HasErrors() {
		o.Err = &EvalError{Diagnostics: errorsOnly(diags)}
	}
	return o
}

// callsOf returns what expression i (progress, success, failure) calls, as
// found when the step was loaded, or finds it now for an expression set
// since.
func (s *Step) callsOf(i int, expr hcl.Expression) *calls {
	if s.calls[i] != nil && s.calls[i].expr == expr {
		return s.calls[i]
	}
	return findCalls(expr, s.env.funcs)
}

func condition(expr hcl.Expression, ctx *hcl.EvalContext, c *calls, what string) (bool, hcl.Diagnostics) {
	if expr == nil {
		return false, nil
	}
	v, diags := evaluateCalls(expr, ctx, c)
	if diags.HasErrors() {
		return false, diags
	}
	if v.IsNull() || !v.IsKnown() {
		return false, nil
	}
	b, err := convert.Convert(v, cty.Bool)
	if err != nil {
		return false, hcl.Diagnostics{errorfAt(expr.Range(), "Invalid condition result",
			"The %s condition must give true or false, but gave %s.", what, v.Type().FriendlyName())}
	}
	return !b.IsNull() && b.True(), nil
}

func errorsOnly(diags hcl.Diagnostics) hcl.Diagnostics {
	var out hcl.Diagnostics
	for _, d := range stripDiags(diags) {
		if d.Severity == hcl.DiagError {
			out = append(out, d)
		}
	}
	return out
}

// valueText renders a value for the progress history.
func valueText(v cty.Value) string {
	if v.IsNull() || !v.IsWhollyKnown() {
		return ""
	}
	switch v.Type() {
	case cty.String:
		return v.AsString()
	case cty.Number:
		return v.AsBigFloat().Text('f', -1)
	case cty.Bool:
		if v.True() {
			return "true"
		}
		return "false"
	}
	b, err := ctyjson.Marshal(v, v.Type())
	if err != nil {
		return ""
	}
	return string(b)
}

// Location returns the window's time zone for a device: the fixed zone, or
// the one timezone_from names in the device's twin. The error is an
// *EvalError saying why the device has no usable zone (the property is
// missing, or not an IANA zone name); the runner records such a device as
// skipped with that reason. It is safe for concurrent use.
func (w *Window) Location(dev Device) (*time.Location, error) {
	if w.TimezoneFrom == nil {
		return w.zone(), nil
	}
	ctx := w.env.context(dev, w.needs)
	v, diags := evaluate(w.TimezoneFrom, ctx)
	if diags.HasErrors() {
		return nil, &EvalError{Diagnostics: errorsOnly(diags)}
	}
	r := w.TimezoneFrom.Range()
	if v.IsNull() || !v.IsKnown() {
		return nil, &EvalError{Diagnostics: hcl.Diagnostics{errorfAt(r, "Missing device time zone",
			"timezone_from of window %q is null for device %q: its twin does not have the property.", w.Name, dev.ID)}}
	}
	s, err := convert.Convert(v, cty.String)
	if err != nil {
		return nil, &EvalError{Diagnostics: hcl.Diagnostics{errorfAt(r, "Invalid device time zone",
			"timezone_from of window %q gave %s for device %q; it must be a zone name such as \"Europe/Berlin\".", w.Name, v.Type().FriendlyName(), dev.ID)}}
	}
	loc, err := loadZone(strings.TrimSpace(s.AsString()))
	if err != nil {
		return nil, &EvalError{Diagnostics: hcl.Diagnostics{errorfAt(r, "Invalid device time zone",
			"timezone_from of window %q for device %q: %v.", w.Name, dev.ID, err)}}
	}
	return loc, nil
}
