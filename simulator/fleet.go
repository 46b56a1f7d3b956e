package simulator

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/agext/levenshtein"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// MaxFleetSize bounds the devices one fleet file may describe.
const MaxFleetSize = 1_000_000

// Fleet is a decoded fleet file: groups of devices in file order. A Fleet is
// immutable once loaded and safe for concurrent use.
type Fleet struct {
	// Path is the file name diagnostics refer to.
	Path string
	// Groups in file order; a device's position in the fleet follows it.
	Groups []*Group
}

// Size is the number of devices in f.
func (f *Fleet) Size() int {
	n := 0
	for _, g := range f.Groups {
		n += g.Count
	}
	return n
}

// Group is Count devices with one ID pattern, tag and reported-property
// templates, and one set of behaviours.
type Group struct {
	// Name is the group's label in the fleet file.
	Name string
	// Count is the number of devices in the group.
	Count int
	// IDPattern is a fmt pattern with one integer verb, e.g. "press-%03d",
	// or, for a group of one device, the device ID itself.
	IDPattern string
	// First is the number the first device's ID is formatted with (default 1).
	First int
	// Behaviour is the group's behaviour, defaults and the file's defaults
	// block applied.
	Behaviour Behaviour
	// DeclRange is where the group block starts.
	DeclRange hcl.Range

	// numbered is false for a pattern without a verb (a single device).
	numbered bool

	// Object expressions evaluated per device, defaults block first; later
	// layers override earlier ones key by key.
	tags, reported []hcl.Expression
}

// DeviceID returns the ID of the group's i-th device (0-based).
func (g *Group) DeviceID(i int) string {
	if !g.numbered {
		return g.IDPattern
	}
	return fmt.Sprintf(g.IDPattern, g.First+i)
}

// Behaviour is what a group's devices do. Every device answers rebootDevice
// and firmwareUpdate and acknowledges maintenance-window policies; the
// fields say how long that takes, how often it fails, and which share of the
// devices is offline, flaky or slow.
type Behaviour struct {
	// RebootTime is how long a device stays disconnected while rebooting.
	RebootTime Range
	// Firmware shapes the firmwareUpdate method.
	Firmware Firmware
	// Offline is the fraction of the group's devices (rounded to the nearest
	// device) that report their initial state once, then stay offline for
	// the whole simulation.
	Offline float64
	// Flaky devices drop their connection now and then and come back.
	Flaky Flaky
	// Slow devices answer every direct method late.
	Slow Slow
	// Window shapes the answer to a maintenance-window policy.
	Window Window
}

// Firmware shapes a firmware update: the time each stage takes, the
// probability that it fails (drawn per update), and how the new fwVersion
// is read from the package URI.
type Firmware struct {
	Downloading, Applying         Range
	FailDownloading, FailApplying float64
	// VersionPattern picks the version out of the package file name; see
	// DefaultVersionPattern.
	VersionPattern *regexp.Regexp
}

// Flaky makes a Fraction of the group's online devices disconnect on their
// own, DisconnectsPerHour times an hour on average (exponentially spaced),
// each time for a Downtime.
type Flaky struct {
	Fraction           float64
	DisconnectsPerHour float64
	Downtime           Range
}

// Slow makes a Fraction of the group's online devices answer each direct
// method only after Delay.
type Slow struct {
	Fraction float64
	Delay    Range
}

// Window says how devices answer a maintenanceWindow desired property: each
// device accepts policies with probability Accept (drawn once per device)
// and answers after Delay.
type Window struct {
	Accept float64
	Delay  Range
}

// DefaultBehaviour is what a group's devices do when the fleet file says
// nothing: reboots and both firmware stages take 1–3 s, nothing fails, every
// device is online, steady and prompt, and accepts window policies at once.
func DefaultBehaviour() Behaviour {
	return Behaviour{
		RebootTime: Range{time.Second, 3 * time.Second},
		Firmware: Firmware{
			Downloading:    Range{time.Second, 3 * time.Second},
			Applying:       Range{time.Second, 3 * time.Second},
			VersionPattern: regexp.MustCompile(DefaultVersionPattern),
		},
		Flaky:  Flaky{DisconnectsPerHour: 4, Downtime: Range{2 * time.Second, 10 * time.Second}},
		Window: Window{Accept: 1},
	}
}

