package jobs

import (
	"encoding/json"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"
)

// Step limits and defaults.
const (
	// MaxPayloadBytes is the hub's limit on a direct method payload.
	MaxPayloadBytes = 128 * 1024
	// MaxDesiredBytes is the hub's limit on a twin's desired properties.
	MaxDesiredBytes = 32 * 1024

	DefaultResponseTimeout = 30 * time.Second
	MinResponseTimeout     = 5 * time.Second
	MaxResponseTimeout     = 300 * time.Second
	MaxConnectTimeout      = 300 * time.Second
	// DefaultStepTimeout bounds a step from invocation to success when the
	// step has no timeout.
	DefaultStepTimeout = 10 * time.Minute
	DefaultAttempts    = 3
	DefaultBackoff     = 10 * time.Second
)

// Step is one action per device: a direct method invocation (Method) or a
// desired-property patch (Desired), followed until its conditions decide.
type Step struct {
	Name string
	// Method is the direct method's name; "" for a desired step.
	Method string
	// Desired is the desired-property patch as a JSON object; nil for a
	// method step.
	Desired json.RawMessage
	// Payload is the method payload as JSON ("null" when not given), at
	// most MaxPayloadBytes.
	Payload json.RawMessage
	// ResponseTimeout is the hub's responseTimeoutInSeconds (5s to 300s,
	// 30s by default); ConnectTimeout its connectTimeoutInSeconds (0 to
	// 300s, 0 by default). Both are whole seconds.
	ResponseTimeout time.Duration
	ConnectTimeout  time.Duration
	// AcceptStatus are the method status codes that count as accepted;
	// [200] by default.
	AcceptStatus []int
	// Progress, Success and Failure are the per-device expressions, nil
	// when absent; evaluate them with Observe, which applies
	// MaxExpressionBytes (their syntax trees may call functions that only
	// Observe provides).
	Progress hcl.Expression
	Success  hcl.Expression
	Failure  hcl.Expression
	// ProgressText, SuccessText and FailureText are those expressions as
	// written, on one line, for people reviewing a plan; "" when absent.
	ProgressText, SuccessText, FailureText string
	// Timeout bounds the step from invocation to success.
	Timeout time.Duration
	Retry   Retry
	// Sensitive is true when Payload or Desired uses a sensitive variable;
	// such values must not be stored or logged.
	Sensitive bool
	DeclRange hcl.Range

	env   *evalEnv
	needs map[string]needTree
	// calls of progress, success and failure.
	calls [3]*calls
	// normalized expression text for the hash.
	norm [3]string
}

// IsMethod reports whether the step invokes a direct method (otherwise it
// patches desired properties).
func (s *Step) IsMethod() bool { return s.Method != "" }

// Retry is the policy for transient invocation failures: device offline,
// throttled, hub 5xx, response timeout.
type Retry struct {
	// Attempts is the most invocations in total; 1 means no retry.
	Attempts int
	// Backoff is the first delay; later delays double, with jitter.
	Backoff   time.Duration
	DeclRange hcl.Range
}

var stepSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "method"},
		{Name: "desired"},
		{Name: "payload"},
		{Name: "response_timeout"},
		{Name: "connect_timeout"},
		{Name: "accept_status"},
		{Name: "progress"},
		{Name: "success"},
		{Name: "failure"},
		{Name: "timeout"},
	},
	Blocks: []hcl.BlockHeaderSchema{{Type: "retry"}},
}

var retrySchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "attempts"},
		{Name: "backoff"},
	},
}

// methodOnly are the attributes that make sense only for method steps.
var methodOnly = []string{"payload", "response_timeout", "connect_timeout", "accept_status"}

