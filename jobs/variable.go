package jobs

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	ctyjson "github.com/zclconf/go-cty/cty/json"
)

// Variable is a declared input variable with its resolved value.
type Variable struct {
	Name        string
	Description string
	// Type is the declared type constraint; cty.DynamicPseudoType when the
	// block has no type.
	Type cty.Type
	// Default is the default value converted to Type, or cty.NilVal when the
	// variable has none and so must be set.
	Default cty.Value
	// Sensitive variables have their values redacted by
	// Config.RedactedVariables and mark the steps that use them.
	Sensitive   bool
	Validations []*VariableValidation
	// Value is the resolved value, converted to Type.
	Value cty.Value
	// ValueFrom says where Value came from: "default", "environment",
	// "var file" or "-var".
	ValueFrom string
	DeclRange hcl.Range

	defaults *typeexpr.Defaults
	// valueRange is where Value was written, when it came from a file.
	valueRange *hcl.Range
}

// VariableValidation is a validation block of a variable: Condition must
// hold for the variable's value, or loading fails with ErrorMessage.
type VariableValidation struct {
	Condition    hcl.Expression
	ErrorMessage string
	DeclRange    hcl.Range
}

// RedactedValue is what Config.RedactedVariables puts in place of a
// sensitive variable's value.
const RedactedValue = "(sensitive)"

// VariableValues returns every variable's value by name, sensitive ones
// included. The map is the caller's.
func (c *Config) VariableValues() map[string]cty.Value {
	m := make(map[string]cty.Value, len(c.Variables))
	for _, v := range c.Variables {
		m[v.Name] = v.Value
	}
	return m
}

// RedactedVariables returns every variable's value as JSON, with the value
// of each sensitive variable replaced by the JSON string "(sensitive)", for
// storing with a run. The map is the caller's.
func (c *Config) RedactedVariables() map[string]json.RawMessage {
	m := make(map[string]json.RawMessage, len(c.Variables))
	for _, v := range c.Variables {
		if v.Sensitive {
			m[v.Name] = json.RawMessage(`"` + RedactedValue + `"`)
			continue
		}
		m[v.Name] = valueJSON(v.Value)
	}
	return m
}

// valueJSON encodes a known value as JSON, keeping its type's shape.
func valueJSON(v cty.Value) json.RawMessage {
	if v == cty.NilVal || v.IsNull() {
		return json.RawMessage("null")
	}
	b, err := ctyjson.Marshal(v, v.Type())
	if err != nil {
		// Only unknown values fail, and resolved variables are known.
		return json.RawMessage("null")
	}
	return b
}

var variableSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "type"},
		{Name: "default"},
		{Name: "description"},
		{Name: "sensitive"},
	},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "validation"},
	},
}

var validationSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "condition", Required: true},
		{Name: "error_message", Required: true},
	},
}

// decodeVariables is the variables stage: it decodes the variable blocks,
// resolves values from defaults, the environment, var files and -var, in
// that order of increasing precedence, converts them to their types and
// checks the validation rules.
func (l *loader) decodeVariables(blocks []*hcl.Block, cfg LoadConfig) ([]*Variable, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	var vars []*Variable
	l.vars = map[string]*Variable{}
	names := newNameSet("variable")
	for _, b := range blocks {
		v, d := decodeVariable(b)
		diags = append(diags, d...)
		if v == nil {
			continue
		}
		if d := names.add(v.Name, blockRange(b)); d != nil {
			diags = append(diags, d)
			continue
		}
		l.vars[v.Name] = v
		vars = append(vars, v)
	}
	if diags.HasErrors() {
		return nil, diags
	}

	diags = append(diags, l.applyEnv(cfg.Env)...)
	for _, path := range cfg.VarFiles {
		diags = append(diags, l.applyVarFile(path)...)
	}
	for _, opt := range cfg.Vars {
		diags = append(diags, l.applyVarOption(opt, cfg.IgnoreUndeclaredVars)...)
	}
	for _, v := range vars {
		if v.Value == cty.NilVal {
			diags = append(diags, errorfAt(v.DeclRange, "No value for required variable",
				"Variable %q has no default, so it must be set: with -var %s=VALUE, in a -var-file, or with the %s%s environment variable.",
				v.Name, v.Name, EnvVarPrefix, v.Name))
		}
	}
	if diags.HasErrors() {
		return nil, diags
	}

	attrs := make(map[string]cty.Value, len(vars))
	for _, v := range vars {
		attrs[v.Name] = v.Value
	}
	l.varObj = cty.ObjectVal(attrs)
	for _, v := range vars {
		diags = append(diags, l.checkValidations(v)...)
	}
	return vars, diags
}

