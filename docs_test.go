package hubflow_test

// The guides in docs/ are checked here so that they cannot drift from the
// code they describe. The conventions a guide follows:
//
//   - A ```hcl block is a complete job file that must load without errors,
//     unless the line right before it is one of these markers:
//
//     <!-- hcl: job-body -->       the inside of a job block. It is loaded
//     wrapped in job "example" { ... }, with a target and a step added
//     when it has none.
//     <!-- hcl: top-level -->      file-level blocks (variables); a minimal
//     job is added.
//     <!-- hcl: var-file FILE -->  a -var-file, loaded together with the job
//     file FILE (relative to the repository root).
//     <!-- hcl: same-as FILE -->   must equal the repository file FILE,
//     which must load.
//     <!-- hcl: file NAME -->      a complete job file that must load and is
//     saved as NAME for the guide's console blocks.
//     <!-- hcl: invalid NAME -->   a job file that must fail to load; it is
//     saved as NAME for the guide's console blocks, which show its errors.
//
//   - A ```console block is run: each line starting with "$ hubflow" is a
//     command (optionally preceded by NAME=value environment settings) and
//     the lines up to the next "$ " line are its exact output, stdout and
//     stderr together. Commands run from a scratch directory holding the
//     guide's saved files, examples/ and docs/ of the repository, and a
//     sample history database, history.db.
//
//   - <!-- sql: FILE --> before a ```sql block: the block equals FILE, and
//     the next fenced block is FILE's output on the sample history, in the
//     sqlite3 shell's -header list format. Every docs/queries/*.sql is
//     shown that way somewhere.
//
//   - <!-- openings: FILE WINDOW FROM --> before a table: the table lists
//     the window's next openings after FROM, computed from the saved job
//     file FILE (see TestDocsWindowOpenings).
//
//   - Relative links in docs/*.md and README.md point at files that exist,
//     and #fragments into Markdown files at headings that exist.
//
//   - Every hubflow command line in code (inline or fenced) in docs/*.md
//     and README.md names a command that `hubflow help` lists.

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/hubflow/hubflow/jobs"
	"github.com/hubflow/hubflow/state"
)

// fence is one fenced code block of a Markdown file.
type fence struct {
	lang   string
	marker string // the <!-- ... --> comment on the line before, trimmed
	body   string
	line   int // line of the opening fence, from 1
}

// mdDoc is a parsed Markdown file.
type mdDoc struct {
	path   string
	text   string
	fences []fence
	// prose is the text outside fenced blocks, one entry per line, with
	// fenced lines blanked so that line numbers stay right.
	prose []string
}

var markerRE = regexp.MustCompile(`^<!--\s*(.*?)\s*-->$`)

func parseMarkdown(t testing.TB, path string) mdDoc {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d := mdDoc{path: path, text: string(b)}
	lines := strings.Split(string(b), "\n")
	d.prose = make([]string, len(lines))
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		trimmed := strings.TrimSpace(line)
		if !strings.HasPrefix(trimmed, "```") {
			d.prose[i] = line
			continue
		}
		indent := line[:len(line)-len(strings.TrimLeft(line, " "))]
		f := fence{lang: strings.TrimSpace(strings.TrimPrefix(trimmed, "```")), line: i + 1}
		if i > 0 {
			if m := markerRE.FindStringSubmatch(strings.TrimSpace(lines[i-1])); m != nil {
				f.marker = m[1]
			}
		}
		var body []string
		j := i + 1
		for ; j < len(lines); j++ {
			if strings.TrimSpace(lines[j]) == "```" {
				break
			}
			body = append(body, strings.TrimPrefix(lines[j], indent))
		}
		if j == len(lines) {
			t.Fatalf("%s:%d: fenced block never closed", path, i+1)
		}
		f.body = strings.Join(body, "\n") + "\n"
		d.fences = append(d.fences, f)
		i = j
	}
	return d
}

func guidePaths(t testing.TB) []string {
	t.Helper()
	paths, err := filepath.Glob("docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatal("no guides in docs/")
	}
	return paths
}

// savedFile is a job file a guide saves for its console blocks.
type savedFile struct {
	name string
	body string
}

