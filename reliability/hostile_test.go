package reliability_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hubflow/hubflow/jobs"
	"github.com/hubflow/hubflow/state"
)

// hostileDecoys are devices registered next to the targets of the
// hostile job files whose ids are prefixes, parts or unescaped forms of
// theirs: a query that quotes an id wrongly would reach them.
func hostileDecoys() []string {
	return []string{"x", "it", "it's", "quote", "quote'd'", "1", "a", "50", "%", "$", "x')OR('1'='1'", "(x", "a,b,c", "key", "@home", "ghost"}
}

// hostileFile is one job file of the corpus with what it must give.
type hostileFile struct {
	path string
	// errors maps a line to the summary of the error expected on it
	// (# ERROR: Summary on that line).
	errors map[int]string
	// run is the state a run of the file ends in (# RUN: state), for files
	// that are valid.
	run state.RunState
}

func readHostileFile(tb testing.TB, path string) hostileFile {
	tb.Helper()
	f := hostileFile{path: path, errors: map[int]string{}}
	src, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(src))
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if _, summary, ok := strings.Cut(text, "# ERROR: "); ok {
			f.errors[line] = strings.TrimSpace(summary)
		}
		if s, ok := strings.CutPrefix(text, "# RUN: "); ok {
			f.run = state.RunState(strings.TrimSpace(s))
		}
	}
	if (len(f.errors) == 0) == (f.run == "") {
		tb.Fatalf("%s: want either # ERROR: lines or a # RUN: line", path)
	}
	return f
}

// diagLine matches the first line of a diagnostic hubflow prints.
var diagLine = regexp.MustCompile(`(?m)^(.+):(\d+):(\d+): error: ([^:]+):`)

// TestHostileJobFiles feeds every job file of testdata/hostile to hubflow:
// a file with # ERROR: lines must fail validation (exit 2) with exactly
// those errors, each at its file:line:col; a file with a # RUN: line must
// validate and then run against the emulator to that state, acting on
// exactly the devices it lists (never on the decoys whose ids its ids
// would match if they were quoted wrongly in queries), with the payload
// it gives and the errors of conditions recorded once per device.
func TestHostileJobFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped with -short: runs hubflow on each file")
	}
	paths, err := filepath.Glob("testdata/hostile/*.hcl")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no hostile job files: %v", err)
	}
	var files []hostileFile
	ids := map[string]bool{}
	for _, p := range paths {
		f := readHostileFile(t, p)
		files = append(files, f)
		if f.run != "" {
			for _, id := range loadJobFile(t, p).Target.Devices {
				ids[id] = true
			}
		}
	}
	h := startHub(t, "", hubOptions{})
	for _, id := range append(sortedKeys(ids), hostileDecoys()...) {
		if strings.HasPrefix(id, "ghost") {
			continue
		}
		if _, err := h.hub.CreateDevice(id); err != nil {
			t.Fatalf("register %q: %v", id, err)
		}
	}
	tried := 0
	for _, f := range files {
		t.Run(filepath.Base(f.path), func(t *testing.T) {
			tried++
			res := runHubflow(t, time.Minute, childEnv(), "validate", f.path)
			if f.run == "" {
				checkDiagnostics(t, f, res)
				return
			}
			if res.code != 0 {
				t.Fatalf("validate: exit %d, want 0\n%s", res.code, res.stderr)
			}
			runHostile(t, h, f)
		})
	}
	t.Logf("%d hostile job files tried", tried)
}

// checkDiagnostics compares validate's diagnostics with the file's
// # ERROR: lines.
func checkDiagnostics(t *testing.T, f hostileFile, res result) {
	t.Helper()
	if res.code != 2 {
		t.Errorf("validate: exit %d, want 2\n%s", res.code, res.stderr)
	}
	got := map[int]string{}
	for _, m := range diagLine.FindAllStringSubmatch(res.stderr, -1) {
		line, _ := strconv.Atoi(m[2])
		if m[1] != f.path {
			t.Errorf("diagnostic names %s, want %s", m[1], f.path)
		}
		got[line] = m[4]
	}
	for line, want := range f.errors {
		if got[line] != want {
			t.Errorf("line %d: got error %q, want %q", line, got[line], want)
		}
	}
	for line, summary := range got {
		if _, ok := f.errors[line]; !ok {
			t.Errorf("line %d: unexpected error %q", line, summary)
		}
	}
}

