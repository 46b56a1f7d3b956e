package state_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/hubflow/hubflow/state"
)

var big bigDB

func TestMain(m *testing.M) {
	code := m.Run()
	big.cleanup()
	os.Exit(code)
}

// lifecycle is the event sequence of one successful method step.
func lifecycle(runID, device string, t0 time.Time) []state.Event {
	status := 200
	return []state.Event{
		{RunID: runID, DeviceID: device, Step: "update", Kind: state.KindState, State: state.ExecInvoking, Attempt: 1, ObservedAt: t0},
		{RunID: runID, DeviceID: device, Step: "update", Kind: state.KindState, State: state.ExecInProgress, MethodStatus: &status,
			Response: json.RawMessage(`{"accepted":true}`), ObservedAt: t0.Add(time.Second)},
		{RunID: runID, DeviceID: device, Step: "update", Kind: state.KindProgress, Progress: json.RawMessage(`"downloading"`), ObservedAt: t0.Add(30 * time.Second)},
		{RunID: runID, DeviceID: device, Step: "update", Kind: state.KindProgress, Progress: json.RawMessage(`"applying"`), ObservedAt: t0.Add(90 * time.Second)},
		{RunID: runID, DeviceID: device, Step: "update", Kind: state.KindState, State: state.ExecSucceeded, ObservedAt: t0.Add(120 * time.Second)},
	}
}

// BenchmarkStore_Append measures events per second through the writer:
// asynchronous appends of device lifecycles interleaved in blocks of 10,000
// devices, so that each event is for a different device than the one
// before, as when many devices are in flight. It also reports the size of
// the resulting file per execution.
func BenchmarkStore_Append(b *testing.B) {
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "h.db")
	s, err := state.Open(ctx, path, state.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const block = 10_000
	if err := s.CreateRun(ctx, state.NewRun{ID: "bench", Job: "bench", Trigger: state.TriggerManual, Steps: []string{"update"}}); err != nil {
		b.Fatal(err)
	}
	t0 := time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC)
	events := func(blk int) []state.Event {
		seqs := make([][]state.Event, block)
		for d := range seqs {
			seqs[d] = lifecycle("bench", fmt.Sprintf("device-%07d", blk*block+d), t0)
		}
		evs := make([]state.Event, 0, 5*block)
		for i := range 5 {
			for d := range seqs {
				evs = append(evs, seqs[d][i])
			}
		}
		return evs
	}
	blocks := [][]state.Event{events(0)}
	for len(blocks)*5*block < b.N {
		blocks = append(blocks, events(len(blocks)))
	}
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	for i := 0; i < b.N; i++ {
		if err := s.Append(ctx, blocks[i/(5*block)][i%(5*block)]); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
	// On a shared machine the wall clock also counts time spent waiting
	// for a CPU; the process's CPU time per event does not.
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/event")
	b.StopTimer()
	if b.N >= 5*block {
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(fi.Size())/float64(b.N/5), "bytes/execution")
	}
}

// cpuTime is the CPU time (user and system) the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func openBig(b *testing.B) *state.Store {
	b.Helper()
	path := big.get(b)
	s, err := state.OpenReadOnly(context.Background(), path, state.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// BenchmarkStore_ListRuns_Large is `hubflow history` on the large database.
func BenchmarkStore_ListRuns_Large(b *testing.B) {
	s := openBig(b)
	ctx := context.Background()
	for _, bc := range []struct {
		name string
		f    state.RunFilter
	}{
		{"newest 50", state.RunFilter{Limit: 50}},
		{"job and since", state.RunFilter{Job: "firmware", Since: time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC), Limit: 50}},
		{"device", state.RunFilter{Device: "device-004242", Limit: 50}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				runs, err := s.ListRuns(ctx, bc.f)
				if err != nil || len(runs) == 0 {
					b.Fatalf("ListRuns: %d runs, %v", len(runs), err)
				}
			}
		})
	}
}

// BenchmarkStore_ShowFailed_Large is `hubflow show RUN --state failed` on the
// widest run of the large database: the summary, then 5,000 failed devices
// out of 100,000.
func BenchmarkStore_ShowFailed_Large(b *testing.B) {
	s := openBig(b)
	ctx := context.Background()
	b.Run("RunSummary", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.RunSummary(ctx, wideRunID); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("RunDevices failed", func(b *testing.B) {
		for b.Loop() {
			ds, err := s.RunDevices(ctx, wideRunID, state.DeviceFilter{State: state.ExecFailed})
			if err != nil || len(ds) != wideRunDevices/20 {
				b.Fatalf("RunDevices: %d devices, %v", len(ds), err)
			}
		}
	})
}

// BenchmarkStore_BytesPerExecution reports the size on disk of the large
// database per device execution (with its share of events and devices).
func BenchmarkStore_BytesPerExecution(b *testing.B) {
	path := big.get(b)
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	const execs = (bigRuns*bigRunDevices + wideRunDevices) * 2
	for b.Loop() {
	}
	b.ReportMetric(float64(fi.Size())/execs, "bytes/execution")
	b.ReportMetric(float64(fi.Size())/(1<<20), "MiB")
}