// Behaviour block names, in the order the diagnostics list them.
var behaviourNames = []string{"reboot", "firmware", "offline", "flaky", "slow", "maintenance_window"}

var behaviourSchemas = map[string]*hcl.BodySchema{
	"reboot": {Attributes: []hcl.AttributeSchema{{Name: "duration"}}},
	"firmware": {Attributes: []hcl.AttributeSchema{
		{Name: "downloading"}, {Name: "applying"},
		{Name: "fail_downloading"}, {Name: "fail_applying"},
		{Name: "version_pattern"},
	}},
	"offline": {Attributes: []hcl.AttributeSchema{{Name: "fraction"}}},
	"flaky": {Attributes: []hcl.AttributeSchema{
		{Name: "fraction"}, {Name: "disconnects_per_hour"}, {Name: "downtime"},
	}},
	"slow":               {Attributes: []hcl.AttributeSchema{{Name: "fraction"}, {Name: "delay"}}},
	"maintenance_window": {Attributes: []hcl.AttributeSchema{{Name: "accept"}, {Name: "delay"}}},
}

var fileSchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "defaults"},
		{Type: "group", LabelNames: []string{"name"}},
	},
}

// groupArgs are the arguments of a group block; a defaults block takes the
// last two only.
var (
	groupArgs    = []string{"count", "id", "first", "tags", "reported"}
	defaultsArgs = []string{"tags", "reported"}
)

func bodySchema(args []string) *hcl.BodySchema {
	s := &hcl.BodySchema{}
	for _, a := range args {
		s.Attributes = append(s.Attributes, hcl.AttributeSchema{Name: a, Required: a == "count"})
	}
	for _, b := range behaviourNames {
		s.Blocks = append(s.Blocks, hcl.BlockHeaderSchema{Type: b})
	}
	return s
}

// LoadFleet decodes a fleet file. Every problem (an unknown behaviour, a
// probability outside [0,1], a bad duration or ID pattern, a tag expression
// that cannot be evaluated, two groups producing the same device ID) is a
// diagnostic with the file, line and column, found before any device is
// touched. The Fleet is nil when the diagnostics hold an error.
func LoadFleet(path string, src []byte) (*Fleet, hcl.Diagnostics) {
	file, diags := hclsyntax.ParseConfig(src, path, hcl.InitialPos)
	if diags.HasErrors() {
		return nil, diags
	}
	content, d := file.Body.Content(fileSchema)
	diags = append(diags, d...)

	fleet := &Fleet{Path: path}
	base := DefaultBehaviour()
	var baseBlocks map[string]bool
	var baseTags, baseReported []hcl.Expression
	var defaultsRange *hcl.Range
	for _, blk := range content.Blocks {
		if blk.Type != "defaults" {
			continue
		}
		if defaultsRange != nil {
			diags = append(diags, duplicate("defaults block", blk.DefRange, *defaultsRange))
			continue
		}
		defaultsRange = blk.DefRange.Ptr()
		dc, d := decodeBody(blk.Body, defaultsArgs, "defaults block")
		diags = append(diags, d...)
		b, d := decodeBehaviour(dc, base, nil)
		diags = append(diags, d...)
		base = b
		baseBlocks = blockSet(dc)
		baseTags = appendExpr(nil, dc.Attributes["tags"])
		baseReported = appendExpr(nil, dc.Attributes["reported"])
	}

	seenGroups := map[string]hcl.Range{}
	for _, blk := range content.Blocks {
		if blk.Type != "group" {
			continue
		}
		name := blk.Labels[0]
		if name == "" {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError, Summary: "Empty group name",
				Detail:  `A group needs a name, for example group "plant7-press" { … }.`,
				Subject: blk.LabelRanges[0].Ptr(),
			})
			continue
		}
		if first, dup := seenGroups[name]; dup {
			diags = append(diags, duplicate(fmt.Sprintf("group %q", name), blk.DefRange, first))
			continue
		}
		seenGroups[name] = blk.DefRange
		g, d := decodeGroup(blk, base, baseBlocks)
		diags = append(diags, d...)
		if g == nil {
			continue
		}
		g.tags = append(slices.Clone(baseTags), g.tags...)
		g.reported = append(slices.Clone(baseReported), g.reported...)
		fleet.Groups = append(fleet.Groups, g)
	}
	if len(seenGroups) == 0 && !diags.HasErrors() {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError, Summary: "No devices",
			Detail:  `A fleet file needs at least one group block, for example group "press" { count = 10 }.`,
			Subject: file.Body.MissingItemRange().Ptr(),
		})
	}
	if diags.HasErrors() {
		return nil, sortDiags(diags)
	}
	diags = append(diags, checkFleet(fleet)...)
	if diags.HasErrors() {
		return nil, sortDiags(diags)
	}
	return fleet, diags
}