func (l *loader) decodeStep(b *hcl.Block, jobName string, env *evalEnv) (*Step, hcl.Diagnostics) {
	s := &Step{
		Name:            b.Labels[0],
		DeclRange:       blockRange(b),
		env:             env,
		Payload:         json.RawMessage("null"),
		ResponseTimeout: DefaultResponseTimeout,
		AcceptStatus:    []int{200},
		Timeout:         DefaultStepTimeout,
		Retry:           Retry{Attempts: DefaultAttempts, Backoff: DefaultBackoff},
	}
	where := fmt.Sprintf("In step %q", s.Name)
	diags := checkName(s.Name, "step", b.LabelRanges[0])
	content, d := decodeContent(b.Body, stepSchema, where)
	diags = append(diags, d...)
	if d.HasErrors() {
		return nil, diags
	}
	attrs := content.Attributes
	ad := l.attrDecoder(attrs, l.staticContext(jobName), where)

	methodAttr, desiredAttr := attrs["method"], attrs["desired"]
	switch {
	case methodAttr != nil && desiredAttr != nil:
		ad.errorf(desiredAttr, "Conflicting step action",
			"A step either invokes a direct method (method) or patches desired properties (desired), not both; method is set at %s. Split it into two steps.", posString(methodAttr.Range))
	case methodAttr == nil && desiredAttr == nil:
		ad.diags = append(ad.diags, errorfAt(s.DeclRange, "Step has no action",
			"Step %q needs method = \"name\" (a direct method) or desired = { ... } (a desired-property patch).", s.Name))
	case methodAttr != nil:
		l.decodeMethod(ad, s)
	default:
		l.decodeDesired(ad, s)
	}

	for i, name := range []string{"progress", "success", "failure"} {
		attr, ok := attrs[name]
		if !ok {
			continue
		}
		if d := l.checkExpr(attr.Expr, scopeCondition, name); d.HasErrors() {
			ad.diags = append(ad.diags, d...)
			continue
		}
		want := cty.Bool
		if name == "progress" {
			want = cty.DynamicPseudoType
		}
		ad.diags = append(ad.diags, l.probeExpr(attr.Expr, jobName, name, want)...)
		text := l.oneLine(attr.Expr)
		switch name {
		case "progress":
			s.Progress, s.ProgressText = attr.Expr, text
		case "success":
			s.Success, s.SuccessText = attr.Expr, text
		case "failure":
			s.Failure, s.FailureText = attr.Expr, text
		}
		s.norm[i] = l.normalizeExpr(attr.Expr)
		s.calls[i] = findCalls(attr.Expr, env.funcs)
	}
	s.needs = map[string]needTree{}
	for _, e := range []hcl.Expression{s.Progress, s.Success, s.Failure} {
		collectNeeds(s.needs, e)
	}

	s.Timeout = ad.duration("timeout", DefaultStepTimeout, time.Second, 0, false)
	if s.IsMethod() && s.Timeout < s.ResponseTimeout {
		if attr, ok := attrs["timeout"]; ok {
			ad.errorf(attr, "Step timeout shorter than response timeout",
				"The step times out after %s, before the hub gives up waiting for the device's answer (response_timeout %s). Make timeout at least %s.",
				fmtDuration(s.Timeout), fmtDuration(s.ResponseTimeout), fmtDuration(s.ResponseTimeout))
		}
	}

	first, d := uniqueBlock(content.Blocks, "retry", "A step")
	diags = append(diags, d...)
	if first != nil {
		r, d := l.decodeRetry(first, jobName)
		diags = append(diags, d...)
		s.Retry = r
	}
	return s, append(diags, ad.diags...)
}

func (l *loader) decodeMethod(ad *attrDecoder, s *Step) {
	if name, attr := ad.str("method"); attr != nil {
		if strings.TrimSpace(name) == "" {
			ad.errorf(attr, "Empty method name", "method names the direct method to invoke, such as \"rebootDevice\".")
		}
		s.Method = name
	}
	if v, attr := ad.value("payload", cty.DynamicPseudoType); attr != nil {
		b, err := ctyjson.Marshal(v, v.Type())
		switch {
		case err != nil:
			ad.errorf(attr, "Invalid payload", "The payload cannot be sent as JSON: %v.", err)
		case len(b) > MaxPayloadBytes:
			ad.errorf(attr, "Payload too large",
				"The payload is %d bytes as JSON; the hub accepts at most %d (128 KB). Send a link to large content instead.", len(b), MaxPayloadBytes)
		default:
			s.Payload = b
		}
		s.Sensitive = s.Sensitive || ad.l.usesSensitive(attr.Expr)
	}
	s.ResponseTimeout = ad.duration("response_timeout", DefaultResponseTimeout, MinResponseTimeout, MaxResponseTimeout, true)
	s.ConnectTimeout = ad.duration("connect_timeout", 0, 0, MaxConnectTimeout, true)
	if v, attr := ad.value("accept_status", cty.List(cty.Number)); attr != nil {
		var codes []int
		for _, e := range v.AsValueSlice() {
			if e.IsNull() {
				ad.errorf(attr, "Invalid accept_status", "accept_status lists method status codes; it cannot contain null.")
				return
			}
			i, acc := e.AsBigFloat().Int64()
			if acc != big.Exact || i < -1<<31 || i > 1<<31-1 {
				ad.errorf(attr, "Invalid accept_status", "accept_status lists whole status codes, such as [200, 202].")
				return
			}
			codes = append(codes, int(i))
		}
		if len(codes) == 0 {
			ad.errorf(attr, "Invalid accept_status", "accept_status needs at least one status code; remove it to accept only 200.")
			return
		}
		s.AcceptStatus = codes
	}
}

