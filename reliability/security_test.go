package reliability_test

import (
	"bufio"
	"context"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hubflow/hubflow/emulator"
	"github.com/hubflow/hubflow/internal/hubadapter"
	"github.com/hubflow/hubflow/iothub"
	"github.com/hubflow/hubflow/iothub/service"
	"github.com/hubflow/hubflow/jobs"
	"github.com/hubflow/hubflow/runner"
	"github.com/hubflow/hubflow/state"
	"github.com/hubflow/hubflow/state/statetest"
)

// sensitiveToken is the value of the job's sensitive variable: a secret the
// job sends to devices (a SAS on the firmware URL) that hubflow itself may
// never show or keep.
const sensitiveToken = "c2VjcmV0LXRva2VuLWZvci10aGUtZmlybXdhcmUtc3RvcmU"

// secretJob updates firmware from a URL signed with a sensitive token.
const secretJob = `
variable "token" {
  type      = string
  sensitive = true
}

job "secret" {
  target { query = "tags.site = 'secret'" }
  rollout { concurrency = 10 }
  step "update" {
    method           = "firmwareUpdate"
    payload          = { fwPackageUri = "https://firmware.example.com/edge-2.1.0.bin?sv=2024&sig=${var.token}" }
    response_timeout = "10s"
    progress = reported.firmwareStatus
    success  = reported.firmwareStatus == "completed"
    failure  = reported.firmwareStatus == "failed"
    timeout  = "1m"
  }
  step "reboot" {
    method  = "rebootDevice"
    success = try(timecmp(reported.rebootTime, step.started_at) > 0, false)
    timeout = "1m"
  }
}
`

// sasPattern matches a shared access signature token.
var sasPattern = regexp.MustCompile(`SharedAccessSignature|[?&]sig=[A-Za-z0-9%]{16,}`)

// hubSecrets returns every key the hub holds: its policies' and its
// devices'.
func hubSecrets(tb testing.TB, h *emulator.Hub) []string {
	tb.Helper()
	var secrets []string
	add := func(raw string, err error) {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
		cs, err := iothub.ParseConnectionString(raw)
		if err != nil {
			tb.Fatal(err)
		}
		secrets = append(secrets, raw, cs.SharedAccessKey)
	}
	for _, p := range []string{emulator.PolicyOwner, emulator.PolicyService, emulator.PolicyRegistryRead, emulator.PolicyRegistryReadWrite, emulator.PolicyDevice} {
		add(h.PolicyConnectionString(p))
	}
	for _, id := range h.DeviceIDs() {
		add(h.DeviceConnectionString(id))
	}
	return secrets
}

// assertNoSecret fails if any secret or a SAS token occurs in text; it
// names the secret by position, never by value.
func assertNoSecret(tb testing.TB, what, text string, secrets []string) {
	tb.Helper()
	for i, s := range secrets {
		if strings.Contains(text, s) {
			tb.Errorf("%s holds secret #%d (%d bytes)", what, i+1, len(s))
		}
	}
	if m := sasPattern.FindString(text); m != "" {
		tb.Errorf("%s holds something shaped like a SAS token (%d bytes starting %.12q)", what, len(m), m)
	}
}