func appendExpr(list []hcl.Expression, a *hcl.Attribute) []hcl.Expression {
	if a == nil {
		return list
	}
	return append(list, a.Expr)
}

func blockSet(c *hcl.BodyContent) map[string]bool {
	m := map[string]bool{}
	for _, b := range c.Blocks {
		m[b.Type] = true
	}
	return m
}

func duplicate(what string, at, first hcl.Range) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Duplicate " + strings.Fields(what)[0],
		Detail:   fmt.Sprintf("This %s was already defined at %s:%d,%d; merge the two.", what, first.Filename, first.Start.Line, first.Start.Column),
		Subject:  at.Ptr(),
	}
}

// decodeBody checks a group or defaults body for unknown behaviours and
// arguments (with targeted messages), then extracts what it knows of the
// content, so that one mistake does not hide the next.
func decodeBody(body hcl.Body, args []string, where string) (*hcl.BodyContent, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	if sb, ok := body.(*hclsyntax.Body); ok {
		for _, b := range sb.Blocks {
			if slices.Contains(behaviourNames, b.Type) {
				continue
			}
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Unknown behaviour",
				Detail: fmt.Sprintf("%q is not a behaviour. A %s takes the behaviour blocks %s.%s",
					b.Type, where, strings.Join(behaviourNames, ", "), suggest(b.Type, behaviourNames)),
				Subject: b.TypeRange.Ptr(),
				Context: hcl.RangeBetween(b.TypeRange, b.OpenBraceRange).Ptr(),
			})
		}
		for name, a := range sb.Attributes {
			switch {
			case slices.Contains(args, name):
			case slices.Contains(behaviourNames, name):
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Behaviour written as an argument",
					Detail:   fmt.Sprintf("%s is a block: write %s { … } with its settings inside.", name, name),
					Subject:  a.NameRange.Ptr(),
				})
			default:
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Unsupported argument",
					Detail: fmt.Sprintf("An argument named %q is not expected in a %s; it takes %s, and the behaviour blocks %s.%s",
						name, where, strings.Join(args, ", "), strings.Join(behaviourNames, ", "), suggest(name, args)),
					Subject: a.NameRange.Ptr(),
				})
			}
		}
	}
	content, _, d := body.PartialContent(bodySchema(args))
	diags = append(diags, d...)
	seen := map[string]hcl.Range{}
	for _, b := range content.Blocks {
		if first, dup := seen[b.Type]; dup {
			diags = append(diags, duplicate(b.Type+" block", b.DefRange, first))
			continue
		}
		seen[b.Type] = b.DefRange
	}
	return content, diags
}