func decodeVariable(b *hcl.Block) (*Variable, hcl.Diagnostics) {
	name := b.Labels[0]
	v := &Variable{Name: name, Type: cty.DynamicPseudoType, DeclRange: blockRange(b)}
	var diags hcl.Diagnostics
	if !hclsyntax.ValidIdentifier(name) {
		diags = append(diags, errorfAt(b.LabelRanges[0], "Invalid variable name",
			"%q cannot be used as var.%s: a variable name starts with a letter or underscore and has only letters, digits, underscores and dashes.", name, name))
	}
	content, d := decodeContent(b.Body, variableSchema, fmt.Sprintf("In variable %q", name))
	diags = append(diags, d...)

	if attr, ok := content.Attributes["type"]; ok {
		ty, defaults, d := typeexpr.TypeConstraintWithDefaults(attr.Expr)
		diags = append(diags, d...)
		if !d.HasErrors() {
			v.Type, v.defaults = ty, defaults
		}
	}
	if attr, ok := content.Attributes["description"]; ok {
		s, d := literalString(attr)
		diags = append(diags, d...)
		v.Description = s
	}
	if attr, ok := content.Attributes["sensitive"]; ok {
		val, d := evaluate(attr.Expr, nil)
		diags = append(diags, d...)
		if !d.HasErrors() {
			bv, err := convert.Convert(val, cty.Bool)
			if err != nil || bv.IsNull() {
				diags = append(diags, errorAt(attr.Expr.Range(), "Invalid sensitive value", "sensitive is true or false."))
			} else {
				v.Sensitive = bv.True()
			}
		}
	}
	if attr, ok := content.Attributes["default"]; ok && !diags.HasErrors() {
		val, d := evaluate(attr.Expr, nil)
		diags = append(diags, d...)
		if !d.HasErrors() {
			conv, err := v.convert(val)
			if err != nil {
				diags = append(diags, errorfAt(attr.Expr.Range(), "Invalid default value for variable",
					"This default value does not fit the variable's type %s: %s.", typeexpr.TypeString(v.Type), err))
			} else {
				v.Default, v.Value, v.ValueFrom = conv, conv, "default"
			}
		}
	}
	for _, vb := range content.Blocks {
		val, d := decodeValidation(vb, name)
		diags = append(diags, d...)
		if val != nil {
			v.Validations = append(v.Validations, val)
		}
	}
	return v, diags
}

func decodeValidation(b *hcl.Block, varName string) (*VariableValidation, hcl.Diagnostics) {
	content, diags := decodeContent(b.Body, validationSchema, fmt.Sprintf("In a validation block of variable %q", varName))
	if diags.HasErrors() {
		return nil, diags
	}
	val := &VariableValidation{DeclRange: b.DefRange, Condition: content.Attributes["condition"].Expr}
	msg, d := literalString(content.Attributes["error_message"])
	diags = append(diags, d...)
	val.ErrorMessage = msg
	for _, tr := range val.Condition.Variables() {
		if tr.RootName() != "var" {
			diags = append(diags, errorfAt(tr.SourceRange(), "Invalid reference in variable validation",
				"A validation condition can refer only to var.%s, not %s.", varName, tr.RootName()))
		}
	}
	return val, diags
}

// literalString evaluates an attribute that must be a constant string.
func literalString(attr *hcl.Attribute) (string, hcl.Diagnostics) {
	val, diags := evaluate(attr.Expr, nil)
	if diags.HasErrors() {
		return "", diags
	}
	s, err := convert.Convert(val, cty.String)
	if err != nil || s.IsNull() {
		return "", hcl.Diagnostics{errorfAt(attr.Expr.Range(), "Invalid "+attr.Name, "%s must be a string.", attr.Name)}
	}
	return s.AsString(), nil
}

// convert applies optional-attribute defaults and converts val to the
// variable's type.
func (v *Variable) convert(val cty.Value) (cty.Value, error) {
	if v.defaults != nil {
		val = v.defaults.Apply(val)
	}
	return convertValue(val, v.Type)
}

// setRaw sets a variable from a string given outside HCL (environment or
// -var). Primitive types take the text literally, as a shell user would
// expect for -var name=1.0; other types read it as an HCL expression when it
// is one, so lists and maps can be given as ["a", "b"].
func (v *Variable) setRaw(raw, from string, g *guard) hcl.Diagnostics {
	val := cty.StringVal(raw)
	var err error
	// A value nested too deeply to parse is taken as a string, like one
	// that does not parse; one that goes over the limits of evaluation
	// says so.
	if !v.Type.IsPrimitiveType() && checkNesting(from, []byte(raw), scanHCL) == nil {
		expr, d := hclsyntax.ParseExpression([]byte(raw), from, hcl.InitialPos)
		if !d.HasErrors() {
			g.expr(expr, true)
			d = g.take()
			if !d.HasErrors() {
				var parsed cty.Value
				parsed, d = evaluate(expr, nil)
				if !d.HasErrors() {
					val = parsed
				}
			}
			if d.HasErrors() && isLimitDiag(d[0]) {
				err = errors.New(strings.TrimSuffix(d[0].Detail, "."))
			}
		}
	}
	conv, cerr := v.convert(val)
	if err == nil {
		err = cerr
	}
	if err == nil {
		if lerr := checkValue(conv); lerr != nil {
			err = lerr
		}
	}
	if err != nil {
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Invalid value for variable",
			Detail: fmt.Sprintf("The value of var.%s given by %s is not a valid %s: %s.",
				v.Name, from, typeexpr.TypeString(v.Type), err),
		}}
	}
	v.Value, v.ValueFrom, v.valueRange = conv, from, nil
	return nil
}