// TestDocsHCL loads every HCL block of the guides as its marker says.
func TestDocsHCL(t *testing.T) {
	for _, path := range guidePaths(t) {
		d := parseMarkdown(t, path)
		for _, f := range d.fences {
			if f.lang != "hcl" {
				continue
			}
			where := fmt.Sprintf("%s:%d", path, f.line)
			t.Run(where, func(t *testing.T) {
				checkHCLBlock(t, where, f)
			})
		}
	}
}

func checkHCLBlock(t *testing.T, where string, f fence) {
	kind, arg := hclMarker(f.marker)
	src := f.body
	switch kind {
	case "complete", "file":
	case "job-body":
		src = wrapJobBody(t, where, f.body)
	case "top-level":
		src = f.body + "\njob \"example\" {\n  target {\n    devices = [\"device-1\"]\n  }\n  step \"example\" {\n    method = \"example\"\n  }\n}\n"
	case "var-file":
		if arg == "" {
			t.Fatalf("%s: var-file marker without the job file it goes with", where)
		}
		vf := filepath.Join(t.TempDir(), "vars.hcl")
		if err := os.WriteFile(vf, []byte(f.body), 0o600); err != nil {
			t.Fatal(err)
		}
		_, diags := jobs.Load(jobs.LoadConfig{Files: []string{arg}, VarFiles: []string{vf}})
		for _, d := range diags {
			// A warning here means a name the job file does not declare.
			t.Errorf("%s: loading with %s: got %s, want no diagnostics", where, arg, d.Error())
		}
		return
	case "same-as":
		want, err := os.ReadFile(arg)
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		if f.body != string(want) {
			t.Errorf("%s: the block differs from %s; copy the file into the guide again", where, arg)
		}
		src = string(want)
	case "invalid":
		if arg == "" {
			t.Fatalf("%s: invalid marker without a file name", where)
		}
		_, diags := jobs.Load(jobs.LoadConfig{Sources: []jobs.Source{{Name: arg, Bytes: []byte(f.body)}}})
		if !diags.HasErrors() {
			t.Errorf("%s: the example is marked invalid but loads without errors", where)
		}
		return
	default:
		t.Fatalf("%s: unknown marker %q", where, f.marker)
	}
	_, diags := jobs.Load(jobs.LoadConfig{Sources: []jobs.Source{{Name: where, Bytes: []byte(src)}}})
	for _, d := range diags {
		t.Errorf("got %s, want a %s example that loads without diagnostics", d.Error(), kind)
	}
}

// hclMarker reads an hcl block's marker: its kind ("complete" when there is
// none) and argument.
func hclMarker(marker string) (kind, arg string) {
	rest, ok := strings.CutPrefix(marker, "hcl:")
	if !ok {
		return "complete", ""
	}
	kind, arg, _ = strings.Cut(strings.TrimSpace(rest), " ")
	return kind, strings.TrimSpace(arg)
}

// wrapJobBody puts a job-body fragment into a job, adding the target and
// step blocks every job needs when the fragment has none.
func wrapJobBody(t testing.TB, where, body string) string {
	t.Helper()
	f, diags := hclsyntax.ParseConfig([]byte(body), where, hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatalf("%s: %s", where, diags.Error())
	}
	has := map[string]bool{}
	for _, b := range f.Body.(*hclsyntax.Body).Blocks {
		has[b.Type] = true
	}
	var sb strings.Builder
	sb.WriteString("job \"example\" {\n")
	sb.WriteString(body)
	if !has["target"] {
		sb.WriteString("\n  target {\n    devices = [\"device-1\"]\n  }\n")
	}
	if !has["step"] {
		sb.WriteString("\n  step \"example\" {\n    method = \"example\"\n  }\n")
	}
	sb.WriteString("}\n")
	return sb.String()
}

// builtHubflow is the hubflow binary, built once per test process.
var builtHubflow struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func hubflowBinary(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("skipped with -short: builds the hubflow binary")
	}
	builtHubflow.once.Do(func() {
		dir, err := os.MkdirTemp("", "hubflow-docs-")
		if err != nil {
			builtHubflow.err = err
			return
		}
		builtHubflow.dir = dir
		builtHubflow.path = filepath.Join(dir, "hubflow")
		cmd := exec.Command("go", "build", "-o", builtHubflow.path, "./cmd/hubflow")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			builtHubflow.err = fmt.Errorf("go build ./cmd/hubflow: %v\n%s", err, out)
		}
	})
	if builtHubflow.err != nil {
		t.Fatal(builtHubflow.err)
	}
	return builtHubflow.path
}