func suggest(name string, options []string) string {
	best, bestDist := "", 3
	for _, o := range options {
		if d := levenshtein.Distance(name, o, nil); d < bestDist {
			best, bestDist = o, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" Did you mean %q?", best)
}

func decodeGroup(blk *hcl.Block, base Behaviour, baseBlocks map[string]bool) (*Group, hcl.Diagnostics) {
	name := blk.Labels[0]
	content, diags := decodeBody(blk.Body, groupArgs, "group")
	g := &Group{
		Name:      name,
		First:     1,
		IDPattern: strings.ReplaceAll(name, "%", "%%") + "-%04d",
		DeclRange: blk.DefRange,
	}
	if a := content.Attributes["count"]; a != nil {
		n, d := decodeInt(a, 0, MaxFleetSize)
		diags = append(diags, d...)
		g.Count = n
	}
	if a := content.Attributes["first"]; a != nil {
		n, d := decodeInt(a, 0, math.MaxInt32)
		diags = append(diags, d...)
		g.First = n
	}
	if a := content.Attributes["id"]; a != nil {
		s, d := decodeString(a)
		diags = append(diags, d...)
		if !d.HasErrors() {
			g.IDPattern = s
		}
	}
	g.tags = appendExpr(nil, content.Attributes["tags"])
	g.reported = appendExpr(nil, content.Attributes["reported"])
	b, d := decodeBehaviour(content, base, baseBlocks)
	diags = append(diags, d...)
	g.Behaviour = b
	if diags.HasErrors() {
		return nil, diags
	}
	diags = append(diags, checkIDPattern(g, content.Attributes["id"], blk.DefRange)...)
	if diags.HasErrors() {
		return nil, diags
	}
	return g, diags
}

// decodeBehaviour applies the behaviour blocks in content over base. A
// fraction left out of an offline, flaky or slow block means the whole group,
// unless the defaults block set it (inherited lists the defaults' blocks).
func decodeBehaviour(content *hcl.BodyContent, base Behaviour, inherited map[string]bool) (Behaviour, hcl.Diagnostics) {
	b := base
	b.Firmware.VersionPattern = base.Firmware.VersionPattern
	var diags hcl.Diagnostics
	for _, blk := range content.Blocks {
		bc, d := blk.Body.Content(behaviourSchemas[blk.Type])
		diags = append(diags, d...)
		if bc == nil {
			continue
		}
		at := bc.Attributes
		fraction := func(dst *float64) {
			if a := at["fraction"]; a != nil {
				diags = decodeShare(a, "Fraction", dst, diags)
			} else if !inherited[blk.Type] {
				*dst = 1
			}
		}
		switch blk.Type {
		case "reboot":
			diags = decodeRange(at["duration"], &b.RebootTime, diags)
		case "firmware":
			diags = decodeRange(at["downloading"], &b.Firmware.Downloading, diags)
			diags = decodeRange(at["applying"], &b.Firmware.Applying, diags)
			diags = decodeShare(at["fail_downloading"], "Probability", &b.Firmware.FailDownloading, diags)
			diags = decodeShare(at["fail_applying"], "Probability", &b.Firmware.FailApplying, diags)
			if a := at["version_pattern"]; a != nil {
				s, d := decodeString(a)
				diags = append(diags, d...)
				if !d.HasErrors() {
					re, err := regexp.Compile(s)
					if err != nil {
						diags = append(diags, &hcl.Diagnostic{
							Severity: hcl.DiagError, Summary: "Invalid version pattern",
							Detail:  fmt.Sprintf("version_pattern must be an RE2 regular expression: %v.", err),
							Subject: a.Expr.Range().Ptr(),
						})
					} else {
						b.Firmware.VersionPattern = re
					}
				}
			}
		case "offline":
			fraction(&b.Offline)
		case "flaky":
			fraction(&b.Flaky.Fraction)
			if a := at["disconnects_per_hour"]; a != nil {
				v, d := decodeNumber(a)
				diags = append(diags, d...)
				if !d.HasErrors() {
					if v < 0 || v > 3600*100 {
						diags = append(diags, &hcl.Diagnostic{
							Severity: hcl.DiagError, Summary: "Invalid disconnect rate",
							Detail:  fmt.Sprintf("disconnects_per_hour = %g is out of range; use a number from 0 to 360000.", v),
							Subject: a.Expr.Range().Ptr(),
						})
					} else {
						b.Flaky.DisconnectsPerHour = v
					}
				}
			}
			diags = decodeRange(at["downtime"], &b.Flaky.Downtime, diags)
		case "slow":
			fraction(&b.Slow.Fraction)
			diags = decodeRange(at["delay"], &b.Slow.Delay, diags)
		case "maintenance_window":
			diags = decodeShare(at["accept"], "Probability", &b.Window.Accept, diags)
			diags = decodeRange(at["delay"], &b.Window.Delay, diags)
		}
	}
	return b, diags
}

// constValue evaluates an expression that may use neither variables nor
// functions.
func constValue(a *hcl.Attribute) (cty.Value, hcl.Diagnostics) {
	v, diags := a.Expr.Value(nil)
	if diags.HasErrors() {
		return cty.NilVal, diags
	}
	if v.IsNull() {
		return cty.NilVal, hcl.Diagnostics{{
			Severity: hcl.DiagError, Summary: "Missing value",
			Detail:  fmt.Sprintf("%s must not be null.", a.Name),
			Subject: a.Expr.Range().Ptr(),
		}}
	}
	return v, nil
}

func decodeNumber(a *hcl.Attribute) (float64, hcl.Diagnostics) {
	v, diags := constValue(a)
	if diags.HasErrors() {
		return 0, diags
	}
	n, err := convert.Convert(v, cty.Number)
	if err != nil {
		return 0, hcl.Diagnostics{{
			Severity: hcl.DiagError, Summary: "Invalid number",
			Detail:  fmt.Sprintf("%s must be a number.", a.Name),
			Subject: a.Expr.Range().Ptr(),
		}}
	}
	f, _ := n.AsBigFloat().Float64()
	return f, nil
}

func decodeInt(a *hcl.Attribute, lo, hi int) (int, hcl.Diagnostics) {
	f, diags := decodeNumber(a)
	if diags.HasErrors() {
		return 0, diags
	}
	if f != math.Trunc(f) || f < float64(lo) || f > float64(hi) {
		return 0, hcl.Diagnostics{{
			Severity: hcl.DiagError, Summary: "Invalid " + a.Name,
			Detail:  fmt.Sprintf("%s = %g must be a whole number from %d to %d.", a.Name, f, lo, hi),
			Subject: a.Expr.Range().Ptr(),
		}}
	}
	return int(f), nil
}

func decodeString(a *hcl.Attribute) (string, hcl.Diagnostics) {
	v, diags := constValue(a)
	if diags.HasErrors() {
		return "", diags
	}
	s, err := convert.Convert(v, cty.String)
	if err != nil || v.Type() != cty.String {
		return "", hcl.Diagnostics{{
			Severity: hcl.DiagError, Summary: "Invalid " + a.Name,
			Detail:  fmt.Sprintf("%s must be a string.", a.Name),
			Subject: a.Expr.Range().Ptr(),
		}}
	}
	return s.AsString(), nil
}

// decodeShare reads a probability or fraction in [0,1] into dst when a is set.
func decodeShare(a *hcl.Attribute, kind string, dst *float64, diags hcl.Diagnostics) hcl.Diagnostics {
	if a == nil {
		return diags
	}
	f, d := decodeNumber(a)
	if d.HasErrors() {
		return append(diags, d...)
	}
	if f < 0 || f > 1 || math.IsNaN(f) {
		return append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  kind + " out of range",
			Detail:   fmt.Sprintf("%s = %g: a %s is a number from 0 to 1 (0.05 is 5%%).", a.Name, f, strings.ToLower(kind)),
			Subject:  a.Expr.Range().Ptr(),
		})
	}
	*dst = f
	return diags
}