// runHostile runs a valid hostile file with hubflow against the hub and
// checks what it did to every registered device.
func runHostile(t *testing.T, h *hubEnv, f hostileFile) {
	t.Helper()
	job := loadJobFile(t, f.path)
	var desired map[string]json.RawMessage
	if err := json.Unmarshal(job.Steps[0].Desired, &desired); err != nil || len(desired) != 1 {
		t.Fatalf("a runnable hostile file patches one desired property, got %s", job.Steps[0].Desired)
	}
	var key string
	for k := range desired {
		key = k
	}
	db := filepath.Join(t.TempDir(), "history.db")
	res := runHubflow(t, time.Minute, childEnv(), "run", f.path, "-hub", h.cs, "-ca", h.hub.CAFile(), "-db", db)
	wantCode := map[state.RunState]int{state.RunSucceeded: 0, state.RunFailed: 1}[f.run]
	if res.code != wantCode {
		t.Fatalf("run: exit %d, want %d\n%s%s", res.code, wantCode, res.stdout, res.stderr)
	}
	store, err := state.OpenReadOnly(context.Background(), db, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	runs, err := store.ListRuns(context.Background(), state.RunFilter{})
	if err != nil || len(runs) != 1 {
		t.Fatalf("got %d runs (%v), want 1", len(runs), err)
	}
	run := runs[0]
	if run.State != f.run {
		t.Errorf("run: got %s (%s), want %s", run.State, run.Reason, f.run)
	}
	devs, err := store.RunDevices(context.Background(), run.ID, state.DeviceFilter{})
	if err != nil {
		t.Fatal(err)
	}
	recorded := map[string]state.Device{}
	for _, d := range devs {
		recorded[d.DeviceID] = d
	}
	listed := map[string]bool{}
	for _, id := range job.Target.Devices {
		listed[id] = true
		d, ok := recorded[id]
		switch {
		case !ok:
			t.Errorf("%q: listed but not in the run", id)
		case strings.HasPrefix(id, "ghost"):
			if d.State != state.ExecSkipped || d.SkipReason == "" {
				t.Errorf("%q (not registered): got %s (%q), want skipped with a reason", id, d.State, d.SkipReason)
			}
		case f.run == state.RunSucceeded && d.State != state.ExecSucceeded:
			t.Errorf("%q: got %s (%s), want succeeded", id, d.State, d.Error)
		}
	}
	if len(recorded) != len(listed) {
		t.Errorf("the run holds %d devices, want the %d listed", len(recorded), len(listed))
	}
	// The twins are the witness: the property is on exactly the listed
	// devices that exist, as the job gave it.
	for _, id := range h.hub.DeviceIDs() {
		twin, err := h.svc.GetTwin(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		got, has := twin.Properties.Desired[key]
		if has != listed[id] {
			t.Errorf("%q: desired.%s present=%v, want %v (listed: %v)", id, key, has, listed[id], listed[id])
			continue
		}
		if has {
			gotJSON, _ := json.Marshal(got)
			if !jsonEqual(t, gotJSON, desired[key]) {
				t.Errorf("%q: desired.%s is %s, want %s", id, key, gotJSON, desired[key])
			}
		}
	}
	if f.run == state.RunFailed {
		// Conditions that fail at every observation: one error each.
		errs := map[string]int{}
		for _, e := range readEvents(t, db) {
			if e.Kind == string(state.KindNote) && e.Error != "" {
				errs[e.Device]++
			}
		}
		for id := range listed {
			if errs[id] != 1 {
				t.Errorf("%q: got %d condition errors recorded, want 1", id, errs[id])
			}
		}
	}
}

func jsonEqual(tb testing.TB, a, b []byte) bool {
	tb.Helper()
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	ca, _ := json.Marshal(x)
	cb, _ := json.Marshal(y)
	return bytes.Equal(ca, cb)
}

func loadJobFile(tb testing.TB, path string) *jobs.Job {
	tb.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	cfg, diags := jobs.Load(jobs.LoadConfig{Sources: []jobs.Source{{Name: path, Bytes: src}}})
	if diags.HasErrors() || len(cfg.Jobs) != 1 {
		tb.Fatalf("load %s: %v", path, diags)
	}
	return cfg.Jobs[0]
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestHostileGeneratedJobFiles feeds hubflow validate job files too large
// or too costly to keep in testdata: expressions nested 100,000 levels deep,
// loops that would build a billion values, bytes that are not text. Each
// must end in a diagnostic (exit 2 with file:line:col), within a memory
// and time bound that stands for a machine's.
func TestHostileGeneratedJobFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped with -short: runs hubflow to its memory limit")
	}
	step := func(body string) string {
		return "job \"x\" {\n  target {\n    devices = [\"a\"]\n  }\n  step \"s\" {\n    method = \"m\"\n" + body + "\n  }\n}\n"
	}
	const depth = 100_000
	tests := []struct {
		name, src string
		// line is where the diagnostic must point.
		line int
	}{
		{"deeply nested object", step("    payload = " + strings.Repeat("{a = ", depth) + "1" + strings.Repeat("}", depth)), 7},
		{"deeply nested parentheses", step("    success = " + strings.Repeat("(", depth) + "true" + strings.Repeat(")", depth)), 7},
		{"nested loops", step(`    payload = { a = [for i in range(1000) : [for j in range(1000) : [for k in range(1000) : "x"]]] }`), 7},
		{"set product", step(`    payload = { a = length(setproduct(range(1000), range(1000), range(1000))) }`), 7},
		{"NUL bytes in a string", step("    payload = { a = \"\x00\x00\" }"), 0},
		{"NUL bytes", step("    payload = { a = 1 }\x00\x00"), 7},
		{"invalid UTF-8", step("    payload = { a = \"\xff\xfe\xfd\" }"), 7},
		{"byte-order mark", "\ufeff" + step(`    payload = { a = 1 }`), 0},
		{"a million comment lines", strings.Repeat("# hostile\n", 1_000_000) + step("    payload = { a = }"), 1_000_007},
	}
	dir := t.TempDir()
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, dir, fmt.Sprintf("generated-%d.hcl", i), tt.src)
			res := validateBounded(t, path, 512<<20, 20*time.Second)
			if tt.line == 0 {
				if res.code != 0 {
					t.Errorf("validate: exit %d, want 0\n%s", res.code, lastLines(res.stderr, 5))
				}
				return
			}
			m := diagLine.FindStringSubmatch(res.stderr)
			if res.code != 2 || m == nil || m[1] != path || m[2] != strconv.Itoa(tt.line) {
				t.Errorf("validate: exit %d, want 2 with a diagnostic at %s:%d:\n%s", res.code, path, tt.line, lastLines(firstLines(res.stderr, 3), 3))
				return
			}
			t.Logf("%s", m[0])
		})
	}
}

// validateBounded runs hubflow validate on path with its data segment
// limited to mem bytes and its time to d; a process stopped by the time
// limit reports exit code -1.
func validateBounded(t *testing.T, path string, mem uint64, d time.Duration) result {
	t.Helper()
	cmd := exec.Command(hubflowBinary(t), "validate", path)
	cmd.Env = childEnv()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// RLIMIT_DATA rather than RLIMIT_AS: the Go runtime reserves far more
	// address space than it uses.
	if err := unix.Prlimit(cmd.Process.Pid, unix.RLIMIT_DATA, &unix.Rlimit{Cur: mem, Max: mem}, nil); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Skipf("cannot limit the memory of hubflow: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
		return result{code: cmd.ProcessState.ExitCode(), stdout: out.String(), stderr: errb.String()}
	case <-time.After(d):
		cmd.Process.Kill()
		<-done
		return result{code: -1, stdout: out.String(), stderr: fmt.Sprintf("still running after %s (killed)\n%s", d, firstLines(errb.String(), 3))}
	}
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}