func (l *loader) decodeDesired(ad *attrDecoder, s *Step) {
	for _, name := range methodOnly {
		if attr, ok := ad.attrs[name]; ok {
			ad.errorf(attr, "Argument only for method steps",
				"%s applies to direct methods; this step patches desired properties, whose value is the desired object itself. Remove %s, or use method = \"name\".", name, name)
		}
	}
	v, attr := ad.value("desired", cty.DynamicPseudoType)
	if attr == nil {
		return
	}
	if !v.Type().IsObjectType() && !v.Type().IsMapType() {
		ad.errorf(attr, "Invalid desired patch", "desired must be an object of properties, such as { maintenanceWindow = { start = \"01:00\" } }, not %s.", v.Type().FriendlyName())
		return
	}
	if msg := checkTwinKeys(v, "desired"); msg != "" {
		ad.errorf(attr, "Invalid desired property name", "%s", msg)
		return
	}
	b, err := ctyjson.Marshal(v, v.Type())
	switch {
	case err != nil:
		ad.errorf(attr, "Invalid desired patch", "The patch cannot be sent as JSON: %v.", err)
	case len(b) > MaxDesiredBytes:
		ad.errorf(attr, "Desired patch too large", "The patch is %d bytes as JSON; a twin's desired properties hold at most %d (32 KB).", len(b), MaxDesiredBytes)
	default:
		s.Desired = b
	}
	s.Sensitive = s.Sensitive || l.usesSensitive(attr.Expr)
}

// checkTwinKeys checks property names against the hub's rules for twin
// keys: no '.', '$', space or control characters.
func checkTwinKeys(v cty.Value, path string) string {
	if v.IsNull() || !(v.Type().IsObjectType() || v.Type().IsMapType()) {
		return ""
	}
	for it := v.ElementIterator(); it.Next(); {
		k, ev := it.Element()
		key := k.AsString()
		if key == "" || strings.ContainsAny(key, ".$ ") || strings.ContainsFunc(key, func(r rune) bool { return r < 0x20 || (r >= 0x7f && r < 0xa0) }) {
			return fmt.Sprintf("%s.%q: twin property names cannot be empty or contain '.', '$', spaces or control characters.", path, key)
		}
		if msg := checkTwinKeys(ev, path+"."+key); msg != "" {
			return msg
		}
	}
	return ""
}

func (l *loader) decodeRetry(b *hcl.Block, jobName string) (Retry, hcl.Diagnostics) {
	r := Retry{Attempts: DefaultAttempts, Backoff: DefaultBackoff, DeclRange: b.DefRange}
	where := "In a retry block"
	content, diags := decodeContent(b.Body, retrySchema, where)
	if diags.HasErrors() {
		return r, diags
	}
	ad := l.attrDecoder(content.Attributes, l.staticContext(jobName), where)
	r.Attempts = ad.integer("attempts", DefaultAttempts, 1, 100)
	r.Backoff = ad.duration("backoff", DefaultBackoff, 0, time.Hour, false)
	return r, append(diags, ad.diags...)
}

// usesSensitive reports whether expr refers to a sensitive variable.
func (l *loader) usesSensitive(expr hcl.Expression) bool {
	for _, tr := range expr.Variables() {
		if tr.RootName() != "var" || len(tr) < 2 {
			continue
		}
		if name, ok := traverserKey(tr[1]); ok {
			if v := l.vars[name]; v != nil && v.Sensitive {
				return true
			}
		}
	}
	return false
}

// checkName checks the name of a job, step or window: it appears in run
// ids, the database and command lines, so it is kept to a safe alphabet.
func checkName(name, kind string, r hcl.Range) hcl.Diagnostics {
	ok := name != "" && len(name) <= 64
	for i, c := range name {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case (c == '-' || c == '_' || c == '.') && i > 0:
		default:
			ok = false
		}
	}
	if ok {
		return nil
	}
	return hcl.Diagnostics{errorfAt(r, fmt.Sprintf("Invalid %s name", kind),
		"%q cannot name a %s: use 1 to 64 letters, digits, '-', '_' and '.', starting with a letter or digit.", name, kind)}
}
