package emulator

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hubflow/hubflow/iothub"
)

var (
	benchDevices  = flag.Int("emulator.devices", 1000, "devices BenchmarkConnectedDevices connects (10000 works; it uses a child process)")
	benchInFlight = flag.Int("emulator.inflight", 256, "concurrent calls in BenchmarkMethodRoundTrip")
)

// startBenchHub starts a hub with real timers and a clock fixed at now, so
// that tokens stay valid however long the benchmark runs.
func startBenchHub(b *testing.B) *testHub {
	b.Helper()
	clock := newFakeClock()
	clock.t = time.Now()
	h, err := Start(context.Background(), Options{Now: clock.Now})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { h.Close() })
	return &testHub{Hub: h, clock: clock, timers: newFakeTimers()}
}

// BenchmarkMethodRoundTrip measures direct-method calls through the whole
// path: HTTPS POST /twins/{id}/methods → MQTT to a paho device in the same
// process → device answer → HTTP answer, with -emulator.inflight calls in
// flight over as many keep-alive connections.
func BenchmarkMethodRoundTrip(b *testing.B) {
	const devices = 64
	h := startBenchHub(b)
	ids := make([]string, devices)
	for i := range ids {
		ids[i] = fmt.Sprintf("bench-%02d", i)
		h.mustCreate(b, ids[i])
		d := h.connect(b, ids[i])
		d.handleMethods(func(string, []byte) (int, []byte) { return 200, []byte(`{"ok":true}`) })
		d.subscribe(iothub.TopicMethodsFilter)
	}
	c := h.rest(b, PolicyService)
	inflight := *benchInFlight
	c.http.Transport.(*http.Transport).MaxConnsPerHost = inflight
	c.http.Transport.(*http.Transport).MaxIdleConnsPerHost = inflight
	token := c.token()
	body := []byte(`{"methodName":"reboot","payload":{"delay":0},"responseTimeoutInSeconds":30}`)
	base := "https://" + h.HTTPSAddr() + "/twins/"

	// Warm up: open every keep-alive connection (TLS handshakes) first.
	var warm sync.WaitGroup
	for i := range inflight {
		warm.Add(1)
		go func() {
			defer warm.Done()
			req, _ := http.NewRequest("POST", base+ids[i%devices]+"/methods", bytes.NewReader(body))
			req.Header.Set("Authorization", token)
			if res, err := c.http.Do(req); err == nil {
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
		}()
	}
	warm.Wait()

	var next atomic.Int64
	lat := make([][]time.Duration, inflight)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := range inflight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				req, _ := http.NewRequest("POST", base+ids[i%devices]+"/methods?api-version=2021-04-12", bytes.NewReader(body))
				req.Header.Set("Authorization", token)
				req.Header.Set("Content-Type", "application/json; charset=utf-8")
				t0 := time.Now()
				res, err := c.http.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				out, _ := io.ReadAll(res.Body)
				res.Body.Close()
				lat[w] = append(lat[w], time.Since(t0))
				if res.StatusCode != 200 || string(out) != `{"status":200,"payload":{"ok":true}}` {
					b.Errorf("got %d %s", res.StatusCode, out)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	all := slices.Concat(lat...)
	slices.Sort(all)
	if len(all) > 0 {
		b.ReportMetric(float64(len(all))/elapsed.Seconds(), "calls/s")
		b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
	}
}

// fleetEnv names the file a child process reads to connect a fleet for
// BenchmarkConnectedDevices.
const fleetEnv = "HUBFLOW_EMULATOR_BENCH_FLEET"

// BenchmarkConnectedDevices measures the hub's memory per connected device
// (TLS, MQTT session with three subscriptions, registry and twin). The
// devices are raw MQTT clients in a child process, so the figures are the
// hub's alone.
func BenchmarkConnectedDevices(b *testing.B) {
	n := *benchDevices
	h := startBenchHub(b)
	var list strings.Builder
	fmt.Fprintln(&list, h.MQTTAddr(), h.CAFile(), h.HostName())
	for i := range n {
		id := fmt.Sprintf("mem-%05d", i)
		h.mustCreate(b, id)
		fmt.Fprintln(&list, id, h.deviceToken(b, id, 24*time.Hour))
	}
	file := b.TempDir() + "/fleet.txt"
	if err := os.WriteFile(file, []byte(list.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	before := memSnapshot()

	cmd := exec.Command(os.Args[0], "-test.run=^TestBenchFleetChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), fleetEnv+"="+file)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		stdin.Close()
		_ = cmd.Wait()
	}()
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "ready") {
				ready <- nil
				io.Copy(io.Discard, stdout)
				return
			}
		}
		ready <- errors.New("fleet child exited before connecting")
	}()
	select {
	case err := <-ready:
		if err != nil {
			b.Fatal(err)
		}
	case <-time.After(5 * time.Minute):
		b.Fatal("fleet child did not connect in 5 minutes")
	}
	took := time.Since(start)
	if got := h.Stats().ConnectedDevices; got != int64(n) {
		b.Fatalf("got %d connected devices, want %d", got, n)
	}
	after := memSnapshot()
	b.ReportMetric(float64(after.heap-before.heap)/float64(n), "heap-B/device")
	b.ReportMetric(float64(after.stack-before.stack)/float64(n), "stack-B/device")
	b.ReportMetric(float64(after.rss-before.rss)/float64(n), "rss-B/device")
	b.ReportMetric(float64(after.goroutines-before.goroutines)/float64(n), "goroutines/device")
	b.ReportMetric(float64(n)/took.Seconds(), "connects/s")
}

type memStats struct{ heap, stack, rss, goroutines int64 }

func memSnapshot() memStats {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	s := memStats{heap: int64(m.HeapInuse), stack: int64(m.StackInuse), goroutines: int64(runtime.NumGoroutine())}
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				s.rss = kb * 1024
			}
		}
	}
	return s
}

