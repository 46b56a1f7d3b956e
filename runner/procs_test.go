package runner_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hubflow/hubflow/emulator"
	"github.com/hubflow/hubflow/iothub"
	"github.com/hubflow/hubflow/simulator"
)

// Benchmarks run the emulator and the fleet in child processes (this test
// binary, re-executed), so that the benchmark process holds the runner
// alone: its RSS is the runner's, and no process needs a file descriptor
// for both ends of ten thousand connections.
const (
	envTier  = "HUBFLOW_RUNNER_CHILD_TIER"
	envUnits = "HUBFLOW_RUNNER_CHILD_UNITS"
	envFleet = "HUBFLOW_RUNNER_CHILD_FLEET"
	envSeed  = "HUBFLOW_RUNNER_CHILD_SEED"
	envData  = "HUBFLOW_RUNNER_CHILD_DATA"
	envHTTPS = "HUBFLOW_RUNNER_CHILD_HTTPS"
	envMQTT  = "HUBFLOW_RUNNER_CHILD_MQTT"
	// envGateway is the host and port devices dial for MQTT.
	envGateway = "HUBFLOW_RUNNER_CHILD_GATEWAY"
)

// childHello is the first line a hub child prints.
type childHello struct {
	CS   string `json:"cs"`
	CA   string `json:"ca"`
	MQTT string `json:"mqtt"`
}

// hubReport is what an emulator child answers to "report": what the hub
// saw, for figures only the hub knows.
type hubReport struct {
	Stats emulator.Stats `json:"stats"`
	// Delivered counts method calls written to devices.
	Delivered int `json:"delivered"`
	// FirstSent and LastSent bound the deliveries.
	FirstSent, LastSent time.Time
	// Completed maps a device to when the hub received its report of
	// firmwareStatus "completed".
	Completed map[string]time.Time `json:"completed"`
}

// emulatorChild runs an emulator until stdin closes, answering "report"
// lines with a hubReport.
func emulatorChild() error {
	units, _ := strconv.Atoi(os.Getenv(envUnits))
	hub, err := emulator.Start(context.Background(), emulator.Options{
		Tier: os.Getenv(envTier), Units: units, DataDir: os.Getenv(envData),
		HTTPSAddr: os.Getenv(envHTTPS), MQTTAddr: os.Getenv(envMQTT),
	})
	if err != nil {
		return err
	}
	defer hub.Close()
	enc := json.NewEncoder(os.Stdout)
	if err := enc.Encode(childHello{CS: hub.ServiceConnectionString(), CA: hub.CAFile(), MQTT: hub.MQTTAddr()}); err != nil {
		return err
	}
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		if sc.Text() != "report" {
			continue
		}
		rep := hubReport{Stats: hub.Stats(), Completed: map[string]time.Time{}}
		for _, inv := range hub.Invocations() {
			if inv.Sent.IsZero() {
				continue
			}
			rep.Delivered++
			if rep.FirstSent.IsZero() || inv.Sent.Before(rep.FirstSent) {
				rep.FirstSent = inv.Sent
			}
			if inv.Sent.After(rep.LastSent) {
				rep.LastSent = inv.Sent
			}
			if _, ok := rep.Completed[inv.DeviceID]; !ok {
				for _, p := range hub.ReportedLog(inv.DeviceID) {
					if strings.Contains(string(p.Patch), `"completed"`) {
						rep.Completed[inv.DeviceID] = p.Received
					}
				}
			}
		}
		if err := enc.Encode(rep); err != nil {
			return err
		}
	}
	return nil
}

// fleetChild runs a simulated fleet against the hub in envHub until stdin
// closes.
func fleetChild() error {
	cs, err := iothub.ParseConnectionString(os.Getenv(envHub))
	if err != nil {
		return err
	}
	roots, err := loadCA(os.Getenv(envCA))
	if err != nil {
		return err
	}
	fleet, diags := simulator.LoadFleet("fleet.hcl", []byte(os.Getenv(envFleet)))
	if diags.HasErrors() {
		return diags
	}
	seed, _ := strconv.ParseInt(os.Getenv(envSeed), 10, 64)
	sim, err := simulator.Start(context.Background(), fleet, simulator.Config{
		Hub: cs, RootCAs: roots, Seed: seed, ConnectConcurrency: 64, GatewayHostName: os.Getenv(envGateway),
	})
	if err != nil {
		return err
	}
	defer sim.Close()
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	return nil
}