func TestMain(m *testing.M) {
	code := m.Run()
	if builtHubflow.dir != "" {
		os.RemoveAll(builtHubflow.dir)
	}
	os.Exit(code)
}

// commandEnv is the environment of the commands a guide shows: the test's,
// without the HUBFLOW_* and hub settings a developer may have exported.
func commandEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "HUBFLOW_") || strings.HasPrefix(kv, "IOTHUB_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// hubflowCommands lists the commands `hubflow help` names.
func hubflowCommands(t testing.TB) map[string]bool {
	t.Helper()
	cmd := exec.Command(hubflowBinary(t), "help")
	cmd.Env = commandEnv()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("hubflow help: %v", err)
	}
	cmds := map[string]bool{}
	in := false
	for _, line := range strings.Split(string(out), "\n") {
		switch {
		case strings.TrimSpace(line) == "COMMANDS":
			in = true
		case in && strings.TrimSpace(line) == "":
			in = false
		case in:
			if fields := strings.Fields(line); len(fields) > 0 {
				cmds[fields[0]] = true
			}
		}
	}
	if len(cmds) == 0 {
		t.Fatalf("hubflow help lists no commands:\n%s", out)
	}
	return cmds
}

// codeSpans returns the inline code spans of prose lines, with the line
// each is on.
func codeSpans(prose []string) (spans []string, lines []int) {
	re := regexp.MustCompile("`([^`]+)`")
	for i, l := range prose {
		for _, m := range re.FindAllStringSubmatch(l, -1) {
			spans = append(spans, m[1])
			lines = append(lines, i+1)
		}
	}
	return spans, lines
}

// commandRE finds hubflow invocations in a line of code: hubflow as the
// first word of a command (after a prompt or comment sign, sudo, NAME=value
// settings, or a |, ;, && or $( before it), or a path ending in /hubflow
// (./cmd/hubflow, /usr/local/bin/hubflow). "hubflow" in the middle of a
// sentence in a comment is not a command.
var commandRE = regexp.MustCompile(`(?:(?:^|[|;&(])\s*(?:[$#>]+\s*|//\s*)*(?:sudo\s+)?(?:[A-Za-z_][A-Za-z0-9_]*=\S*\s+)*|/)hubflow[ \t]+([a-z][a-z0-9-]*)`)

func TestCommandRE(t *testing.T) {
	for _, tc := range []struct {
		line string
		want string // the command found, "" for none
	}{
		{"hubflow history -o json", "history"},
		{"$ hubflow validate typo.hcl", "validate"},
		{"HUBFLOW_VAR_version=2.2.0 hubflow validate x.hcl", "validate"},
		{"#   hubflow plan examples/nightly-local.hcl", "plan"},
		{"go run ./cmd/hubflow run examples/firmware-update.hcl", "run"},
		{"ExecStart=/usr/local/bin/hubflow serve /etc/hubflow/jobs", "serve"},
		{"sudo setcap cap_net_bind_service=+ep hubflow", ""},
		{"hubflow show RUN -o json | jq .devices", "show"},
		{"cat job.hcl | hubflow fmt -", "fmt"},
		{"# reports a rebootTime later than the moment hubflow asked it to.", ""},
		{"Description=hubflow scheduler", ""},
		{"history in hubflow.db", ""},
	} {
		got := ""
		if m := commandRE.FindStringSubmatch(tc.line); m != nil {
			got = m[1]
		}
		if got != tc.want {
			t.Errorf("%q: got command %q, want %q", tc.line, got, tc.want)
		}
	}
}

// TestDocsCommands checks that the hubflow commands the guides and README
// mention exist.
func TestDocsCommands(t *testing.T) {
	cmds := hubflowCommands(t)
	for _, path := range append(guidePaths(t), "README.md") {
		d := parseMarkdown(t, path)
		check := func(text string, line int) {
			for _, m := range commandRE.FindAllStringSubmatch(text, -1) {
				if !cmds[m[1]] {
					t.Errorf("%s:%d: mentions `hubflow %s`, but hubflow help lists no command %q", path, line, m[1], m[1])
				}
			}
		}
		spans, lines := codeSpans(d.prose)
		for i, s := range spans {
			check(s, lines[i])
		}
		for _, f := range d.fences {
			for i, l := range strings.Split(f.body, "\n") {
				check(l, f.line+1+i)
			}
		}
	}
}

