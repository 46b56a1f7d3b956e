package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/hubflow/hubflow/jobs"
)

// fmtCommand rewrites job files in canonical layout.
func (a *app) fmtCommand() *ffcli.Command {
	fs := flag.NewFlagSet("fmt", flag.ContinueOnError)
	check := fs.Bool("check", false, "change no file; list those that are not formatted and exit 1 if there are any")
	diff := fs.Bool("diff", false, "print a unified diff of the changes")
	return &ffcli.Command{
		Name:       "fmt",
		ShortUsage: "hubflow fmt [-check] [-diff] FILE|DIR|-...",
		ShortHelp:  "Rewrite job files in canonical layout.",
		LongHelp: strings.TrimSpace(`
Rewrite job files in canonical layout.

Indentation, spacing around = and alignment of consecutive arguments follow
one canonical style, as terraform fmt does; comments and values stay as they
are. Files are rewritten in place, keeping their mode, and the names of the
files that changed are printed. A directory means the .hcl files in it; -
reads standard input and writes the result to standard output. A file that
is not valid HCL is left alone and its errors are printed (exit 2). With
-check no file is changed: the names of the files that would change are
printed, and the exit status is 1 when there are any. Flags may also
follow the files.

Examples:
  hubflow fmt examples/firmware-update.hcl
  hubflow fmt -check -diff examples/
  cat job.hcl | hubflow fmt -`),
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			pos, err := parseArgs(fs, args)
			if err != nil {
				return err
			}
			if len(pos) == 0 {
				return usageErrorf("fmt needs at least one file or directory, as in: hubflow fmt examples/")
			}
			return a.fmt(pos, *check, *diff)
		},
	}
}

func (a *app) fmt(args []string, check, diff bool) error {
	paths, err := fmtPaths(args)
	if err != nil {
		return usageErrorf("%v", err)
	}
	bad, changed := false, false
	for _, p := range paths {
		var src []byte
		var err error
		if p == "-" {
			src, err = io.ReadAll(a.stdin)
		} else {
			src, err = os.ReadFile(p)
		}
		if err != nil {
			fmt.Fprintf(a.stderr, "%s: error: %v\n", p, err)
			bad = true
			continue
		}
		name := p
		if p == "-" {
			name = "<stdin>"
		}
		if diags := jobs.CheckSyntax(name, src); diags.HasErrors() {
			writeJobDiags(a.stderr, name, diags)
			bad = true
			continue
		}
		out := jobs.Format(src)
		if p == "-" {
			if diff {
				writeUnifiedDiff(a.stdout, name, src, out)
			} else if !check {
				a.stdout.Write(out)
			}
			changed = changed || !bytes.Equal(src, out)
			continue
		}
		if bytes.Equal(src, out) {
			continue
		}
		changed = true
		fmt.Fprintln(a.stdout, p)
		if diff {
			writeUnifiedDiff(a.stdout, p, src, out)
		}
		if check {
			continue
		}
		if err := writeKeepingMode(p, out); err != nil {
			fmt.Fprintf(a.stderr, "%s: error: %v\n", p, err)
			bad = true
		}
	}
	switch {
	case bad:
		return silentExit(exitBadInput)
	case check && changed:
		return silentExit(exitFailed)
	}
	return nil
}

// fmtPaths expands directories to the .hcl files directly in them, sorted.
func fmtPaths(args []string) ([]string, error) {
	var paths []string
	for _, arg := range args {
		if arg == "-" {
			paths = append(paths, arg)
			continue
		}
		info, err := os.Stat(arg)
		if err != nil {
			return nil, fmt.Errorf("fmt %s: %w", arg, err)
		}
		if !info.IsDir() {
			paths = append(paths, arg)
			continue
		}
		entries, err := os.ReadDir(arg)
		if err != nil {
			return nil, fmt.Errorf("fmt %s: %w", arg, err)
		}
		var found []string
		for _, e := range entries {
			if !e.IsDir() && strings.HasSuffix(e.Name(), ".hcl") {
				found = append(found, filepath.Join(arg, e.Name()))
			}
		}
		sort.Strings(found)
		paths = append(paths, found...)
	}
	return paths, nil
}

// writeKeepingMode rewrites an existing file in place, so its mode, owner
// and any links to it stay as they were.
func writeKeepingMode(path string, data []byte) error {
	info, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("stat: %w", err)
	}
	if err := os.WriteFile(path, data, info.Mode().Perm()); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// diffContext is how many unchanged lines surround each change in a hunk.
const diffContext = 3

