package jobs

import (
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// MaxQueryLength is the hub's limit on a query's text, SELECT clause
// included.
const MaxQueryLength = 8192

// queryPrefix is what hubflow puts before a target query's condition.
const queryPrefix = "SELECT * FROM devices WHERE "

// Job is one job block: which devices get which steps, when and how fast.
// A Job is immutable and safe for concurrent use.
type Job struct {
	Name        string
	Description string
	Target      Target
	// Schedule is nil when runs are created only by `hubflow run`.
	Schedule *Schedule
	// Windows gate the start of device executions; none means any time.
	Windows []*Window
	// Rollout holds defaults when the job has no rollout block.
	Rollout   Rollout
	Steps     []*Step
	DeclRange hcl.Range

	hash string
}

// Target says which devices a job runs on: the devices matching Query, or
// exactly Devices. One of the two is set.
type Target struct {
	// Query is an IoT Hub query condition, the part after WHERE in
	// SELECT * FROM devices WHERE ...
	Query string
	// Devices are device ids, unique and valid for the hub.
	Devices []string
	// Follow re-runs Query at each window opening, so devices that start
	// matching later join the run.
	Follow    bool
	DeclRange hcl.Range
}

// Step returns the step with the given name, or nil.
func (j *Job) Step(name string) *Step {
	for _, s := range j.Steps {
		if s.Name == name {
			return s
		}
	}
	return nil
}

var jobSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "description"},
	},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "target"},
		{Type: "schedule"},
		{Type: "window", LabelNames: []string{"name"}},
		{Type: "rollout"},
		{Type: "step", LabelNames: []string{"name"}},
	},
}

var targetSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "query"},
		{Name: "devices"},
		{Name: "follow"},
	},
}

// decodeJobs is the jobs stage.
func (l *loader) decodeJobs(blocks []*hcl.Block) ([]*Job, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	var jobs []*Job
	names := newNameSet("job")
	for _, b := range blocks {
		if d := names.add(b.Labels[0], blockRange(b)); d != nil {
			diags = append(diags, d)
			continue
		}
		j, d := l.decodeJob(b)
		diags = append(diags, d...)
		if j != nil {
			jobs = append(jobs, j)
		}
	}
	return jobs, diags
}

func (l *loader) decodeJob(b *hcl.Block) (*Job, hcl.Diagnostics) {
	j := &Job{Name: b.Labels[0], DeclRange: blockRange(b)}
	where := fmt.Sprintf("In job %q", j.Name)
	diags := checkName(j.Name, "job", b.LabelRanges[0])
	content, d := decodeContent(b.Body, jobSchema, where)
	diags = append(diags, d...)
	env := &evalEnv{funcs: l.funcs, vars: l.varObj, job: j.Name}

	ad := l.attrDecoder(content.Attributes, l.staticContext(j.Name), where)
	j.Description, _ = ad.str("description")
	diags = append(diags, ad.diags...)

	target, d := uniqueBlock(content.Blocks, "target", "A job")
	diags = append(diags, d...)
	if target == nil {
		diags = append(diags, errorfAt(j.DeclRange, "Missing target block",
			"Job %q needs a target block saying which devices it runs on: target { query = \"tags.site = 'plant-7'\" } or target { devices = [\"press-01\"] }.", j.Name))
	} else {
		t, d := l.decodeTarget(target, j.Name)
		diags = append(diags, d...)
		j.Target = t
	}

	sb, d := uniqueBlock(content.Blocks, "schedule", "A job")
	diags = append(diags, d...)
	if sb != nil {
		s, d := l.decodeSchedule(sb, j.Name)
		diags = append(diags, d...)
		j.Schedule = s
	}

	rb, d := uniqueBlock(content.Blocks, "rollout", "A job")
	diags = append(diags, d...)
	j.Rollout, d = l.decodeRollout(rb, j.Name)
	diags = append(diags, d...)

	windows, steps := newNameSet("window"), newNameSet("step")
	for _, blk := range content.Blocks {
		switch blk.Type {
		case "window":
			if d := windows.add(blk.Labels[0], blockRange(blk)); d != nil {
				diags = append(diags, d)
				continue
			}
			w, d := l.decodeWindow(blk, j.Name, env)
			diags = append(diags, d...)
			if w != nil {
				j.Windows = append(j.Windows, w)
			}
		case "step":
			if d := steps.add(blk.Labels[0], blockRange(blk)); d != nil {
				diags = append(diags, d)
				continue
			}
			s, d := l.decodeStep(blk, j.Name, env)
			diags = append(diags, d...)
			if s != nil {
				j.Steps = append(j.Steps, s)
			}
		}
	}
	if len(steps.first) == 0 {
		diags = append(diags, errorfAt(j.DeclRange, "Job has no steps",
			"Job %q needs at least one step block, such as step \"reboot\" { method = \"rebootDevice\" }.", j.Name))
	}
	return j, diags
}

