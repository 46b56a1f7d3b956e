package conformance_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hubflow/hubflow/emulator"
	"github.com/hubflow/hubflow/iothub"
)

// npmInstall installs the pinned SDKs into node/node_modules once per test
// binary; npm ci is skipped when the installed lock matches.
func npmInstall(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found on PATH: the official Azure IoT SDK conformance tests need Node.js 18 or newer", tool)
		}
	}
	dir, err := filepath.Abs("node")
	if err != nil {
		t.Fatal(err)
	}
	lock, _ := os.ReadFile(filepath.Join(dir, "package-lock.json"))
	installed, _ := os.ReadFile(filepath.Join(dir, "node_modules", ".package-lock.json"))
	if len(installed) > 0 && sameDeps(lock, installed) {
		return dir
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
	}
	return dir
}

// sameDeps compares the package versions of two lock files.
func sameDeps(lock, installed []byte) bool {
	var a, b struct {
		Packages map[string]struct{ Version string } `json:"packages"`
	}
	if json.Unmarshal(lock, &a) != nil || json.Unmarshal(installed, &b) != nil {
		return false
	}
	for k, v := range a.Packages {
		if k == "" {
			continue
		}
		if b.Packages[k].Version != v.Version {
			return false
		}
	}
	return true
}

func startHub(t *testing.T) *emulator.Hub {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	hub, err := emulator.Start(ctx, emulator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hub.Close() })
	return hub
}

// nodeProcess runs a script and collects its output.
type nodeProcess struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []string
	ready chan struct{}
}

func startNode(t *testing.T, dir string, env []string, args ...string) *nodeProcess {
	t.Helper()
	p := &nodeProcess{ready: make(chan struct{})}
	p.cmd = exec.Command("node", args...)
	p.cmd.Dir = dir
	p.cmd.Env = append(os.Environ(), env...)
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stderr = p.cmd.Stdout
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
		var once sync.Once
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			p.mu.Unlock()
			if sc.Text() == "READY" {
				once.Do(func() { close(p.ready) })
			}
		}
	}()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
		}
	})
	return p
}

func (p *nodeProcess) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// serviceEnv points the Node service SDK at the emulator: HostName without a
// port (the SDK cannot express one) and the shim sending it to the real port.
func serviceEnv(t *testing.T, hub *emulator.Hub) []string {
	t.Helper()
	cs, err := iothub.ParseConnectionString(hub.ServiceConnectionString())
	if err != nil {
		t.Fatal(err)
	}
	host, _, err := net.SplitHostPort(cs.HostName)
	if err != nil {
		host = cs.HostName
	}
	cs.HostName = host
	return []string{
		"SERVICE_CONNECTION_STRING=" + cs.String(),
		"HUBFLOW_HUB_HOST=" + host,
		"HUBFLOW_HUB_ADDR=" + hub.HTTPSAddr(),
		"NODE_EXTRA_CA_CERTS=" + hub.CAFile(),
	}
}

func TestNodeSDK_TutorialFlows(t *testing.T) {
	dir := npmInstall(t)
	hub := startHub(t)
	const id = "node-tutorial-device"
	if _, err := hub.CreateDevice(id); err != nil {
		t.Fatal(err)
	}
	dcs, err := hub.DeviceConnectionString(id)
	if err != nil {
		t.Fatal(err)
	}
	dev := startNode(t, dir, []string{"DEVICE_CONNECTION_STRING=" + dcs, "HUBFLOW_CA_FILE=" + hub.CAFile(), "STAGE_MS=100"}, "device.js")
	select {
	case <-dev.ready:
	case <-time.After(30 * time.Second):
		t.Fatalf("device app not ready after 30s:\n%s", dev.output())
	}

	env := append(serviceEnv(t, hub), "DEVICE_ID="+id)
	svc := exec.Command("node", "--require", "./shim.js", "service.js")
	svc.Dir = dir
	svc.Env = append(os.Environ(), env...)
	out, err := svc.CombinedOutput()
	if err != nil {
		t.Fatalf("service app: %v\n%s\ndevice output:\n%s", err, out, dev.output())
	}
	var seen struct {
		Reboot            struct{ Status int }
		RebootTime        string
		Firmware          struct{ Status int }
		Stages            []string
		MaintenanceWindow struct{ Status string }
		Query             []string
		CreatedKeys       bool
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &seen); err != nil {
		t.Fatalf("service output is not JSON: %v\n%s", err, out)
	}
	if seen.Reboot.Status != 200 || seen.Firmware.Status != 200 {
		t.Errorf("method statuses: got reboot %d firmware %d, want 200", seen.Reboot.Status, seen.Firmware.Status)
	}
	if _, err := time.Parse(time.RFC3339, seen.RebootTime); err != nil {
		t.Errorf("rebootTime %q: %v", seen.RebootTime, err)
	}
	if len(seen.Stages) == 0 || seen.Stages[len(seen.Stages)-1] != "completed" {
		t.Errorf("firmware stages: got %v, want them to end with completed", seen.Stages)
	}
	if seen.MaintenanceWindow.Status != "accepted" {
		t.Errorf("maintenance window: got %q, want accepted", seen.MaintenanceWindow.Status)
	}
	if len(seen.Query) != 1 || seen.Query[0] != id {
		t.Errorf("query: got %v, want [%s]", seen.Query, id)
	}
	if !seen.CreatedKeys {
		t.Error("registry create did not return generated keys")
	}
}

// TestNodeSDK_SurvivesReconnects renews the device token every few seconds
// (the SDK reconnects without re-subscribing) and drops the connection from
// the hub side; methods must still reach the device afterwards.
func TestNodeSDK_SurvivesReconnects(t *testing.T) {
	dir := npmInstall(t)
	hub := startHub(t)
	const id = "node-reconnect-device"
	if _, err := hub.CreateDevice(id); err != nil {
		t.Fatal(err)
	}
	dcs, err := hub.DeviceConnectionString(id)
	if err != nil {
		t.Fatal(err)
	}
	dev := startNode(t, dir, []string{"DEVICE_CONNECTION_STRING=" + dcs, "HUBFLOW_CA_FILE=" + hub.CAFile(), "STAGE_MS=50", "TOKEN_RENEWAL_SECONDS=5"}, "device.js")
	select {
	case <-dev.ready:
	case <-time.After(30 * time.Second):
		t.Fatalf("device app not ready after 30s:\n%s", dev.output())
	}
	time.Sleep(4 * time.Second) // past the first token renewal
	hub.Faults().DisconnectAll()

	env := append(serviceEnv(t, hub), "DEVICE_ID="+id)
	svc := exec.Command("node", "--require", "./shim.js", "service.js")
	svc.Dir = dir
	svc.Env = append(os.Environ(), env...)
	if out, err := svc.CombinedOutput(); err != nil {
		t.Fatalf("service app after reconnects: %v\n%s\ndevice output:\n%s", err, out, dev.output())
	}
}
