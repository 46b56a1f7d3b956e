package simulator

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
	ctyjson "github.com/zclconf/go-cty/cty/json"
)

// drawer evaluates tag and reported-property templates. Its one_of and
// weighted functions draw from rng, which the caller points at the device
// being evaluated; a drawer is therefore used by one goroutine at a time.
type drawer struct {
	rng   *rand.Rand
	funcs map[string]function.Function
}

func newDrawer(seed uint64) *drawer {
	d := &drawer{rng: rand.New(rand.NewPCG(seed, seed))}
	d.funcs = map[string]function.Function{
		"one_of":   d.oneOfFunc(),
		"weighted": d.weightedFunc(),
		"format":   stdlib.FormatFunc,
		"lower":    stdlib.LowerFunc,
		"upper":    stdlib.UpperFunc,
		"min":      stdlib.MinFunc,
		"max":      stdlib.MaxFunc,
	}
	return d
}

// oneOfFunc is one_of(list): an element of the list, drawn uniformly.
func (d *drawer) oneOfFunc() function.Function {
	return function.New(&function.Spec{
		Description: "Returns one element of the given list, drawn uniformly.",
		Params:      []function.Parameter{{Name: "values", Type: cty.DynamicPseudoType}},
		Type: func(args []cty.Value) (cty.Type, error) {
			t := args[0].Type()
			if !t.IsListType() && !t.IsTupleType() && !t.IsSetType() && t != cty.DynamicPseudoType {
				return cty.NilType, function.NewArgErrorf(0, `one_of takes a list, such as one_of(["a", "b"])`)
			}
			return cty.DynamicPseudoType, nil
		},
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			vals := args[0].AsValueSlice()
			if len(vals) == 0 {
				return cty.NilVal, function.NewArgErrorf(0, "one_of needs at least one value")
			}
			return vals[d.rng.IntN(len(vals))], nil
		},
	})
}

// weightedFunc is weighted(map): one of the map's keys, drawn with the
// probability its weight gives it among all weights.
func (d *drawer) weightedFunc() function.Function {
	return function.New(&function.Spec{
		Description: "Returns one key of the given map of weights, drawn in proportion to its weight.",
		Params:      []function.Parameter{{Name: "weights", Type: cty.Map(cty.Number)}},
		Type:        function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			var keys []string
			var weights []float64
			total := 0.0
			// cty iterates map elements in key order, so draws are stable.
			for it := args[0].ElementIterator(); it.Next(); {
				k, v := it.Element()
				if v.IsNull() {
					return cty.NilVal, function.NewArgErrorf(0, "the weight of %q is null", k.AsString())
				}
				w, _ := v.AsBigFloat().Float64()
				if w < 0 {
					return cty.NilVal, function.NewArgErrorf(0, "the weight of %q is negative (%g)", k.AsString(), w)
				}
				keys = append(keys, k.AsString())
				weights = append(weights, w)
				total += w
			}
			if total <= 0 {
				return cty.NilVal, function.NewArgErrorf(0, `weighted needs at least one positive weight, such as weighted({ "2.0.0" = 9, "1.9.0" = 1 })`)
			}
			x := d.rng.Float64() * total
			for i, w := range weights {
				if x < w {
					return cty.StringVal(keys[i]), nil
				}
				x -= w
			}
			// Rounding can leave x just past the last weight.
			for i := len(weights) - 1; i >= 0; i-- {
				if weights[i] > 0 {
					return cty.StringVal(keys[i]), nil
				}
			}
			return cty.StringVal(keys[len(keys)-1]), nil
		},
	})
}

// evalTemplate evaluates the layers of a tags or reported template for the
// group's i-th device and merges them, later layers winning key by key.
func (d *drawer) evalTemplate(g *Group, i int, layers []hcl.Expression, what string) (map[string]any, hcl.Diagnostics) {
	ctx := &hcl.EvalContext{
		Variables: map[string]cty.Value{
			"index":     cty.NumberIntVal(int64(g.First + i)),
			"group":     cty.StringVal(g.Name),
			"device_id": cty.StringVal(g.DeviceID(i)),
		},
		Functions: d.funcs,
	}
	out := map[string]any{}
	for _, e := range layers {
		v, diags := e.Value(ctx)
		if diags.HasErrors() {
			return nil, diags
		}
		if v.IsNull() {
			continue
		}
		bad := func(detail string) hcl.Diagnostics {
			return hcl.Diagnostics{{
				Severity: hcl.DiagError, Summary: "Invalid " + what,
				Detail: detail, Subject: e.Range().Ptr(),
			}}
		}
		if t := v.Type(); !t.IsObjectType() && !t.IsMapType() {
			return nil, bad(fmt.Sprintf(`%s must be an object, such as { site = "plant-7" }; this is a %s.`, what, t.FriendlyName()))
		}
		raw, err := ctyjson.Marshal(v, v.Type())
		if err != nil {
			return nil, bad(fmt.Sprintf("%s cannot be written as JSON: %v.", what, err))
		}
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, bad(fmt.Sprintf("%s cannot be written as JSON: %v.", what, err))
		}
		if err := checkPropertyNames(m, what); err != nil {
			return nil, bad(err.Error())
		}
		maps.Copy(out, m)
	}
	return out, nil
}

// checkPropertyNames applies the hub's rule for twin property names: no
// '.', '$', space or control characters, at most 1 KB.
func checkPropertyNames(m map[string]any, path string) error {
	for k, v := range m {
		switch {
		case k == "":
			return fmt.Errorf("%s has an empty property name", path)
		case len(k) > 1024:
			return fmt.Errorf("%s has a property name longer than 1 KB", path)
		case strings.ContainsAny(k, ". $"):
			return fmt.Errorf("property name %q in %s may not contain '.', '$' or spaces", k, path)
		}
		for _, r := range k {
			if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
				return fmt.Errorf("property name %q in %s holds a control character", k, path)
			}
		}
		if sub, ok := v.(map[string]any); ok {
			if err := checkPropertyNames(sub, path+"."+k); err != nil {
				return err
			}
		}
	}
	return nil
}