// TestSecrets_NeverShownOrKept runs every hubflow command that touches a
// hub or the history with a known hub key and a sensitive job variable,
// through flags and through the environment, on the happy path and on the
// failures whose messages are most tempted to quote a connection string
// (a wrong key, a malformed string, an unreachable hub, an untrusted
// certificate). Neither the keys of the hub's policies and devices nor the
// sensitive value may appear in any output, and the history database
// (raw bytes, free pages and every table) may hold none of them.
func TestSecrets_NeverShownOrKept(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped with -short: runs hubflow against the emulator")
	}
	h := startHub(t, fleetHCL(fleetSpec{count: 10, site: "secret", stage: "50ms..100ms"}), hubOptions{seed: 9})
	secrets := append(hubSecrets(t, h.hub), sensitiveToken)
	dir := t.TempDir()
	job := writeFile(t, dir, "secret.hcl", secretJob)
	db := filepath.Join(dir, "history.db")
	ca := h.hub.CAFile()
	wrongKey := strings.Replace(h.cs, "SharedAccessKey=", "SharedAccessKey=AAAA", 1)
	unreachable := "HostName=127.0.0.1:1;SharedAccessKeyName=iothubowner;SharedAccessKey=" + mustKey(t, h.cs)
	malformed := h.cs + ";SharedAccessKey"
	secrets = append(secrets, strings.TrimPrefix(wrongKey[strings.Index(wrongKey, "SharedAccessKey="):], "SharedAccessKey="))
	env := childEnv()
	envHub := childEnv("IOTHUB_CONNECTION_STRING="+h.cs, "HUBFLOW_VAR_token="+sensitiveToken)
	tokenVar := "token=" + sensitiveToken

	tests := []struct {
		name string
		env  []string
		args []string
		code int
	}{
		{"validate", env, []string{"validate", "-var", tokenVar, job}, 0},
		{"plan", env, []string{"plan", job, "-hub", h.cs, "-ca", ca, "-var", tokenVar}, 0},
		{"plan -o json", env, []string{"plan", job, "-hub", h.cs, "-ca", ca, "-var", tokenVar, "-o", "json"}, 0},
		{"plan from the environment", envHub, []string{"plan", job, "-ca", ca}, 0},
		{"run", env, []string{"run", job, "-hub", h.cs, "-ca", ca, "-db", db, "-var", tokenVar}, 0},
		{"run from the environment", envHub, []string{"run", job, "-ca", ca, "-db", db}, 0},
		{"run with a changed plan", env, []string{"run", job, "-hub", h.cs, "-ca", ca, "-db", db, "-var", tokenVar, "-plan-hash", "0000000000000000"}, 2},
		{"history", env, []string{"history", "-db", db}, 0},
		{"device", env, []string{"device", h.sim.Devices()[0], "-db", db}, 0},
		{"plan with a wrong key", env, []string{"plan", job, "-hub", wrongKey, "-ca", ca, "-var", tokenVar}, 3},
		{"run with a wrong key", env, []string{"run", job, "-hub", wrongKey, "-ca", ca, "-db", db, "-var", tokenVar}, 3},
		{"run with a malformed connection string", env, []string{"run", job, "-hub", malformed, "-ca", ca, "-db", db, "-var", tokenVar}, 2},
		{"run against an unreachable hub", env, []string{"run", job, "-hub", unreachable, "-ca", ca, "-db", db, "-var", tokenVar}, 3},
		{"plan without trusting the hub's CA", env, []string{"plan", job, "-hub", h.cs, "-var", tokenVar}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := runHubflow(t, time.Minute, tt.env, tt.args...)
			if res.code != tt.code {
				t.Errorf("exit %d, want %d\n%s%s", res.code, tt.code, res.stdout, lastLines(res.stderr, 5))
			}
			assertNoSecret(t, "stdout", res.stdout, secrets)
			assertNoSecret(t, "stderr", res.stderr, secrets)
		})
	}
	runs := listRuns(t, db)
	if len(runs) < 2 {
		t.Fatalf("got %d runs recorded, want the two successful ones", len(runs))
	}
	res := runHubflow(t, time.Minute, env, "show", runs[0].ID, "-db", db)
	assertNoSecret(t, "show", res.stdout+res.stderr, secrets)
	statetest.AssertNoSecrets(t, db, secrets...)
}

