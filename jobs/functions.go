package jobs

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2/ext/tryfunc"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// functions returns the functions job-file expressions may call: the
// go-cty standard library under Terraform's names, try and can, and the
// hubflow additions for device data (timecmp, parsetime, contains over
// strings, startswith, endswith, tostring and friends). A fresh map is
// built per Load and only read afterwards.
func functions() map[string]function.Function {
	return map[string]function.Function{
		"abs":             stdlib.AbsoluteFunc,
		"can":             tryfunc.CanFunc,
		"ceil":            stdlib.CeilFunc,
		"chomp":           stdlib.ChompFunc,
		"chunklist":       stdlib.ChunklistFunc,
		"coalesce":        stdlib.CoalesceFunc,
		"coalescelist":    stdlib.CoalesceListFunc,
		"compact":         stdlib.CompactFunc,
		"concat":          stdlib.ConcatFunc,
		"contains":        containsFunc,
		"csvdecode":       stdlib.CSVDecodeFunc,
		"distinct":        stdlib.DistinctFunc,
		"element":         stdlib.ElementFunc,
		"endswith":        endsWithFunc,
		"flatten":         stdlib.FlattenFunc,
		"floor":           stdlib.FloorFunc,
		"format":          stdlib.FormatFunc,
		"formatdate":      stdlib.FormatDateFunc,
		"formatlist":      stdlib.FormatListFunc,
		"indent":          stdlib.IndentFunc,
		"join":            stdlib.JoinFunc,
		"jsondecode":      stdlib.JSONDecodeFunc,
		"jsonencode":      stdlib.JSONEncodeFunc,
		"keys":            stdlib.KeysFunc,
		"length":          lengthFunc,
		"log":             stdlib.LogFunc,
		"lookup":          stdlib.LookupFunc,
		"lower":           stdlib.LowerFunc,
		"max":             stdlib.MaxFunc,
		"merge":           stdlib.MergeFunc,
		"min":             stdlib.MinFunc,
		"parseint":        stdlib.ParseIntFunc,
		"parsetime":       parseTimeFunc,
		"pow":             stdlib.PowFunc,
		"range":           stdlib.RangeFunc,
		"regex":           stdlib.RegexFunc,
		"regexall":        stdlib.RegexAllFunc,
		"replace":         stdlib.ReplaceFunc,
		"reverse":         stdlib.ReverseListFunc,
		"setintersection": stdlib.SetIntersectionFunc,
		"setproduct":      stdlib.SetProductFunc,
		"setsubtract":     stdlib.SetSubtractFunc,
		"setunion":        stdlib.SetUnionFunc,
		"signum":          stdlib.SignumFunc,
		"slice":           stdlib.SliceFunc,
		"sort":            stdlib.SortFunc,
		"split":           stdlib.SplitFunc,
		"startswith":      startsWithFunc,
		"strcontains":     strContainsFunc,
		"strrev":          stdlib.ReverseFunc,
		"substr":          stdlib.SubstrFunc,
		"timeadd":         stdlib.TimeAddFunc,
		"timecmp":         timeCmpFunc,
		"title":           stdlib.TitleFunc,
		"tobool":          makeToFunc(cty.Bool),
		"tonumber":        makeToFunc(cty.Number),
		"tostring":        makeToFunc(cty.String),
		"trim":            stdlib.TrimFunc,
		"trimprefix":      stdlib.TrimPrefixFunc,
		"trimspace":       stdlib.TrimSpaceFunc,
		"trimsuffix":      stdlib.TrimSuffixFunc,
		"try":             tryfunc.TryFunc,
		"upper":           stdlib.UpperFunc,
		"values":          stdlib.ValuesFunc,
		"zipmap":          stdlib.ZipmapFunc,
	}
}

// containsFunc is contains(haystack, needle): substring test when haystack
// is a string, element test when it is a list, set or tuple.
var containsFunc = function.New(&function.Spec{
	Description: "Reports whether a string contains a substring, or a list or set contains a value.",
	Params: []function.Parameter{
		{Name: "haystack", Type: cty.DynamicPseudoType},
		{Name: "needle", Type: cty.DynamicPseudoType},
	},
	Type: function.StaticReturnType(cty.Bool),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		haystack, needle := args[0], args[1]
		ty := haystack.Type()
		switch {
		case ty == cty.String:
			s, err := convert.Convert(needle, cty.String)
			if err != nil || s.IsNull() {
				return cty.UnknownVal(cty.Bool), function.NewArgErrorf(1, "a string can only contain a string")
			}
			return cty.BoolVal(strings.Contains(haystack.AsString(), s.AsString())), nil
		case ty.IsListType() || ty.IsSetType() || ty.IsTupleType():
			return stdlib.ContainsFunc.Call([]cty.Value{haystack, needle})
		}
		return cty.UnknownVal(cty.Bool), function.NewArgErrorf(0, "contains needs a string, a list or a set, not %s", ty.FriendlyName())
	},
})