func (l *loader) applyEnv(env []string) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, kv := range env {
		key, raw, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(key, EnvVarPrefix) {
			continue
		}
		// Variables a file does not declare are ignored: the environment
		// is shared by every job file a process loads.
		if v, ok := l.vars[strings.TrimPrefix(key, EnvVarPrefix)]; ok {
			diags = append(diags, v.setRaw(raw, "environment", l.guard)...)
		}
	}
	return diags
}

func (l *loader) applyVarOption(opt string, ignoreUndeclared bool) hcl.Diagnostics {
	name, raw, ok := strings.Cut(opt, "=")
	name = strings.TrimSpace(name)
	if !ok || name == "" {
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Invalid -var option",
			Detail: "A -var option is not of the form name=value, as in -var image_uri=https://example.com/fw.bin. " +
				"Its text is not shown: a value given without its name may be a secret.",
		}}
	}
	v, ok := l.vars[name]
	if !ok && ignoreUndeclared {
		return nil
	}
	if !ok {
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Value for undeclared variable",
			Detail: fmt.Sprintf("-var sets %q, but no job file declares it.%s Declare it with a variable %q {} block, or remove the option.",
				name, didYouMean(name, l.varNames()), name),
		}}
	}
	return v.setRaw(raw, "-var", l.guard)
}

func (l *loader) applyVarFile(path string) hcl.Diagnostics {
	src, err := os.ReadFile(path)
	if err != nil {
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Cannot read var file",
			Detail:   fmt.Sprintf("Reading %s: %v.", path, pathErr(err)),
		}}
	}
	var f *hcl.File
	var diags hcl.Diagnostics
	if strings.HasSuffix(path, ".json") {
		if d := checkNesting(path, src, scanJSON); d != nil {
			return hcl.Diagnostics{d}
		}
		f, diags = l.parser.ParseJSON(src, path)
	} else {
		f, diags = l.parseHCL(src, path)
	}
	if diags.HasErrors() {
		return diags
	}
	// Declaring a variable in a var file is a common slip: say so rather
	// than reporting an unexpected block.
	if body, ok := f.Body.(*hclsyntax.Body); ok && len(body.Blocks) > 0 {
		for _, b := range body.Blocks {
			detail := "A var file only assigns values, as in image_uri = \"https://example.com/fw.bin\"; blocks belong in job files."
			if b.Type == "variable" {
				detail = "A var file assigns values to variables that job files declare, as in image_uri = \"https://example.com/fw.bin\". Move this variable block to the job file."
			}
			diags = append(diags, errorAt(b.DefRange(), "Block in var file", detail))
		}
		return diags
	}
	attrs, d := f.Body.JustAttributes()
	diags = append(diags, d...)
	for _, attr := range sortedAttrs(attrs) {
		v, ok := l.vars[attr.Name]
		if !ok {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagWarning,
				Summary:  "Value for undeclared variable",
				Detail: fmt.Sprintf("The var file sets %q, but no job file declares it, so it is ignored.%s",
					attr.Name, didYouMean(attr.Name, l.varNames())),
				Subject: attr.NameRange.Ptr(),
			})
			continue
		}
		val, d := evaluate(attr.Expr, nil)
		diags = append(diags, d...)
		if d.HasErrors() {
			continue
		}
		conv, err := v.convert(val)
		if err != nil {
			diags = append(diags, errorfAt(attr.Expr.Range(), "Invalid value for variable",
				"The value of var.%s is not a valid %s: %s.", v.Name, typeexpr.TypeString(v.Type), err))
			continue
		}
		r := attr.Expr.Range()
		v.Value, v.ValueFrom, v.valueRange = conv, "var file", &r
	}
	return diags
}

func (l *loader) varNames() []string {
	names := make([]string, 0, len(l.vars))
	for n := range l.vars {
		names = append(names, n)
	}
	return names
}

func (l *loader) checkValidations(v *Variable) hcl.Diagnostics {
	var diags hcl.Diagnostics
	ctx := &hcl.EvalContext{
		Variables: map[string]cty.Value{"var": l.varObj},
		Functions: l.funcs,
	}
	for _, val := range v.Validations {
		res, d := evaluate(val.Condition, ctx)
		diags = append(diags, d...)
		if d.HasErrors() {
			continue
		}
		ok, err := convert.Convert(res, cty.Bool)
		if err != nil || ok.IsNull() || !ok.IsKnown() {
			diags = append(diags, errorAt(val.Condition.Range(), "Invalid validation result",
				"A validation condition must be true or false."))
			continue
		}
		if ok.True() {
			continue
		}
		subject := val.Condition.Range()
		if v.valueRange != nil {
			subject = *v.valueRange
		}
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid value for variable",
			Detail: fmt.Sprintf("%s\n\nThe value of var.%s (from %s) fails the validation rule at %s.",
				strings.TrimSpace(val.ErrorMessage), v.Name, v.ValueFrom, posString(val.DeclRange)),
			Subject: subject.Ptr(),
		})
	}
	return diags
}