// TestSecrets_NotInDebugLogs runs the job in process with every component
// logging at debug level (the runner, the REST client, the history store,
// the emulator and, separately, the fleet) and looks for the keys and the
// sensitive value in the logs.
func TestSecrets_NotInDebugLogs(t *testing.T) {
	var log, fleetLog syncBuilder
	debug := func(w *syncBuilder) *slog.Logger {
		return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	logger := debug(&log)
	h := startHub(t, fleetHCL(fleetSpec{count: 5, site: "secret", stage: "50ms..100ms"}), hubOptions{seed: 9, logger: logger, fleetLogger: debug(&fleetLog)})
	secrets := append(hubSecrets(t, h.hub), sensitiveToken)
	cs, err := iothub.ParseConnectionString(h.cs)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := service.New(service.Config{ConnectionString: cs, RootCAs: h.hub.CAPool(), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	cfg, diags := jobs.Load(jobs.LoadConfig{Sources: []jobs.Source{{Name: "secret.hcl", Bytes: []byte(secretJob)}}, Vars: []string{"token=" + sensitiveToken}})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	store := openStore(t, filepath.Join(t.TempDir(), "history.db"), state.Options{Logger: logger})
	r, err := runner.New(runner.Config{Hub: hubadapter.New(svc), Recorder: store, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := r.Run(ctx, runner.Request{Job: cfg.Jobs[0]})
	if err != nil || res.State != state.RunSucceeded {
		t.Fatalf("run: %v %+v", err, res)
	}
	if log.Len() == 0 {
		t.Fatal("nothing was logged")
	}
	assertNoSecret(t, "the debug log", log.String(), secrets)
	if err := store.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	statetest.AssertNoSecrets(t, store.Path(), secrets...)
	t.Run("fleet", func(t *testing.T) {
		assertNoSecret(t, "the fleet's debug log", fleetLog.String(), secrets)
	})
}

// syncBuilder is a strings.Builder many goroutines may log to.
type syncBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuilder) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuilder) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuilder) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Len()
}

func mustKey(tb testing.TB, raw string) string {
	tb.Helper()
	cs, err := iothub.ParseConnectionString(raw)
	if err != nil {
		tb.Fatal(err)
	}
	return cs.SharedAccessKey
}

func listRuns(tb testing.TB, db string) []state.Run {
	tb.Helper()
	st, err := state.OpenReadOnly(context.Background(), db, state.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	defer st.Close()
	runs, err := st.ListRuns(context.Background(), state.RunFilter{})
	if err != nil {
		tb.Fatal(err)
	}
	return runs
}

// umaskZero runs hubflow with args under a umask of 0, so that only the
// modes hubflow asks for protect what it creates.
func umaskZero(tb testing.TB, env []string, args ...string) *exec.Cmd {
	tb.Helper()
	cmd := exec.Command("/bin/sh", append([]string{"-c", `umask 0; exec "$0" "$@"`, hubflowBinary(tb)}, args...)...)
	cmd.Env = env
	return cmd
}

// TestFiles_Private checks the modes of what hubflow creates, under a
// umask of 0: the history database and its write-ahead log and shared
// memory files are 0600, the emulator's data directory 0700 and every
// file in it that holds a key (the CA's, the server's, the registry with
// the device keys) 0600; nothing is writable by others.
func TestFiles_Private(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped with -short: runs hubflow against the emulator")
	}
	t.Run("history database", func(t *testing.T) {
		h := startHub(t, fleetHCL(fleetSpec{count: 50, site: "modes", stage: "100ms..200ms"}), hubOptions{seed: 4})
		dir := t.TempDir()
		job := writeFile(t, dir, "job.hcl", jobSpec{name: "modes", site: "modes", concurrency: 10}.hcl())
		db := filepath.Join(dir, "history.db")
		cmd := umaskZero(t, childEnv("IOTHUB_CONNECTION_STRING="+h.cs), "run", job, "-ca", h.hub.CAFile(), "-db", db)
		out := &lockedBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// The -wal and -shm files exist while the run writes.
		seen := map[string]os.FileMode{}
		deadline := time.Now().Add(30 * time.Second)
		for len(seen) < 3 && time.Now().Before(deadline) {
			for _, suffix := range []string{"", "-wal", "-shm"} {
				if fi, err := os.Stat(db + suffix); err == nil {
					seen[suffix] = fi.Mode().Perm()
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("run: %v\n%s", err, out)
		}
		for _, suffix := range []string{"", "-wal", "-shm"} {
			mode, ok := seen[suffix]
			if !ok {
				t.Errorf("history%s: never seen", suffix)
				continue
			}
			if mode != 0o600 {
				t.Errorf("history%s: mode %v, want 0600", suffix, mode)
			}
		}
	})
	t.Run("emulator data", func(t *testing.T) {
		data := filepath.Join(t.TempDir(), "emulator")
		cmd := umaskZero(t, childEnv(), "emulator", "-data", data, "-https", "127.0.0.1:0", "-mqtt", "127.0.0.1:0")
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		errb := &lockedBuffer{}
		cmd.Stderr = errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer cmd.Process.Kill()
		// The emulator prints its connection strings once it listens.
		sc := bufio.NewScanner(stdout)
		ready := false
		for !ready && sc.Scan() {
			ready = strings.Contains(sc.Text(), "SharedAccessKey=")
		}
		if !ready {
			t.Fatalf("the emulator never printed a connection string:\n%s", errb)
		}
		// Close writes the registry snapshot.
		if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		go func() { _, _ = bufioDrain(sc) }()
		if err := cmd.Wait(); err != nil {
			t.Logf("emulator: %v\n%s", err, errb)
		}
		checkPrivateTree(t, data)
	})
}

func bufioDrain(sc *bufio.Scanner) (int, error) {
	n := 0
	for sc.Scan() {
		n++
	}
	return n, sc.Err()
}

// checkPrivateTree checks that dir and every directory under it are 0700,
// that every file holding a key is 0600, and that nothing is writable by
// group or others.
func checkPrivateTree(t *testing.T, dir string) {
	t.Helper()
	files := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		mode := fi.Mode().Perm()
		rel, _ := filepath.Rel(dir, path)
		if d.IsDir() {
			if mode != 0o700 {
				t.Errorf("%s/: mode %v, want 0700", rel, mode)
			}
			return nil
		}
		files++
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		secret := strings.Contains(string(b), "PRIVATE KEY") || strings.Contains(string(b), "primaryKey") || strings.Contains(string(b), "SharedAccessKey")
		switch {
		case secret && mode != 0o600:
			t.Errorf("%s holds a key: mode %v, want 0600", rel, mode)
		case mode&0o022 != 0:
			t.Errorf("%s: mode %v is writable by others", rel, mode)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files == 0 {
		t.Errorf("%s holds no files, want the CA and the registry", dir)
	}
}

// TestEmulator_LoopbackUnlessTold starts `hubflow emulator` on addresses
// beyond loopback without -allow-remote: it must refuse before listening,
// saying how to allow it. (The emulator's own tests cover Options; this
// covers the command's flags.)
func TestEmulator_LoopbackUnlessTold(t *testing.T) {
	tests := []struct{ name, https, mqtt string }{
		{"REST on every interface", "0.0.0.0:0", "127.0.0.1:0"},
		{"MQTT on every interface", "127.0.0.1:0", ":0"},
		{"IPv6 wildcard", "[::]:0", "127.0.0.1:0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := runHubflow(t, 30*time.Second, childEnv(), "emulator", "-data", t.TempDir(), "-https", tt.https, "-mqtt", tt.mqtt)
			if res.code == 0 || !strings.Contains(res.stderr, "allow-remote") {
				t.Errorf("exit %d, want a refusal naming -allow-remote:\n%s%s", res.code, res.stdout, res.stderr)
			}
			if strings.Contains(res.stdout, "SharedAccessKey=") {
				t.Error("the emulator printed connection strings, so it was listening")
			}
		})
	}
}