// child is a running child process.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
	done  chan struct{}
}

// startChild starts this test binary in a child mode and returns it with
// its first line of output; the child stops when the test ends.
func startChild(tb testing.TB, env ...string) (*child, string) {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	c := &child{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout), done: make(chan struct{})}
	go func() { cmd.Wait(); close(c.done) }()
	tb.Cleanup(c.stop)
	line, err := c.out.ReadString('\n')
	if err != nil {
		tb.Fatalf("child %s: %v", env[0], err)
	}
	return c, line
}

// stop closes the child's stdin and waits for it to exit.
func (c *child) stop() {
	c.stdin.Close()
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		c.cmd.Process.Kill()
		<-c.done
	}
}

// report asks an emulator child for its hubReport.
func (c *child) report(tb testing.TB) hubReport {
	tb.Helper()
	if _, err := io.WriteString(c.stdin, "report\n"); err != nil {
		tb.Fatal(err)
	}
	line, err := c.out.ReadString('\n')
	if err != nil {
		tb.Fatal(err)
	}
	var r hubReport
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		tb.Fatal(err)
	}
	return r
}

// freeAddr returns a loopback address with a free port.
func freeAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// hubProcesses are an emulator and a fleet in child processes.
type hubProcesses struct {
	*fixture
	emu, fleet *child
}

// cpu returns the CPU time the child has used so far (Linux), or 0.
func (c *child) cpu() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses: utime and
	// stime are the 12th and 13th of them, in clock ticks (100 a second).
	_, rest, ok := strings.Cut(string(b), ") ")
	f := strings.Fields(rest)
	if !ok || len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * 10 * time.Millisecond
}

// startHubProcesses starts an emulator and a fleet in two child processes
// and returns a fixture whose in-process hub fields are nil. With a tier,
// the fleet registers and connects to an emulator without quotas, which is
// then restarted on the same ports and data with the tier's quotas on: a
// real hub's registry quota (100 operations a minute on S1) would
// otherwise make registering thousands of devices take half an hour.
func startHubProcesses(tb testing.TB, fleetHCL string, o fixtureOptions) *hubProcesses {
	tb.Helper()
	data := tb.TempDir()
	https, mqtt := freeAddr(tb), freeAddr(tb)
	emuEnv := func(tier string, units int) []string {
		return []string{envChild + "=emulator", envTier + "=" + tier, envUnits + "=" + strconv.Itoa(units),
			envData + "=" + data, envHTTPS + "=" + https, envMQTT + "=" + mqtt}
	}
	emu, line := startChild(tb, emuEnv("", 0)...)
	var hello childHello
	if err := json.Unmarshal([]byte(line), &hello); err != nil {
		tb.Fatalf("emulator child said %q: %v", line, err)
	}
	_, port, _ := strings.Cut(hello.MQTT, ":")
	fleet, _ := startChild(tb, envChild+"=fleet", envHub+"="+hello.CS, envCA+"="+hello.CA, envFleet+"="+fleetHCL,
		envSeed+"="+strconv.FormatInt(o.seed, 10), envGateway+"=localhost:"+port)
	if o.tier != "" {
		emu.stop()
		emu, line = startChild(tb, emuEnv(o.tier, o.units)...)
		if err := json.Unmarshal([]byte(line), &hello); err != nil {
			tb.Fatalf("emulator child said %q: %v", line, err)
		}
		// The devices reconnect on their own; wait until the hub has them
		// all, at the tier's connection rate.
		want := fleetSize(tb, fleetHCL)
		deadline := time.Now().Add(5 * time.Minute)
		for emu.report(tb).Stats.ConnectedDevices < int64(want) {
			if time.Now().After(deadline) {
				tb.Fatal("the fleet did not reconnect to the restarted emulator")
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return &hubProcesses{fixture: newRemoteFixture(tb, hello.CS, hello.CA), emu: emu, fleet: fleet}
}

func fleetSize(tb testing.TB, fleetHCL string) int {
	tb.Helper()
	f, diags := simulator.LoadFleet("fleet.hcl", []byte(fleetHCL))
	if diags.HasErrors() {
		tb.Fatal(diags)
	}
	return f.Size()
}