var (
	inlineLinkRE = regexp.MustCompile(`\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)
	refLinkRE    = regexp.MustCompile(`^\s*\[[^\]]+\]:\s*(\S+)`)
	codeSpanRE   = regexp.MustCompile("`[^`]*`")
)

// TestDocsLinks checks relative links in the guides and the README.
func TestDocsLinks(t *testing.T) {
	for _, path := range append(guidePaths(t), "README.md") {
		d := parseMarkdown(t, path)
		for i, line := range d.prose {
			line = codeSpanRE.ReplaceAllString(line, "")
			var targets []string
			for _, m := range inlineLinkRE.FindAllStringSubmatch(line, -1) {
				targets = append(targets, m[1])
			}
			if m := refLinkRE.FindStringSubmatch(line); m != nil {
				targets = append(targets, m[1])
			}
			for _, target := range targets {
				if err := checkLink(path, target); err != nil {
					t.Errorf("%s:%d: link %s: %v", path, i+1, target, err)
				}
			}
		}
	}
}

func checkLink(from, target string) error {
	if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
		return nil
	}
	file, frag, _ := strings.Cut(target, "#")
	resolved := from
	if file != "" {
		if strings.HasPrefix(file, "/") {
			return errors.New("absolute paths do not work on GitHub or in a clone; use a relative path")
		}
		resolved = filepath.Join(filepath.Dir(from), filepath.FromSlash(file))
		if _, err := os.Stat(resolved); err != nil {
			return fmt.Errorf("no such file %s", resolved)
		}
	}
	if frag == "" || !strings.HasSuffix(resolved, ".md") {
		return nil
	}
	b, err := os.ReadFile(resolved)
	if err != nil {
		return err
	}
	if !headingAnchors(string(b))[frag] {
		return fmt.Errorf("%s has no heading with anchor #%s", resolved, frag)
	}
	return nil
}

// headingAnchors returns the anchors GitHub gives a Markdown file's
// headings: lower case, punctuation dropped, spaces turned into hyphens,
// and -1, -2, … added to repeats.
func headingAnchors(text string) map[string]bool {
	anchors := map[string]bool{}
	seen := map[string]int{}
	inFence := false
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inFence = !inFence
			continue
		}
		if inFence || !strings.HasPrefix(line, "#") {
			continue
		}
		title := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(title) {
			switch {
			case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
				b.WriteRune(r)
			case r == ' ':
				b.WriteByte('-')
			}
		}
		a := b.String()
		if n := seen[a]; n > 0 {
			seen[a] = n + 1
			a = fmt.Sprintf("%s-%d", a, n)
		} else {
			seen[a] = 1
		}
		anchors[a] = true
	}
	return anchors
}

