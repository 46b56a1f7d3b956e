package service_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/hubflow/hubflow/iothub"
	"github.com/hubflow/hubflow/iothub/service"
)

const benchInFlight = 256

var benchAnswer = []byte(`{"status":200,"payload":{"accepted":true}}`)

// BenchmarkInvokeMethod drives one client with 256 invocations in flight
// over 256 pooled connections to an in-process TLS server that answers at
// once. Its allocs/op include the server's, as both share the process; the
// client-only benchmark below gives the client's own.
func BenchmarkInvokeMethod(b *testing.B) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Write(benchAnswer)
	}))
	// Handshakes cut short when the server closes are expected noise.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	b.Cleanup(srv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	c, err := service.New(service.Config{
		ConnectionString: &iothub.ConnectionString{HostName: srv.Listener.Addr().String(), SharedAccessKeyName: testPolicy, SharedAccessKey: testKey},
		RootCAs:          roots,
		MaxConns:         benchInFlight,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	runInvokeBench(b, c)
}

// BenchmarkInvokeMethodClientOnly measures the client alone: the transport
// answers from memory, so allocs/op are the client's per invocation (plus
// the few of the stub transport).
func BenchmarkInvokeMethodClientOnly(b *testing.B) {
	c, err := service.New(service.Config{
		ConnectionString: &iothub.ConnectionString{HostName: "hub.example", SharedAccessKeyName: testPolicy, SharedAccessKey: testKey},
		HTTPClient:       &http.Client{Transport: memTransport{}},
	})
	if err != nil {
		b.Fatal(err)
	}
	runInvokeBench(b, c)
}

type memTransport struct{}

func (memTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	return &http.Response{
		StatusCode: 200, ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"application/json; charset=utf-8"}},
		Body:          io.NopCloser(bytes.NewReader(benchAnswer)),
		ContentLength: int64(len(benchAnswer)),
		Request:       r,
	}, nil
}

func runInvokeBench(b *testing.B, c *service.Client) {
	call := service.MethodCall{Name: "firmwareUpdate", Payload: json.RawMessage(`{"version":"2.1.0","url":"https://example.com/fw.bin"}`), ResponseTimeout: 30 * time.Second}
	ctx := context.Background()
	// Open the whole pool first so that connection setup is not measured.
	var wg sync.WaitGroup
	for range benchInFlight {
		wg.Go(func() {
			if _, err := c.InvokeMethod(ctx, "dev-0", call); err != nil {
				b.Error(err)
			}
		})
	}
	wg.Wait()
	procs := runtime.GOMAXPROCS(0)
	b.SetParallelism((benchInFlight + procs - 1) / procs)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			res, err := c.InvokeMethod(ctx, "dev-42", call)
			if err != nil {
				b.Error(err)
				return
			}
			if res.Status != 200 {
				b.Errorf("status: got %d, want 200", res.Status)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "invokes/s")
}
