package simulator_test

import (
	"context"
	"crypto/x509"
	"flag"
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/hubflow/hubflow/iothub"
	"github.com/hubflow/hubflow/simulator"
)

// Benchmark flags, given after -args:
//
//	go test -run '^$' -bench Start -benchtime 1x ./simulator -args -devices 10000
//
// -hub, -ca and -gateway point the benchmark at a hub in another process
// (an emulator started with `hubflow emulator`), which leaves the whole
// file-descriptor budget of the benchmark process to the devices.
var (
	benchDevices     = flag.Int("devices", 1000, "devices BenchmarkStart registers and connects")
	benchConcurrency = flag.Int("concurrency", 64, "Config.ConnectConcurrency of BenchmarkStart")
	benchHub         = flag.String("hub", "", "service connection string of a hub to use instead of an in-process emulator")
	benchCA          = flag.String("ca", "", "CA file (PEM) to trust for -hub")
	benchGateway     = flag.String("gateway", "", "MQTT host:port the devices dial for -hub")
)

// BenchmarkStart registers and connects -devices simulated devices (each
// reports its initial state) and reports the rates of both phases, the heap
// and goroutines each connected device holds, and the cost of closing them.
// With the in-process emulator the per-device figures include the hub's
// side of every connection.
func BenchmarkStart(b *testing.B) {
	n := *benchDevices
	var cfg simulator.Config
	if *benchHub == "" {
		cfg = simConfig(b, startHub(b))
	} else {
		cs, err := iothub.ParseConnectionString(*benchHub)
		if err != nil {
			b.Fatal(err)
		}
		cfg = simulator.Config{Hub: cs, GatewayHostName: *benchGateway, Seed: 1}
		if *benchCA != "" {
			pem, err := os.ReadFile(*benchCA)
			if err != nil {
				b.Fatal(err)
			}
			cfg.RootCAs = x509Pool(b, pem)
		}
	}
	cfg.ConnectConcurrency = *benchConcurrency
	fleet := mustLoad(b, fmt.Sprintf(`
group "bench" {
  count = %d
  id    = "bench-%%05d"
  tags = {
    site     = one_of(["plant-7", "newark", "osaka"])
    timezone = weighted({ "Europe/Berlin" = 2, "America/New_York" = 1, "Asia/Tokyo" = 1 })
  }
  reported = { fwVersion = "2.0.0" }
}
`, n))

	var reg, conn, closing time.Duration
	var heap, goroutines float64
	runs := 0
	for b.Loop() {
		runtime.GC()
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		g0 := runtime.NumGoroutine()

		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		sim, err := simulator.Start(ctx, fleet, cfg)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		st := sim.Stats()
		if st.Connected != n {
			b.Fatalf("got %d devices connected, want %d", st.Connected, n)
		}
		runtime.GC()
		runtime.ReadMemStats(&m1)
		heap += float64(m1.HeapInuse) - float64(m0.HeapInuse)
		goroutines += float64(runtime.NumGoroutine() - g0)
		reg += st.RegisterTime
		conn += st.ConnectTime

		began := time.Now()
		if err := sim.Close(); err != nil {
			b.Fatal(err)
		}
		closing += time.Since(began)
		runs++
	}
	total := float64(n * runs)
	b.ReportMetric(total/reg.Seconds(), "registrations/s")
	b.ReportMetric(total/conn.Seconds(), "connects/s")
	b.ReportMetric(total/closing.Seconds(), "closes/s")
	b.ReportMetric(heap/total, "heap-B/device")
	b.ReportMetric(goroutines/total, "goroutines/device")
}

func x509Pool(tb testing.TB, pem []byte) *x509.CertPool {
	tb.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		tb.Fatal("no PEM certificate in the CA file")
	}
	return pool
}