func (l *loader) decodeTarget(b *hcl.Block, jobName string) (Target, hcl.Diagnostics) {
	t := Target{DeclRange: b.DefRange}
	where := "In a target block"
	content, diags := decodeContent(b.Body, targetSchema, where)
	if diags.HasErrors() {
		return t, diags
	}
	ad := l.attrDecoder(content.Attributes, l.staticContext(jobName), where)
	query, qAttr := ad.str("query")
	devices, dAttr := ad.strings("devices")
	t.Follow = ad.boolean("follow", false)
	switch {
	case qAttr != nil && dAttr != nil:
		ad.errorf(dAttr, "Conflicting target",
			"A target is either a query or a list of devices, not both; query is set at %s. To narrow a query to some devices, add deviceId IN ['a', 'b'] to the query.", posString(qAttr.Range))
	case qAttr != nil:
		t.Query = strings.TrimSpace(query)
		checkQuery(ad, qAttr, t.Query)
	case dAttr != nil:
		t.Devices = devices
		checkDevices(ad, dAttr, devices)
		if t.Follow {
			ad.errorf(content.Attributes["follow"], "Follow needs a query",
				"follow re-runs the target query at each window opening; a fixed list of devices has nothing to re-run. Remove follow, or use a query.")
		}
	default:
		if len(ad.diags) == 0 {
			ad.diags = append(ad.diags, errorAt(b.DefRange, "Empty target",
				"A target needs query = \"<condition>\" (the devices matching an IoT Hub query, such as \"tags.site = 'plant-7'\") or devices = [\"id\", ...]."))
		}
	}
	return t, append(diags, ad.diags...)
}

func checkQuery(ad *attrDecoder, attr *hcl.Attribute, q string) {
	upper := strings.ToUpper(q)
	switch {
	case q == "":
		ad.errorf(attr, "Empty target", "query is empty; give a condition such as \"tags.site = 'plant-7'\", or \"deviceId != ''\" for every device.")
	case strings.HasPrefix(upper, "SELECT ") || strings.HasPrefix(upper, "WHERE "):
		ad.errorf(attr, "Query must be a condition",
			"query is the condition after WHERE, as in \"tags.site = 'plant-7'\"; hubflow adds %q itself.", strings.TrimSpace(queryPrefix))
	case len(queryPrefix)+len(q) > MaxQueryLength:
		ad.errorf(attr, "Query too long", "The query is %d characters with its SELECT clause; the hub accepts at most %d.", len(queryPrefix)+len(q), MaxQueryLength)
	}
}

func checkDevices(ad *attrDecoder, attr *hcl.Attribute, ids []string) {
	// Point at the offending element when the list is written out.
	elemRange := func(i int) hcl.Range {
		if tup, ok := attr.Expr.(*hclsyntax.TupleConsExpr); ok && i < len(tup.Exprs) {
			return tup.Exprs[i].Range()
		}
		return attr.Expr.Range()
	}
	if len(ids) == 0 {
		ad.errorf(attr, "Empty target", "devices is an empty list, so the job would run on nothing. List device ids, or use a query.")
		return
	}
	seen := map[string]int{}
	for i, id := range ids {
		if msg := deviceIDProblem(id); msg != "" {
			ad.diags = append(ad.diags, errorfAt(elemRange(i), "Invalid device ID", "%q: %s.", id, msg))
			continue
		}
		if first, dup := seen[id]; dup {
			r := elemRange(first)
			ad.diags = append(ad.diags, errorfAt(elemRange(i), "Duplicate device ID",
				"%q is already listed at %s; each device runs a job once.", id, posString(r)))
			continue
		}
		seen[id] = i
	}
}

// deviceIDProblem says why id is not a valid IoT Hub device id, or "".
func deviceIDProblem(id string) string {
	if id == "" {
		return "a device id cannot be empty"
	}
	if len(id) > 128 {
		return "a device id has at most 128 characters"
	}
	for _, c := range id {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.ContainsRune("-:.+%_#*?!(),=@;$'", c):
		default:
			return fmt.Sprintf("device ids use ASCII letters, digits and - : . + %% _ # * ? ! ( ) , = @ ; $ ' only, not %q", c)
		}
	}
	return ""
}