// TestDocsWindowOpenings checks the tables of window openings a guide
// shows. A table follows a marker <!-- openings: FILE WINDOW FROM -->,
// where FILE is a job file the guide saves, and lists the window's next
// openings after FROM (RFC 3339): the opening in the window's zone, the
// opening and the closing in UTC, and the closing in the window's zone. A
// fifth column is free text.
func TestDocsWindowOpenings(t *testing.T) {
	found := 0
	for _, path := range guidePaths(t) {
		d := parseMarkdown(t, path)
		saved := map[string]string{}
		for _, f := range d.fences {
			if kind, arg := hclMarker(f.marker); f.lang == "hcl" && kind == "file" {
				saved[arg] = f.body
			}
		}
		for i, line := range d.prose {
			m := markerRE.FindStringSubmatch(strings.TrimSpace(line))
			if m == nil || !strings.HasPrefix(m[1], "openings:") {
				continue
			}
			found++
			where := fmt.Sprintf("%s:%d", path, i+1)
			args := strings.Fields(strings.TrimPrefix(m[1], "openings:"))
			if len(args) != 3 {
				t.Errorf("%s: want <!-- openings: FILE WINDOW FROM -->", where)
				continue
			}
			src, ok := saved[args[0]]
			if !ok {
				t.Errorf("%s: the guide saves no job file %s", where, args[0])
				continue
			}
			from, err := time.Parse(time.RFC3339, args[2])
			if err != nil {
				t.Errorf("%s: %v", where, err)
				continue
			}
			cfg, diags := jobs.Load(jobs.LoadConfig{Sources: []jobs.Source{{Name: args[0], Bytes: []byte(src)}}})
			if diags.HasErrors() {
				t.Errorf("%s: %s", where, diags.Error())
				continue
			}
			var w *jobs.Window
			for _, x := range cfg.Jobs[0].Windows {
				if x.Name == args[1] {
					w = x
				}
			}
			if w == nil {
				t.Errorf("%s: %s has no window %q", where, args[0], args[1])
				continue
			}
			loc, err := w.Location(jobs.Device{})
			if err != nil {
				t.Errorf("%s: %v", where, err)
				continue
			}
			rows := tableRows(d.prose[i+1:])
			if len(rows) == 0 {
				t.Errorf("%s: no table after the marker", where)
			}
			after := from
			for _, row := range rows {
				o := w.NextOpening(after, nil)
				open, closes := w.OpenAt(o, nil)
				if !open {
					t.Errorf("%s: window not open at its opening %s", where, o)
				}
				got := []string{
					o.In(loc).Format("Mon 2006-01-02 15:04 MST"), o.UTC().Format("2006-01-02 15:04"),
					closes.UTC().Format("2006-01-02 15:04"), closes.In(loc).Format("15:04 MST"),
				}
				if len(row) < 4 || strings.Join(row[:4], " | ") != strings.Join(got, " | ") {
					t.Errorf("%s: got row %q, want %q", where, strings.Join(got, " | "), strings.Join(row, " | "))
				}
				after = o
			}
		}
	}
	if found == 0 {
		t.Error("no <!-- openings: --> table in the guides")
	}
}

// tableRows returns the cells of the Markdown table at the start of lines,
// without its header and separator rows.
func tableRows(lines []string) [][]string {
	var rows [][]string
	for i, l := range lines {
		l = strings.TrimSpace(l)
		if !strings.HasPrefix(l, "|") {
			break
		}
		if i < 2 {
			continue
		}
		cells := strings.Split(strings.Trim(l, "|"), "|")
		for j := range cells {
			cells[j] = strings.TrimSpace(cells[j])
		}
		rows = append(rows, cells)
	}
	return rows
}

// TestDocsConsole runs the console blocks of the guides.
func TestDocsConsole(t *testing.T) {
	bin := hubflowBinary(t)
	root, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range guidePaths(t) {
		d := parseMarkdown(t, path)
		var saved []savedFile
		for _, f := range d.fences {
			if f.lang == "hcl" {
				if kind, arg := hclMarker(f.marker); kind == "file" || kind == "invalid" {
					saved = append(saved, savedFile{name: arg, body: f.body})
				}
				continue
			}
			if f.lang != "console" {
				continue
			}
			where := fmt.Sprintf("%s:%d", path, f.line)
			files := append([]savedFile(nil), saved...)
			t.Run(where, func(t *testing.T) {
				dir := scratchDir(t, root, files)
				runConsole(t, bin, dir, where, f.body)
			})
		}
	}
}

// scratchDir makes the directory console commands run in.
func scratchDir(t *testing.T, root string, files []savedFile) string {
	t.Helper()
	dir := t.TempDir()
	for _, sub := range []string{"examples", "docs"} {
		if err := os.Symlink(filepath.Join(root, sub), filepath.Join(dir, sub)); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.name), []byte(f.body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeSampleHistory(t, filepath.Join(dir, "history.db"))
	return dir
}

func runConsole(t *testing.T, bin, dir, where, body string) {
	type step struct {
		line string
		want []string
	}
	var steps []step
	for _, l := range strings.Split(strings.TrimRight(body, "\n"), "\n") {
		if strings.HasPrefix(l, "$ ") {
			steps = append(steps, step{line: strings.TrimPrefix(l, "$ ")})
			continue
		}
		if len(steps) == 0 {
			t.Fatalf("%s: output before the first $ command", where)
		}
		steps[len(steps)-1].want = append(steps[len(steps)-1].want, l)
	}
	if len(steps) == 0 {
		t.Fatalf("%s: console block without a $ command", where)
	}
	for _, s := range steps {
		words, err := shellWords(s.line)
		if err != nil {
			t.Fatalf("%s: %s: %v", where, s.line, err)
		}
		env := commandEnv()
		for len(words) > 0 && strings.Contains(words[0], "=") && !strings.HasPrefix(words[0], "-") {
			env = append(env, words[0])
			words = words[1:]
		}
		if len(words) == 0 || words[0] != "hubflow" {
			t.Fatalf("%s: %q: console blocks may only run hubflow", where, s.line)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		cmd := exec.CommandContext(ctx, bin, words[1:]...)
		cmd.Dir = dir
		cmd.Env = env
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err = cmd.Run()
		cancel()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("%s: %s: %v", where, s.line, err)
		}
		got := strings.TrimRight(trimLines(out.String()), "\n")
		want := strings.TrimRight(trimLines(strings.Join(s.want, "\n")), "\n")
		if got != want {
			t.Errorf("%s: $ %s\ngot:\n%s\nwant:\n%s", where, s.line, got, want)
		}
	}
}

// trimLines drops trailing spaces, which tabular output leaves and editors
// remove.
func trimLines(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " \t")
	}
	return strings.Join(lines, "\n")
}

