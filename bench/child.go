package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hubflow/hubflow/emulator"
	"github.com/hubflow/hubflow/iothub"
	"github.com/hubflow/hubflow/iothub/service"
)

// childStartTimeout bounds how long a child may take to say it is ready:
// registering and connecting ten thousand devices takes a while.
const childStartTimeout = 10 * time.Minute

// child is a hubflow process started by the benchmark (`hubflow emulator` or
// `hubflow simulate`), whose output goes to a log file.
type child struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{} // closed once the process has exited
	err  error         // its exit status, once done is closed
}

// startChild starts executable with args and env. Each line of its stdout
// (unless logStdout is false) and stderr is copied to the log file, and
// every line is offered to onLine (in order, stdout and stderr separately);
// the returned channel is closed the first time onLine reports the child
// ready.
func startChild(name, executable, logPath string, args, env []string, logStdout bool, onLine func(stdout bool, line []byte) (ready bool)) (*child, <-chan struct{}, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("start %s: %w", name, err)
	}
	cmd := exec.Command(executable, args...)
	cmd.Env = env
	dieWithParent(cmd)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return nil, nil, fmt.Errorf("start %s: %w", name, err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		logf.Close()
		return nil, nil, fmt.Errorf("start %s: %w", name, err)
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	readyc := make(chan struct{})
	var once sync.Once
	var mu sync.Mutex // serializes ready and the log writes
	var wg sync.WaitGroup
	copyLines := func(r io.Reader, isStdout bool) {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			line := sc.Bytes()
			mu.Lock()
			if logStdout || !isStdout {
				logf.Write(line)
				logf.Write([]byte{'\n'})
			}
			if onLine(isStdout, line) {
				once.Do(func() { close(readyc) })
			}
			mu.Unlock()
		}
		// Keep draining so the child never blocks on a full pipe.
		_, _ = io.Copy(io.Discard, r)
	}
	wg.Add(2)
	go func() { defer wg.Done(); copyLines(stdout, true) }()
	go func() { defer wg.Done(); copyLines(stderr, false) }()
	go func() {
		wg.Wait()
		c.err = cmd.Wait()
		logf.Close()
		close(c.done)
	}()
	return c, readyc, nil
}

