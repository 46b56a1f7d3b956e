package jobs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"

	// Zone data is embedded so that a host without zoneinfo computes the
	// same windows; the import has no other effect.
	_ "time/tzdata"
)

// EnvVarPrefix is the prefix of environment variables that set job-file
// variables: HUBFLOW_VAR_image_uri=... sets var.image_uri.
const EnvVarPrefix = "HUBFLOW_VAR_"

// LoadConfig carries every input of Load. Load never reads the process
// environment; the caller passes it in Env.
type LoadConfig struct {
	// Files are paths of job files to read. Together with Sources they
	// form one configuration: variables declared in one are visible in all,
	// and job names must be unique across them.
	Files []string
	// Sources are job files already in memory. Name is the file name used
	// in diagnostics.
	Sources []Source
	// Vars are -var options, each "name=value". For a variable of type
	// string, number or bool the value is taken literally (and converted);
	// otherwise it is read as an HCL expression when it parses as one, and as
	// a literal string when it does not. Later entries win.
	Vars []string
	// VarFiles are -var-file paths: HCL files of name = value attributes, or
	// JSON objects when the name ends in .json. Later files win; -var wins
	// over all of them.
	VarFiles []string
	// IgnoreUndeclaredVars drops Vars entries for variables that no file
	// declares instead of reporting them. It is for callers that load
	// several independent files with one set of -var options and check
	// the names against all of them.
	IgnoreUndeclaredVars bool
	// Env is the environment as KEY=VALUE entries. HUBFLOW_VAR_name entries
	// set variables, read like Vars; var files and -var win over them.
	Env []string
}

// Source is a job file held in memory.
type Source struct {
	Name  string
	Bytes []byte
}

// Config is a loaded, validated set of job files. It is immutable after
// Load returns and safe for concurrent use.
type Config struct {
	// Jobs are the decoded jobs in file order.
	Jobs []*Job
	// Variables are the declared variables, in declaration order, with
	// their resolved values.
	Variables []*Variable
}

// Job returns the job with the given name, or nil.
func (c *Config) Job(name string) *Job {
	for _, j := range c.Jobs {
		if j.Name == name {
			return j
		}
	}
	return nil
}

// Load reads, decodes and validates job files. Decoding is staged: syntax,
// then the top-level blocks, then variables, then jobs; it stops after the
// first stage with errors, because later stages would only report
// consequences of the first errors. Within a stage it reports as many
// errors as it finds. The returned Config is nil when the diagnostics hold
// an error; warnings may accompany a valid Config. Diagnostics carry no
// evaluation context, so rendering them cannot show variable values.
func Load(cfg LoadConfig) (*Config, hcl.Diagnostics) {
	c, diags := load(cfg)
	return c, stripDiags(diags)
}

func load(cfg LoadConfig) (*Config, hcl.Diagnostics) {
	l := &loader{
		parser:  hclparse.NewParser(),
		sources: map[string][]byte{},
		funcs:   functions(),
		guard:   newGuard(),
	}
	files, diags := l.parseFiles(cfg)
	if diags.HasErrors() {
		return nil, diags
	}

	var varBlocks, jobBlocks []*hcl.Block
	for _, f := range files {
		content, d := decodeContent(f.Body, topSchema, "At the top level of a job file")
		diags = append(diags, d...)
		for _, b := range content.Blocks {
			switch b.Type {
			case "variable":
				varBlocks = append(varBlocks, b)
			case "job":
				jobBlocks = append(jobBlocks, b)
			}
		}
	}
	if len(jobBlocks) == 0 && !diags.HasErrors() {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "No job block",
			Detail:   `A job file declares at least one job "name" { ... } block.`,
			Subject:  fileStart(files),
		})
	}
	if diags.HasErrors() {
		return nil, diags
	}

	vars, d := l.decodeVariables(varBlocks, cfg)
	diags = append(diags, d...)
	if diags.HasErrors() {
		return nil, diags
	}

	jobs, d := l.decodeJobs(jobBlocks)
	diags = append(diags, d...)
	if diags.HasErrors() {
		return nil, diags
	}
	c := &Config{Jobs: jobs, Variables: vars}
	for _, j := range jobs {
		j.hash = l.hashJob(j, vars)
	}
	return c, diags
}

// loader holds what the stages share. It lives for one Load call.
type loader struct {
	parser  *hclparse.Parser
	sources map[string][]byte
	funcs   map[string]function.Function
	guard   *guard

	// Set by the variables stage.
	vars   map[string]*Variable
	varObj cty.Value
}

func (l *loader) parseFiles(cfg LoadConfig) ([]*hcl.File, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	var files []*hcl.File
	add := func(name string, src []byte) {
		if _, dup := l.sources[name]; dup {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Job file given twice",
				Detail:   fmt.Sprintf("The file %s was given more than once; give each file once.", name),
			})
			return
		}
		l.sources[name] = src
		f, d := l.parseHCL(src, name)
		diags = append(diags, d...)
		if f != nil {
			files = append(files, f)
		}
	}
	for _, path := range cfg.Files {
		src, err := os.ReadFile(path)
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Cannot read job file",
				Detail:   fmt.Sprintf("Reading %s: %v.", path, pathErr(err)),
			})
			continue
		}
		add(path, src)
	}
	for _, s := range cfg.Sources {
		add(s.Name, s.Bytes)
	}
	if len(cfg.Files) == 0 && len(cfg.Sources) == 0 {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "No job files",
			Detail:   "Give at least one job file to load.",
		})
	}
	return files, diags
}

// parseHCL parses a file of HCL native syntax after checking its nesting,
// and guards its expressions (see guard).
func (l *loader) parseHCL(src []byte, name string) (*hcl.File, hcl.Diagnostics) {
	if d := checkNesting(name, src, scanHCL); d != nil {
		return nil, hcl.Diagnostics{d}
	}
	f, diags := l.parser.ParseHCL(src, name)
	if diags.HasErrors() {
		return f, diags
	}
	if body, ok := f.Body.(*hclsyntax.Body); ok {
		l.guard.body(body, false)
		diags = append(diags, l.guard.take()...)
	}
	return f, diags
}

// exprSource returns the source text of a range, or nil when the file is
// not known (ranges are always from parsed files, so that means a bug).
func (l *loader) exprSource(r hcl.Range) []byte {
	src, ok := l.sources[r.Filename]
	if !ok || r.Start.Byte < 0 || r.End.Byte > len(src) || r.Start.Byte > r.End.Byte {
		return nil
	}
	return src[r.Start.Byte:r.End.Byte]
}

// pathErr drops the operation and path from a file error, which the
// diagnostic already names.
func pathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func fileStart(files []*hcl.File) *hcl.Range {
	for _, f := range files {
		r := f.Body.MissingItemRange()
		return &r
	}
	return nil
}

var topSchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "variable", LabelNames: []string{"name"}},
		{Type: "job", LabelNames: []string{"name"}},
	},
}