// writeUnifiedDiff writes the changes from a to b as a unified diff with
// the file named name on both sides. Equal inputs write nothing.
func writeUnifiedDiff(w io.Writer, name string, a, b []byte) {
	if bytes.Equal(a, b) {
		return
	}
	x, y := splitLines(a), splitLines(b)
	ops := diffLines(x, y)
	fmt.Fprintf(w, "--- %s\n+++ %s\n", name, name)
	for i := 0; i < len(ops); {
		// Find the next change.
		for i < len(ops) && ops[i].kind == ' ' {
			i++
		}
		if i == len(ops) {
			break
		}
		start := max(i-diffContext, 0)
		// Extend the hunk while changes are close enough to share context.
		end := i
		for end < len(ops) {
			if ops[end].kind != ' ' {
				end++
				continue
			}
			run := end
			for run < len(ops) && ops[run].kind == ' ' {
				run++
			}
			if run == len(ops) || run-end > 2*diffContext {
				end = min(end+diffContext, len(ops))
				break
			}
			end = run
		}
		hunk := ops[start:end]
		xs, ys := hunk[0].x, hunk[0].y
		var xn, yn int
		for _, op := range hunk {
			if op.kind != '+' {
				xn++
			}
			if op.kind != '-' {
				yn++
			}
		}
		fmt.Fprintf(w, "@@ -%s +%s @@\n", hunkRange(xs, xn), hunkRange(ys, yn))
		for _, op := range hunk {
			line := op.text
			fmt.Fprintf(w, "%c%s\n", op.kind, strings.TrimSuffix(line, "\n"))
			if !strings.HasSuffix(line, "\n") {
				fmt.Fprintln(w, `\ No newline at end of file`)
			}
		}
		i = end
	}
}

func hunkRange(start, n int) string {
	// Unified diffs number lines from 1; an empty side names the line
	// before it.
	if n == 0 {
		return fmt.Sprintf("%d,0", start)
	}
	if n == 1 {
		return fmt.Sprintf("%d", start+1)
	}
	return fmt.Sprintf("%d,%d", start+1, n)
}

// splitLines splits text after each newline, keeping the newlines.
func splitLines(b []byte) []string {
	var lines []string
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			lines = append(lines, string(b))
			break
		}
		lines = append(lines, string(b[:i+1]))
		b = b[i+1:]
	}
	return lines
}

// diffOp is one line of an edit script: ' ' kept, '-' removed, '+' added;
// x and y are the line's index (or the insertion point) in each input.
type diffOp struct {
	kind byte
	text string
	x, y int
}

// diffLines computes a shortest edit script with the longest common
// subsequence. Job files are small; beyond a size where the quadratic table
// would be large, the whole file is replaced.
func diffLines(x, y []string) []diffOp {
	// Common prefix and suffix cost nothing and shrink the table.
	pre := 0
	for pre < len(x) && pre < len(y) && x[pre] == y[pre] {
		pre++
	}
	suf := 0
	for suf < len(x)-pre && suf < len(y)-pre && x[len(x)-1-suf] == y[len(y)-1-suf] {
		suf++
	}
	var ops []diffOp
	for i := 0; i < pre; i++ {
		ops = append(ops, diffOp{' ', x[i], i, i})
	}
	mx, my := x[pre:len(x)-suf], y[pre:len(y)-suf]
	n, m := len(mx), len(my)
	if n*m > 4_000_000 {
		for i, l := range mx {
			ops = append(ops, diffOp{'-', l, pre + i, pre})
		}
		for j, l := range my {
			ops = append(ops, diffOp{'+', l, pre + n, pre + j})
		}
	} else {
		// lcs[i][j] is the LCS length of mx[i:] and my[j:].
		lcs := make([][]int, n+1)
		for i := range lcs {
			lcs[i] = make([]int, m+1)
		}
		for i := n - 1; i >= 0; i-- {
			for j := m - 1; j >= 0; j-- {
				if mx[i] == my[j] {
					lcs[i][j] = lcs[i+1][j+1] + 1
				} else {
					lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
				}
			}
		}
		i, j := 0, 0
		for i < n || j < m {
			switch {
			case i < n && j < m && mx[i] == my[j]:
				ops = append(ops, diffOp{' ', mx[i], pre + i, pre + j})
				i++
				j++
			case j < m && (i == n || lcs[i][j+1] > lcs[i+1][j]):
				ops = append(ops, diffOp{'+', my[j], pre + i, pre + j})
				j++
			default:
				ops = append(ops, diffOp{'-', mx[i], pre + i, pre + j})
				i++
			}
		}
	}
	for k := 0; k < suf; k++ {
		ops = append(ops, diffOp{' ', x[len(x)-suf+k], len(x) - suf + k, len(y) - suf + k})
	}
	return ops
}
