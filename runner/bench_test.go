package runner_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hubflow/hubflow/runner"
	"github.com/hubflow/hubflow/state"
)

// benchDevices returns the fleet size of a benchmark: n, or
// HUBFLOW_BENCH_DEVICES when set.
func benchDevices(n int) int {
	if v, err := strconv.Atoi(os.Getenv("HUBFLOW_BENCH_DEVICES")); err == nil && v > 0 {
		return v
	}
	return n
}

func benchFleet(n int, stage string) string {
	return fmt.Sprintf(`
defaults {
  reported = { fwVersion = "2.0.0" }
  reboot { duration = %[2]q }
  firmware {
    downloading = %[2]q
    applying    = %[2]q
  }
}
group "bench" {
  count = %[1]d
  id    = "bench-%%05d"
  tags  = { site = "bench" }
}
`, n, stage)
}

const benchTwoStepJob = `
variable "concurrency" {
  type    = number
  default = 2000
}
job "two-step" {
  target { query = "tags.site = 'bench'" }
  rollout { concurrency = var.concurrency }
  step "update" {
    method           = "firmwareUpdate"
    payload          = { fwPackageUri = "https://firmware.example.com/edge-2.1.0.bin" }
    response_timeout = "30s"
    progress = reported.firmwareStatus
    success  = reported.firmwareStatus == "completed"
    failure  = reported.firmwareStatus == "failed"
    timeout  = "5m"
    retry { backoff = "1s" }
  }
  step "reboot" {
    method  = "rebootDevice"
    success = try(timecmp(reported.rebootTime, step.started_at) > 0, false)
    timeout = "5m"
    retry { backoff = "1s" }
  }
}
`

// processCPU returns the CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rssMB reads the process's resident set size (Linux), or 0.
func rssMB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// peakRSS samples the RSS until stop is closed and returns the peak.
func peakRSS(stop <-chan struct{}) <-chan float64 {
	out := make(chan float64, 1)
	go func() {
		peak := rssMB()
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				out <- peak
				return
			case <-t.C:
				peak = max(peak, rssMB())
			}
		}
	}()
	return out
}

// BenchmarkRun_TwoStep runs the firmware-then-reboot workflow over 10,000
// simulated devices (HUBFLOW_BENCH_DEVICES overrides) with stages of about
// 100 ms, against the emulator and the fleet running in two child
// processes on the same machine. It reports device executions (one device
// through one step) per second, devices through the whole workflow per
// second, twin reads and queries per device, the CPU time per execution
// of the runner and of the emulator and fleet together, and the RSS of the
// runner's process before the run and at its peak.
func BenchmarkRun_TwoStep(b *testing.B) {
	n := benchDevices(10000)
	f := startHubProcesses(b, benchFleet(n, "90ms..110ms"), fixtureOptions{seed: 12})
	runtime.GC()
	base := rssMB()
	for b.Loop() {
		r := f.newRunner(b, runner.Config{ControlInterval: time.Second})
		stop := make(chan struct{})
		peak := peakRSS(stop)
		hubCPU := f.emu.cpu() + f.fleet.cpu()
		ownCPU := processCPU()
		start := time.Now()
		res, err := r.Run(context.Background(), runner.Request{Job: loadJob(b, benchTwoStepJob)})
		elapsed := time.Since(start)
		hubCPU = f.emu.cpu() + f.fleet.cpu() - hubCPU
		ownCPU = processCPU() - ownCPU
		close(stop)
		if err != nil {
			b.Fatal(err)
		}
		if res.State != state.RunSucceeded || res.Counts.Succeeded != n {
			b.Fatalf("got %s %+v (%s), want all %d succeeded", res.State, res.Counts, res.Reason, n)
		}
		b.ReportMetric(float64(2*n)/elapsed.Seconds(), "executions/s")
		b.ReportMetric(float64(n)/elapsed.Seconds(), "devices/s")
		b.ReportMetric(float64(res.TwinReads)/float64(n), "reads/device")
		b.ReportMetric(float64(res.Queries)/float64(n), "queries/device")
		b.ReportMetric(float64(ownCPU.Microseconds())/float64(2*n), "runner-CPU-µs/execution")
		b.ReportMetric(float64(hubCPU.Microseconds())/float64(2*n), "hub+fleet-CPU-µs/execution")
		b.ReportMetric(base, "MB-RSS-before")
		b.ReportMetric(<-peak, "MB-RSS-peak")
	}
}