// shellWords splits a command line as a POSIX shell would for the simple
// commands the guides show: words, single and double quotes. Anything
// needing a real shell (pipes, redirection, substitution) is refused.
func shellWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("unclosed single quote")
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			j := strings.IndexByte(s[i+1:], '"')
			if j < 0 {
				return nil, errors.New("unclosed double quote")
			}
			inner := s[i+1 : i+1+j]
			if strings.ContainsAny(inner, "$`\\") {
				return nil, errors.New("double quotes with $, ` or \\ need a shell; use single quotes")
			}
			cur.WriteString(inner)
			i += j + 1
			inWord = true
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case strings.IndexByte("|&;<>()$`\\*?~", c) >= 0:
			return nil, fmt.Errorf("%q needs a shell; show such commands in a sh block", c)
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// TestDocsQueries runs every docs/queries/*.sql against the sample history
// and compares the result with what the guides show.
func TestDocsQueries(t *testing.T) {
	files, err := filepath.Glob("docs/queries/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no queries in docs/queries")
	}
	shown := map[string]string{} // query file → output shown in a guide
	for _, path := range guidePaths(t) {
		d := parseMarkdown(t, path)
		for i, f := range d.fences {
			file, ok := strings.CutPrefix(f.marker, "sql:")
			if !ok {
				continue
			}
			file = strings.TrimSpace(file)
			where := fmt.Sprintf("%s:%d", path, f.line)
			want, err := os.ReadFile(file)
			if err != nil {
				t.Errorf("%s: %v", where, err)
				continue
			}
			if f.body != string(want) {
				t.Errorf("%s: the block differs from %s; copy the file into the guide again", where, file)
			}
			if i+1 >= len(d.fences) {
				t.Errorf("%s: no output block after the query", where)
				continue
			}
			shown[file] = d.fences[i+1].body
		}
	}

	dbPath := filepath.Join(t.TempDir(), "history.db")
	writeSampleHistory(t, dbPath)
	db, err := sql.Open("sqlite", "file:"+dbPath+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			q, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			got, err := queryListOutput(db, string(q))
			if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			if strings.Count(got, "\n") < 2 {
				t.Errorf("%s: got no rows on the sample history, want some:\n%s", file, got)
			}
			want, ok := shown[file]
			if !ok {
				t.Fatalf("%s is not shown in any guide with a <!-- sql: %s --> marker", file, file)
			}
			if strings.TrimRight(got, "\n") != strings.TrimRight(want, "\n") {
				t.Errorf("%s on the sample history:\ngot:\n%s\nwant (as the guide shows):\n%s", file, got, want)
			}
		})
	}
}

// queryListOutput runs q and renders the result as `sqlite3 -header` does
// in its default list mode: a header, then one line per row, columns
// separated by |, NULL as nothing.
func queryListOutput(db *sql.DB, q string) (string, error) {
	rows, err := db.Query(q)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString(strings.Join(cols, "|") + "\n")
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return "", err
		}
		cells := make([]string, len(cols))
		for i, v := range vals {
			switch v := v.(type) {
			case nil:
			case int64:
				cells[i] = strconv.FormatInt(v, 10)
			case float64:
				return "", fmt.Errorf("column %s is a REAL (%v); round or cast it so the output is exact", cols[i], v)
			case []byte:
				cells[i] = string(v)
			case string:
				cells[i] = v
			default:
				cells[i] = fmt.Sprint(v)
			}
		}
		b.WriteString(strings.Join(cells, "|") + "\n")
	}
	return b.String(), rows.Err()
}