// decodeRange reads a duration or duration range into dst when a is set.
func decodeRange(a *hcl.Attribute, dst *Range, diags hcl.Diagnostics) hcl.Diagnostics {
	if a == nil {
		return diags
	}
	s, d := decodeString(a)
	if d.HasErrors() {
		return append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError, Summary: "Invalid duration",
			Detail:  fmt.Sprintf(`%s must be a duration string such as "2s", or a range such as "1s..3s".`, a.Name),
			Subject: a.Expr.Range().Ptr(),
		})
	}
	r, err := ParseRange(s)
	if err != nil {
		return append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError, Summary: "Invalid duration",
			Detail:  fmt.Sprintf(`%s: %v. Write a duration such as "2s", or a range such as "1s..3s".`, a.Name, err),
			Subject: a.Expr.Range().Ptr(),
		})
	}
	*dst = r
	return diags
}

// checkIDPattern makes sure the pattern formats one integer into a device
// ID the hub accepts.
func checkIDPattern(g *Group, a *hcl.Attribute, def hcl.Range) hcl.Diagnostics {
	subject := def.Ptr()
	if a != nil {
		subject = a.Expr.Range().Ptr()
	}
	bad := func(detail string) hcl.Diagnostics {
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid ID pattern", Detail: detail, Subject: subject}}
	}
	if g.Count == 0 {
		return nil
	}
	g.numbered = !strings.Contains(fmt.Sprintf(g.IDPattern, g.First), "%!(EXTRA")
	if !g.numbered {
		if g.Count > 1 {
			return bad(fmt.Sprintf("%q names one device but the group has %d; add an integer verb such as %%03d.", g.IDPattern, g.Count))
		}
		if err := checkDeviceID(g.IDPattern); err != nil {
			return bad(fmt.Sprintf("%q is not a device ID: %v.", g.IDPattern, err))
		}
		return nil
	}
	for _, n := range []int{g.First, g.First + g.Count - 1} {
		id := fmt.Sprintf(g.IDPattern, n)
		if strings.Contains(id, "%!") {
			return bad(fmt.Sprintf("%q must hold exactly one integer verb such as %%03d (formatting %d gave %q).", g.IDPattern, n, id))
		}
		if err := checkDeviceID(id); err != nil {
			return bad(fmt.Sprintf("%q gives the device ID %q: %v.", g.IDPattern, id, err))
		}
	}
	if g.Count > 1 && g.DeviceID(0) == g.DeviceID(1) {
		return bad(fmt.Sprintf("%q gives the same ID to every device; use an integer verb such as %%03d.", g.IDPattern))
	}
	return nil
}