// TestBenchFleetChild is BenchmarkConnectedDevices's child process; it does
// nothing in a normal test run.
func TestBenchFleetChild(t *testing.T) {
	file := os.Getenv(fleetEnv)
	if file == "" {
		t.Skip("runs only as BenchmarkConnectedDevices' child process")
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	hdr := strings.Fields(lines[0])
	addr, caFile, host := hdr[0], hdr[1], hdr[2]
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{ServerName: "localhost", RootCAs: poolFromPEM(t, pem), CurvePreferences: []tls.CurveID{tls.X25519}}
	work := make(chan [2]string)
	var conns sync.Map
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for job := range work {
				c, err := rawDeviceConnect(addr, cfg, host, job[0], job[1])
				if err != nil {
					if failed.Add(1) == 1 {
						fmt.Fprintln(os.Stderr, "connect", job[0], err)
					}
					continue
				}
				conns.Store(job[0], c)
			}
		}()
	}
	for _, l := range lines[1:] {
		id, tok, _ := strings.Cut(l, " ")
		work <- [2]string{id, tok}
	}
	close(work)
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d devices failed to connect", failed.Load())
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	conns.Range(func(_, v any) bool { v.(net.Conn).Close(); return true })
}

// rawDeviceConnect is a minimal MQTT 3.1.1 device: CONNECT (CleanSession 0,
// keep-alive 0, which the hub caps) and the three SUBSCRIBEs an SDK sends,
// then silence.
func rawDeviceConnect(addr string, cfg *tls.Config, host, id, token string) (net.Conn, error) {
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	str := func(s string) []byte {
		b := binary.BigEndian.AppendUint16(nil, uint16(len(s)))
		return append(b, s...)
	}
	var vh []byte
	vh = append(vh, str("MQTT")...)
	vh = append(vh, 4, 0xC0, 0, 0)
	vh = append(vh, str(id)...)
	vh = append(vh, str(host+"/"+id+"/?api-version=2021-04-12")...)
	vh = append(vh, str(token)...)
	if _, err := c.Write(packet(0x10, vh)); err != nil {
		c.Close()
		return nil, err
	}
	ack := make([]byte, 4)
	if _, err := io.ReadFull(c, ack); err != nil || ack[0] != 0x20 || ack[3] != 0 {
		c.Close()
		return nil, fmt.Errorf("CONNACK %x: %v", ack, err)
	}
	for i, f := range []string{iothub.TopicMethodsFilter, iothub.TopicTwinResponseFilter, iothub.TopicDesiredFilter} {
		sub := binary.BigEndian.AppendUint16(nil, uint16(i+1))
		sub = append(sub, str(f)...)
		sub = append(sub, 0)
		if _, err := c.Write(packet(0x82, sub)); err != nil {
			c.Close()
			return nil, err
		}
		suback := make([]byte, 5)
		if _, err := io.ReadFull(c, suback); err != nil || suback[0] != 0x90 || suback[4] != 0 {
			c.Close()
			return nil, fmt.Errorf("SUBACK %x: %v", suback, err)
		}
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

func packet(first byte, body []byte) []byte {
	out := []byte{first}
	n := len(body)
	for {
		b := byte(n % 128)
		n /= 128
		if n > 0 {
			b |= 0x80
		}
		out = append(out, b)
		if n == 0 {
			break
		}
	}
	return append(out, body...)
}

func poolFromPEM(t testing.TB, pem []byte) *x509.CertPool {
	t.Helper()
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(pem) {
		t.Fatal("CA file holds no certificate")
	}
	return p
}

// BenchmarkQueryTwins runs a WHERE on a tag and a reported property over
// 100,000 twins, as POST /devices/query does before paging. "activity"
// first invalidates every twin's connection fields (as if every device had
// just sent a message) and "cold" every twin's whole document (as if every
// device had just reported).
func BenchmarkQueryTwins(b *testing.B) {
	const n = 100_000
	h := startBenchHub(b)
	now := h.clock.Now()
	for i := range n {
		id := fmt.Sprintf("q-%06d", i)
		h.mustCreate(b, id)
		d := h.reg.get(id)
		site := []string{"north", "south", "east", "west"}[i%4]
		status := []string{"completed", "downloading", "failed"}[i%3]
		d.mu.Lock()
		if _, err := d.twin.patchService(map[string]any{"site": site, "ring": float64(i % 10)}, map[string]any{"fw": map[string]any{"version": "2.1"}}, false, now); err != nil {
			b.Fatal(err)
		}
		if _, err := d.twin.patchReported(map[string]any{"firmwareStatus": status, "fw": map[string]any{"version": "2.0"}}, now); err != nil {
			b.Fatal(err)
		}
		d.invalidate(true)
		d.mu.Unlock()
	}
	text := "SELECT deviceId FROM devices WHERE tags.site = 'north' AND properties.reported.firmwareStatus = 'completed'"
	for _, mode := range []string{"cached", "activity", "cold"} {
		b.Run(mode, func(b *testing.B) {
			rows, _, err := h.runQuery(text)
			if err != nil || len(rows) != n/12+1 {
				b.Fatalf("got %d rows (%v), want %d", len(rows), err, n/12+1)
			}
			for b.Loop() {
				if mode != "cached" {
					b.StopTimer()
					for _, d := range h.reg.ordered() {
						d.mu.Lock()
						d.invalidate(mode == "cold")
						d.mu.Unlock()
					}
					b.StartTimer()
				}
				if _, _, err := h.runQuery(text); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