// BenchmarkRun_S1Quota runs a firmware job over 2,000 devices
// (HUBFLOW_BENCH_DEVICES overrides) with the emulator enforcing S1 quotas
// (one unit) and the runner keeping to an S1 budget, the emulator and the
// fleet in child processes. It reports the share of the hub's method rate
// the deliveries reached (between the first and the last), the share of
// method calls answered 429, the 429s the runner got and every 429 the hub
// sent (the devices' included),
// and the median and p99 delay between the hub receiving a device's
// "completed" report and the runner recording the step's success.
func BenchmarkRun_S1Quota(b *testing.B) {
	n := benchDevices(2000)
	f := startHubProcesses(b, benchFleet(n, "100ms..200ms"), fixtureOptions{seed: 13, tier: "S1", units: 1})
	// Without a rate the runner invokes at its method budget and the
	// devices' four reported patches per update go over the hub's 50 twin
	// updates per second; with one, as an operator would set on S1, the
	// devices stay within it (4 × 11/s < 50/s).
	for _, bc := range []struct{ name, rate string }{{"no-rate", ""}, {"rate-11", `rate = "11/s"`}} {
		b.Run(bc.name, func(b *testing.B) {
			benchS1(b, f, bc.rate)
		})
	}
}

func benchS1(b *testing.B, f *hubProcesses, rate string) {
	job := loadJob(b, `
job "fw" {
  target { query = "tags.site = 'bench'" }
  rollout {
    concurrency = 2000
    `+rate+`
  }
  step "update" {
    method           = "firmwareUpdate"
    payload          = { fwPackageUri = "https://firmware.example.com/edge-2.1.0.bin" }
    response_timeout = "30s"
    progress = reported.firmwareStatus
    success  = reported.firmwareStatus == "completed"
    failure  = reported.firmwareStatus == "failed"
    timeout  = "5m"
    retry { backoff = "1s" }
  }
}`)
	for b.Loop() {
		budget, err := runner.NewBudget("S1", 1)
		if err != nil {
			b.Fatal(err)
		}
		r := f.newRunner(b, runner.Config{Budget: budget, ControlInterval: time.Second})
		before := f.emu.report(b)
		start := time.Now()
		res, err := r.Run(context.Background(), runner.Request{Job: job})
		if err != nil {
			b.Fatal(err)
		}
		if res.Counts.Failed > 0 {
			b.Fatalf("got %s %+v (%s), want no device failed", res.State, res.Counts, res.Reason)
		}
		b.ReportMetric(float64(res.Counts.TimedOut), "devices-timed-out")
		after := f.emu.report(b)
		calls := after.Delivered - before.Delivered
		throttled := budget.Stats().Throttled[runner.OpMethod]
		// The emulator's log spans every run of the fixture: this run's
		// deliveries began when it started.
		first := after.FirstSent
		if first.Before(start) {
			first = start
		}
		rate := float64(calls-1) / after.LastSent.Sub(first).Seconds()
		b.ReportMetric(100*rate/40, "%-of-method-quota")
		// Four reported patches per update against 50 twin updates/s.
		b.ReportMetric(100*rate/min(40, 50.0/4), "%-of-allowed-rate")
		b.ReportMetric(100*float64(throttled)/float64(calls+int(throttled)), "%-methods-throttled")
		b.ReportMetric(float64(after.Stats.Throttled-before.Stats.Throttled), "429s-hub-total")
		var own int64
		for _, n := range budget.Stats().Throttled {
			own += n
		}
		b.ReportMetric(float64(own), "429s-to-runner")
		p50, p99 := recordDelays(b, f.fixture, res.RunID, after.Completed)
		b.ReportMetric(p50.Seconds()*1000, "ms-p50-record-delay")
		b.ReportMetric(p99.Seconds()*1000, "ms-p99-record-delay")
	}
}

// recordDelays returns the median and p99 delay between the hub receiving
// each device's "completed" report and the runner recording the success.
func recordDelays(b *testing.B, f *fixture, runID string, completed map[string]time.Time) (p50, p99 time.Duration) {
	b.Helper()
	var delays []time.Duration
	for _, x := range executions(b, f.store, runID) {
		if final, ok := completed[x.DeviceID]; ok && x.State == state.ExecSucceeded {
			delays = append(delays, x.EndedAt.Sub(final))
		}
	}
	if len(delays) == 0 {
		return 0, 0
	}
	sort.Slice(delays, func(i, j int) bool { return delays[i] < delays[j] })
	return delays[len(delays)/2], delays[len(delays)*99/100]
}
