package device_test

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hubflow/hubflow/iothub/device"
)

// helperEnv marks the child process BenchmarkIdleClients starts to host the
// broker, so that the benchmark's own memory figures count clients only.
const helperEnv = "HUBFLOW_DEVICE_BENCH_BROKER"

var benchKey = testKey(42)

// TestHelperBroker is not a test: it is the broker process of
// BenchmarkIdleClients. It prints the broker's address and CA, then serves
// until its standard input closes.
func TestHelperBroker(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		t.Skip("broker process for BenchmarkIdleClients")
	}
	b := newTestBroker(t, nil)
	b.hub.anyKey = benchKey
	fmt.Printf("%s %s\n", b.addr, hex.EncodeToString(b.ca))
	_, _ = io.Copy(io.Discard, os.Stdin)
}

// startHelperBroker runs TestHelperBroker in a child process.
func startHelperBroker(b *testing.B) (addr string, pool *x509.CertPool) {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperBroker$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatalf("start broker process: %v", err)
	}
	b.Cleanup(func() {
		stdin.Close()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatalf("read broker address: %v", err)
	}
	addr, caHex, _ := strings.Cut(strings.TrimSpace(line), " ")
	der, err := hex.DecodeString(caHex)
	if err != nil {
		b.Fatalf("broker CA: %v", err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		b.Fatalf("broker CA: %v", err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(ca)
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	return addr, pool
}

// BenchmarkIdleClients connects a fleet of clients to a broker in another
// process and reports what each idle, connected client costs this process:
// heap and stack bytes and goroutines (paho's included). Run it once:
//
//	go test -run '^$' -bench IdleClients -benchtime 1x ./iothub/device
func BenchmarkIdleClients(b *testing.B) {
	for _, n := range []int{500, 2000} {
		b.Run(fmt.Sprintf("clients=%d", n), func(b *testing.B) {
			for range b.N {
				idleClients(b, n)
			}
		})
	}
}

func idleClients(b *testing.B, n int) {
	addr, pool := startHelperBroker(b)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	g0 := runtime.NumGoroutine()
	start := time.Now()
	clients := make([]*device.Client, n)
	for i := range clients {
		id := fmt.Sprintf("sim-%05d", i)
		tb := &testBroker{addr: addr}
		c, err := device.New(device.Config{ConnectionString: tb.connString(b, id, benchKey), RootCAs: pool})
		if err != nil {
			b.Fatal(err)
		}
		c.Handle("reboot", func(context.Context, json.RawMessage) (int, []byte) { return 200, nil })
		c.OnDesired(func(map[string]any, int64) {})
		clients[i] = c
	}
	defer closeAll(clients)
	forEach(clients, 32, func(c *device.Client) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.Connect(ctx); err != nil {
			b.Errorf("Connect: %v", err)
		}
	})
	elapsed := time.Since(start)
	runtime.GC()
	runtime.ReadMemStats(&after)
	g1 := runtime.NumGoroutine()

	b.ReportMetric(float64(n)/elapsed.Seconds(), "connects/s")
	b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(n), "heapB/client")
	b.ReportMetric(float64(int64(after.StackInuse)-int64(before.StackInuse))/float64(n), "stackB/client")
	b.ReportMetric(float64(g1-g0)/float64(n), "goroutines/client")
}

func closeAll(clients []*device.Client) {
	forEach(clients, 32, func(c *device.Client) { _ = c.Close() })
}

// forEach calls f for every client from workers goroutines.
func forEach(clients []*device.Client, workers int, f func(*device.Client)) {
	ch := make(chan *device.Client)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for c := range ch {
				f(c)
			}
		})
	}
	for _, c := range clients {
		ch <- c
	}
	close(ch)
	wg.Wait()
}