var strContainsFunc = function.New(&function.Spec{
	Description: "Reports whether str contains substr.",
	Params: []function.Parameter{
		{Name: "str", Type: cty.String},
		{Name: "substr", Type: cty.String},
	},
	Type: function.StaticReturnType(cty.Bool),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		return cty.BoolVal(strings.Contains(args[0].AsString(), args[1].AsString())), nil
	},
})

var startsWithFunc = function.New(&function.Spec{
	Description: "Reports whether str begins with prefix.",
	Params: []function.Parameter{
		{Name: "str", Type: cty.String},
		{Name: "prefix", Type: cty.String},
	},
	Type: function.StaticReturnType(cty.Bool),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		return cty.BoolVal(strings.HasPrefix(args[0].AsString(), args[1].AsString())), nil
	},
})

var endsWithFunc = function.New(&function.Spec{
	Description: "Reports whether str ends with suffix.",
	Params: []function.Parameter{
		{Name: "str", Type: cty.String},
		{Name: "suffix", Type: cty.String},
	},
	Type: function.StaticReturnType(cty.Bool),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		return cty.BoolVal(strings.HasSuffix(args[0].AsString(), args[1].AsString())), nil
	},
})

// lengthFunc counts characters of a string and elements of anything else,
// as Terraform's length does.
var lengthFunc = function.New(&function.Spec{
	Description: "Returns the number of characters in a string or elements in a collection.",
	Params: []function.Parameter{
		{Name: "value", Type: cty.DynamicPseudoType, AllowMarked: true},
	},
	Type: function.StaticReturnType(cty.Number),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		if args[0].Type() == cty.String {
			return stdlib.StrlenFunc.Call(args)
		}
		return stdlib.LengthFunc.Call(args)
	},
})

var timeCmpFunc = function.New(&function.Spec{
	Description: "Compares two timestamps: -1 when a is earlier than b, 0 when equal, 1 when later. Accepts RFC 3339 and YYYY-MM-DD HH:MM:SS[.ffffff] (read as UTC when it has no zone).",
	Params: []function.Parameter{
		{Name: "a", Type: cty.String},
		{Name: "b", Type: cty.String},
	},
	Type: function.StaticReturnType(cty.Number),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		a, err := ParseTime(args[0].AsString())
		if err != nil {
			return cty.UnknownVal(cty.Number), function.NewArgError(0, err)
		}
		b, err := ParseTime(args[1].AsString())
		if err != nil {
			return cty.UnknownVal(cty.Number), function.NewArgError(1, err)
		}
		return cty.NumberIntVal(int64(a.Compare(b))), nil
	},
})

var parseTimeFunc = function.New(&function.Spec{
	Description: "Reads a timestamp in any form timecmp accepts and returns it as an RFC 3339 string in UTC.",
	Params: []function.Parameter{
		{Name: "timestamp", Type: cty.String},
	},
	Type: function.StaticReturnType(cty.String),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		t, err := ParseTime(args[0].AsString())
		if err != nil {
			return cty.UnknownVal(cty.String), function.NewArgError(0, err)
		}
		return cty.StringVal(t.UTC().Format(time.RFC3339Nano)), nil
	},
})

func makeToFunc(want cty.Type) function.Function {
	return function.New(&function.Spec{
		Description: fmt.Sprintf("Converts a value to %s.", want.FriendlyName()),
		Params: []function.Parameter{
			{Name: "v", Type: cty.DynamicPseudoType, AllowNull: true},
		},
		Type: function.StaticReturnType(want),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			v, err := convert.Convert(args[0], want)
			if err != nil {
				return cty.UnknownVal(want), function.NewArgErrorf(0, "cannot convert %s to %s", args[0].Type().FriendlyName(), want.FriendlyName())
			}
			return v, nil
		},
	})
}

// timeLayouts are the timestamp shapes devices report: RFC 3339, and
// Python's str(datetime) with a space instead of the T, with or without a
// zone offset. A timestamp without a zone is read as UTC.
var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999",
}

// ParseTime reads a device timestamp: RFC 3339 ("2026-03-29T01:30:00Z",
// with or without fractional seconds) or YYYY-MM-DD HH:MM:SS[.ffffff] with
// an optional zone offset, as Python's str(datetime) prints it. A
// timestamp without a zone is read as UTC.
func ParseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range timeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	if s == "" {
		return time.Time{}, errors.New("empty timestamp; want RFC 3339 (2006-01-02T15:04:05Z) or 2006-01-02 15:04:05[.ffffff]")
	}
	return time.Time{}, fmt.Errorf("cannot read %q as a timestamp; want RFC 3339 (2006-01-02T15:04:05Z) or 2006-01-02 15:04:05[.ffffff]", s)
}