// checkDeviceID applies the hub's rule for device IDs: up to 128 ASCII
// letters, digits and - . _ * ? ! ( ) , : = @ $ '. The '%', '+' and '#' the
// hub also allows are refused here because they need escaping in URLs and
// MQTT topics.
func checkDeviceID(id string) error {
	if id == "" {
		return fmt.Errorf("it is empty")
	}
	if len(id) > 128 {
		return fmt.Errorf("it is %d characters long, over the hub's 128", len(id))
	}
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("-._*?!(),:=@$'", r):
		default:
			return fmt.Errorf("%q is not allowed in a device ID", r)
		}
	}
	return nil
}

// checkFleet checks what needs the whole fleet: its size, unique device IDs,
// and tag and reported templates that evaluate for the first and last device
// of each group.
func checkFleet(f *Fleet) hcl.Diagnostics {
	var diags hcl.Diagnostics
	if n := f.Size(); n > MaxFleetSize {
		return hcl.Diagnostics{{
			Severity: hcl.DiagError, Summary: "Fleet too large",
			Detail:  fmt.Sprintf("The groups add up to %d devices; at most %d are supported.", n, MaxFleetSize),
			Subject: f.Groups[len(f.Groups)-1].DeclRange.Ptr(),
		}}
	}
	owner := make(map[string]*Group, f.Size())
	for _, g := range f.Groups {
		for i := range g.Count {
			id := g.DeviceID(i)
			if prev, dup := owner[id]; dup {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError, Summary: "Duplicate device ID",
					Detail: fmt.Sprintf("Group %q produces device ID %q, which group %q (%s:%d) produces too; give the groups different ID patterns.",
						g.Name, id, prev.Name, prev.DeclRange.Filename, prev.DeclRange.Start.Line),
					Subject: g.DeclRange.Ptr(),
				})
				break
			}
			owner[id] = g
		}
	}
	d := newDrawer(0)
	for _, g := range f.Groups {
		if g.Count == 0 {
			continue
		}
		for _, i := range []int{0, g.Count - 1} {
			_, dt := d.evalTemplate(g, i, g.tags, "tags")
			_, dr := d.evalTemplate(g, i, g.reported, "reported")
			if dt.HasErrors() || dr.HasErrors() {
				diags = append(append(diags, dt...), dr...)
				break
			}
		}
	}
	return diags
}

// sortDiags orders diagnostics by position so output is stable.
func sortDiags(diags hcl.Diagnostics) hcl.Diagnostics {
	slices.SortStableFunc(diags, func(a, b *hcl.Diagnostic) int {
		if a.Subject == nil || b.Subject == nil {
			return 0
		}
		if c := strings.Compare(a.Subject.Filename, b.Subject.Filename); c != 0 {
			return c
		}
		return a.Subject.Start.Byte - b.Subject.Start.Byte
	})
	return diags
}