// waitReady waits for the child to be ready, to exit, or for ctx.
func (c *child) waitReady(ctx context.Context, ready <-chan struct{}) error {
	t := time.NewTimer(childStartTimeout)
	defer t.Stop()
	select {
	case <-ready:
		return nil
	case <-c.done:
		return fmt.Errorf("%s exited before it was ready (%v); see %s", c.name, c.err, c.log)
	case <-t.C:
		c.stop()
		return fmt.Errorf("%s not ready after %s; see %s", c.name, childStartTimeout, c.log)
	case <-ctx.Done():
		c.stop()
		return ctx.Err()
	}
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// stop interrupts the child, as Ctrl-C would, and kills it if it has not
// exited within a minute.
func (c *child) stop() error {
	select {
	case <-c.done:
		return nil
	default:
	}
	_ = c.cmd.Process.Signal(os.Interrupt)
	t := time.NewTimer(time.Minute)
	defer t.Stop()
	select {
	case <-c.done:
		return nil
	case <-t.C:
		_ = c.cmd.Process.Kill()
		<-c.done
		return fmt.Errorf("stop %s: killed after a minute; see %s", c.name, c.log)
	}
}

// childEnv is this process's environment without a hub connection string,
// plus extra.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "IOTHUB_CONNECTION_STRING=") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// emulatorInfo is what `hubflow emulator` prints once it listens.
type emulatorInfo struct {
	httpsAddr, mqttAddr, caFile string
	connectionString            string
}

// emulatorOutput reads the emulator command's banner line by line.
type emulatorOutput struct {
	info       emulatorInfo
	expectConn bool
}

// line takes one line of the banner and reports whether the banner is
// complete.
func (o *emulatorOutput) line(s string) bool {
	t := strings.TrimSpace(s)
	switch {
	case o.expectConn:
		o.info.connectionString = t
		o.expectConn = false
	case strings.HasPrefix(t, "REST (HTTPS):"):
		o.info.httpsAddr = strings.TrimSpace(strings.TrimPrefix(t, "REST (HTTPS):"))
	case strings.HasPrefix(t, "MQTT (TLS):"):
		o.info.mqttAddr = strings.TrimSpace(strings.TrimPrefix(t, "MQTT (TLS):"))
	case strings.HasPrefix(t, "CA file:"):
		o.info.caFile = strings.TrimSpace(strings.TrimPrefix(t, "CA file:"))
	case strings.HasPrefix(t, "Service connection string"):
		o.expectConn = true
	}
	i := o.info
	return i.httpsAddr != "" && i.mqttAddr != "" && i.caFile != "" && i.connectionString != ""
}

// children runs the emulator and the fleet in two child processes.
type children struct {
	c       sideConfig
	emu     *child
	sim     *child
	info    emulatorInfo
	cs      *iothub.ConnectionString
	roots   *x509.CertPool
	usageAt childUsage // usage of emulator processes replaced by applyQuota
	reports *reportWatch
}

func startChildren(ctx context.Context, c sideConfig) (*children, error) {
	if c.executable == "" {
		return nil, errors.New("start hub: the children topology needs the hubflow executable")
	}
	ch := &children{c: c, reports: newReportWatch()}
	if err := ch.startEmulator(ctx, "127.0.0.1:0", "127.0.0.1:0", "", 0); err != nil {
		return nil, err
	}
	sim, err := startSimulatorChild(ctx, c, ch.cs, ch.info.caFile, ch.info.mqttAddr, ch.reports)
	if err != nil {
		ch.emu.stop()
		return nil, err
	}
	ch.sim = sim
	return ch, nil
}

func (ch *children) startEmulator(ctx context.Context, httpsAddr, mqttAddr, tier string, units int) error {
	args := []string{"emulator", "-https", httpsAddr, "-mqtt", mqttAddr}
	if ch.c.persist {
		args = append(args, "-data", filepath.Join(ch.c.dir, "emulator"))
	}
	if tier != "" {
		args = append(args, "-tier", tier, "-units", fmt.Sprint(units))
	}
	var out emulatorOutput
	emu, ready, err := startChild("emulator", ch.c.executable, filepath.Join(ch.c.dir, "emulator.log"), args, childEnv(), true,
		func(stdout bool, line []byte) bool { return stdout && out.line(string(line)) })
	if err != nil {
		return err
	}
	if err := emu.waitReady(ctx, ready); err != nil {
		return err
	}
	ch.emu = emu
	ch.info = out.info
	cs, err := iothub.ParseConnectionString(out.info.connectionString)
	if err != nil {
		emu.stop()
		return fmt.Errorf("start emulator: its connection string: %w", err)
	}
	pem, err := os.ReadFile(out.info.caFile)
	if err != nil {
		emu.stop()
		return fmt.Errorf("start emulator: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		emu.stop()
		return fmt.Errorf("start emulator: no certificate in %s", out.info.caFile)
	}
	ch.cs, ch.roots = cs, roots
	return nil
}

// startSimulatorChild runs `hubflow simulate` for the fleet file against
// hub, its reported patches (one JSON line each on its stdout) going to
// watch. The connection string goes in the environment, not on the command
// line, where any local user could read it.
func startSimulatorChild(ctx context.Context, c sideConfig, hub *iothub.ConnectionString, caFile, gateway string, watch *reportWatch) (*child, error) {
	args := []string{"simulate", "-fleet", c.fleetFile, "-seed", fmt.Sprint(fleetSeed), "-concurrency", fmt.Sprint(connectConcurrency), "-reports"}
	if caFile != "" {
		args = append(args, "-ca", caFile)
	}
	if gateway != "" {
		args = append(args, "-gateway", gateway)
	}
	sim, ready, err := startChild("simulator", c.executable, filepath.Join(c.dir, "simulator.log"), args,
		childEnv("IOTHUB_CONNECTION_STRING="+hub.String()), false,
		func(stdout bool, line []byte) bool {
			if stdout {
				watch.onLine(line)
				return false
			}
			return bytes.HasPrefix(line, []byte("simulating "))
		})
	if err != nil {
		return nil, err
	}
	if err := sim.waitReady(ctx, ready); err != nil {
		return nil, err
	}
	return sim, nil
}

func (ch *children) service() (*iothub.ConnectionString, *x509.CertPool) { return ch.cs, ch.roots }

func (ch *children) stats() (emulator.Stats, bool) { return emulator.Stats{}, false }

func (ch *children) watch() *reportWatch { return ch.reports }

func (ch *children) applyQuota(ctx context.Context, tier string, units int) error {
	before := ch.usage()
	if err := ch.emu.stop(); err != nil {
		return err
	}
	ch.usageAt.hubCPU += before.hubCPU
	ch.usageAt.hubRSS = max(ch.usageAt.hubRSS, before.hubRSS)
	if err := ch.startEmulator(ctx, ch.info.httpsAddr, ch.info.mqttAddr, tier, units); err != nil {
		return fmt.Errorf("restart emulator with quotas: %w", err)
	}
	client, err := service.New(service.Config{ConnectionString: ch.cs, RootCAs: ch.roots, MaxConns: 1})
	if err != nil {
		return err
	}
	defer client.Close()
	want := ch.c.devices
	err = waitFor(ctx, 3*time.Minute, 5*time.Second, func() (bool, error) {
		n, err := countConnected(ctx, client)
		if iothub.KindOf(err) == iothub.KindThrottled {
			return false, nil
		}
		return n >= want, err
	})
	if err != nil {
		return fmt.Errorf("wait for the fleet to reconnect: %w", err)
	}
	return nil
}

func (ch *children) usage() childUsage {
	u := ch.usageAt
	if cpu, err := childCPU(ch.emu.pid()); err == nil {
		u.hubCPU += cpu
	}
	if rss, err := peakRSS(ch.emu.pid()); err == nil {
		u.hubRSS = max(u.hubRSS, rss)
	}
	if ch.sim != nil {
		u.devicesCPU, _ = childCPU(ch.sim.pid())
		u.devicesRSS, _ = peakRSS(ch.sim.pid())
	}
	return u
}

func (ch *children) describe() string {
	return "emulator and simulated fleet in two child processes; runner in this process"
}

func (ch *children) close() error {
	var errs []error
	if ch.sim != nil {
		errs = append(errs, ch.sim.stop())
	}
	errs = append(errs, ch.emu.stop())
	return errors.Join(errs...)
}