// sampleStart is when the sample history begins.
var sampleStart = time.Date(2026, time.November, 20, 1, 0, 0, 0, time.UTC)

// sampleExec is one device's path through one step in the sample history.
type sampleExec struct {
	device string
	step   int
	// states are the execution's states in order, each at an offset from
	// the run's start; progress values go with the in_progress state.
	states   []sampleState
	progress []string
}

type sampleState struct {
	at      time.Duration
	state   state.ExecState
	attempt int
	status  int
	err     string
}

// writeSampleHistory records, through the state package, the small
// history the guides query: a firmware rollout over six devices of three
// sites, with successes, a failure, a timeout and a retried device, and a
// nightly reboot of three devices, one of them skipped.
func writeSampleHistory(t testing.TB, path string) {
	t.Helper()
	ctx := context.Background()
	var mu sync.Mutex
	now := sampleStart
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	setNow := func(t time.Time) {
		mu.Lock()
		now = t
		mu.Unlock()
	}
	s, err := state.Open(ctx, path, state.Options{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}()

	ok := func(at time.Duration, st state.ExecState) sampleState {
		return sampleState{at: at, state: st, attempt: 1, status: 200}
	}
	stages := []string{"downloading", "applying", "completed"}
	update := func(device string, start, took time.Duration) sampleExec {
		return sampleExec{device: device, step: 0, progress: stages, states: []sampleState{
			ok(start, state.ExecInvoking), ok(start+time.Second, state.ExecInProgress), ok(start+took, state.ExecSucceeded),
		}}
	}
	reboot := func(device string, step int, start, took time.Duration) sampleExec {
		return sampleExec{device: device, step: step, states: []sampleState{
			ok(start, state.ExecInvoking), ok(start+time.Second, state.ExecInProgress), ok(start+took, state.ExecSucceeded),
		}}
	}
	firmware := []sampleExec{
		update("plant7-press-001", 0, 40*time.Second),
		reboot("plant7-press-001", 1, 41*time.Second, 20*time.Second),
		{device: "plant7-press-002", step: 0, progress: []string{"downloading", "failed"}, states: []sampleState{
			ok(0, state.ExecInvoking), ok(time.Second, state.ExecInProgress),
			{at: 30 * time.Second, state: state.ExecFailed, attempt: 1, status: 200, err: `failure condition met (progress "failed")`},
		}},
		update("plant7-robot-001", 2*time.Second, 50*time.Second),
		reboot("plant7-robot-001", 1, 53*time.Second, 25*time.Second),
		{device: "nwk-conveyor-001", step: 0, progress: stages, states: []sampleState{
			{at: 0, state: state.ExecInvoking, attempt: 1},
			{at: 31 * time.Second, state: state.ExecPending, attempt: 1, err: "device not online"},
			{at: 61 * time.Second, state: state.ExecInvoking, attempt: 2},
			{at: 62 * time.Second, state: state.ExecInProgress, attempt: 2, status: 200},
			{at: 122 * time.Second, state: state.ExecSucceeded, attempt: 2, status: 200},
		}},
		reboot("nwk-conveyor-001", 1, 123*time.Second, 30*time.Second),
		{device: "nwk-conveyor-002", step: 0, progress: []string{"downloading"}, states: []sampleState{
			ok(0, state.ExecInvoking), ok(time.Second, state.ExecInProgress),
			{at: 10 * time.Minute, state: state.ExecTimedOut, attempt: 1, status: 200, err: `no success within the step's timeout of 10m0s (last progress "downloading")`},
		}},
		update("osaka-sensor-001", 3*time.Second, 45*time.Second),
		reboot("osaka-sensor-001", 1, 49*time.Second, 15*time.Second),
	}
	steps := []string{"update", "reboot"}
	id := state.NewRunID("firmware-update", sampleStart, "")
	recordSampleRun(t, ctx, s, setNow, sampleRun{
		id: id, job: "firmware-update", steps: steps, start: sampleStart,
		targets: []state.Target{
			{DeviceID: "plant7-press-001"}, {DeviceID: "plant7-press-002"}, {DeviceID: "plant7-robot-001"},
			{DeviceID: "nwk-conveyor-001"}, {DeviceID: "nwk-conveyor-002"}, {DeviceID: "osaka-sensor-001"},
		},
		execs: firmware, end: 11 * time.Minute, final: state.RunFailed,
		reason: "2 of 6 devices did not succeed (1 failed, 1 timed out)",
	})

	rebootStart := sampleStart.Add(26 * time.Hour)
	recordSampleRun(t, ctx, s, setNow, sampleRun{
		id: state.NewRunID("nightly-reboot", rebootStart, ""), job: "nightly-reboot",
		steps: []string{"reboot"}, start: rebootStart,
		targets: []state.Target{
			{DeviceID: "plant7-press-001"}, {DeviceID: "plant7-press-003"},
			{DeviceID: "osaka-sensor-002", SkipReason: `examples/nightly-local.hcl:27:21: Missing device time zone: timezone_from of window "night" is null for device "osaka-sensor-002": its twin does not have the property.`},
		},
		execs: []sampleExec{
			reboot("plant7-press-001", 0, 0, 18*time.Second),
			reboot("plant7-press-003", 0, time.Second, 22*time.Second),
		},
		end: time.Minute, final: state.RunSucceeded,
	})
}

type sampleRun struct {
	id, job string
	steps   []string
	start   time.Time
	targets []state.Target
	execs   []sampleExec
	end     time.Duration
	final   state.RunState
	reason  string
}

func recordSampleRun(t testing.TB, ctx context.Context, s *state.Store, setNow func(time.Time), r sampleRun) {
	t.Helper()
	setNow(r.start)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.CreateRun(ctx, state.NewRun{
		ID: r.id, Job: r.job, Trigger: state.TriggerManual, Steps: r.steps,
		Vars: json.RawMessage(`{}`), FileHash: "sample", PlanHash: "sample",
	}))
	must(s.RecordTargets(ctx, r.id, r.targets))
	must(s.UpdateRunState(ctx, r.id, state.RunRunning, ""))

	// Events are recorded in time order, as a runner would.
	var evs []state.Event
	for _, x := range r.execs {
		for k, st := range x.states {
			ev := state.Event{
				RunID: r.id, DeviceID: x.device, Step: r.steps[x.step], StepIndex: x.step,
				Kind: state.KindState, State: st.state, Error: st.err,
				ObservedAt: r.start.Add(st.at),
			}
			// As the runner does: an invocation starts an attempt, and a
			// retry says when the next one is due.
			if st.state == state.ExecInvoking {
				ev.Attempt = st.attempt
			}
			if st.state == state.ExecPending && k+1 < len(x.states) {
				ev.Detail = fmt.Sprintf("attempt %d: %s; next attempt at %s", st.attempt, st.err,
					r.start.Add(x.states[k+1].at).UTC().Format(time.RFC3339))
			}
			if st.status != 0 && st.state == state.ExecInProgress {
				code := st.status
				ev.MethodStatus = &code
			}
			evs = append(evs, ev)
			if st.state == state.ExecInProgress && k+1 < len(x.states) {
				// Progress changes are spread over the time in progress.
				span := x.states[k+1].at - st.at
				for i, v := range x.progress {
					b, _ := json.Marshal(v)
					evs = append(evs, state.Event{
						RunID: r.id, DeviceID: x.device, Step: r.steps[x.step], StepIndex: x.step,
						Kind: state.KindProgress, Progress: b,
						ObservedAt: r.start.Add(st.at + span*time.Duration(i+1)/time.Duration(len(x.progress)+1)),
					})
				}
			}
		}
		if last := x.states[len(x.states)-1]; last.state == state.ExecFailed || last.state == state.ExecTimedOut {
			for i := x.step + 1; i < len(r.steps); i++ {
				evs = append(evs, state.Event{
					RunID: r.id, DeviceID: x.device, Step: r.steps[i], StepIndex: i,
					Kind: state.KindState, State: state.ExecSkipped,
					Error:      fmt.Sprintf("step %q %s", r.steps[x.step], strings.ReplaceAll(string(last.state), "_", " ")),
					ObservedAt: r.start.Add(last.at),
				})
			}
		}
	}
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].ObservedAt.Before(evs[j].ObservedAt) })
	must(s.AppendSync(ctx, evs...))
	setNow(r.start.Add(r.end))
	must(s.UpdateRunState(ctx, r.id, r.final, r.reason))
}
