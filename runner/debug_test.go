package runner_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"testing"
	"time"

	"github.com/hubflow/hubflow/runner"
	"github.com/hubflow/hubflow/state"
)

func BenchmarkDebugTwoStep(b *testing.B) {
	n := benchDevices(10000)
	f := startHubProcesses(b, benchFleet(n, "90ms..110ms"), fixtureOptions{seed: 12})
	r := f.newRunner(b, runner.Config{ControlInterval: time.Second})
	last := time.Now()
	start := time.Now()
	res, err := r.Run(context.Background(), runner.Request{Job: loadJob(b, benchTwoStepJob), Progress: func(s runner.Snapshot) {
		if time.Since(last) > time.Second {
			last = time.Now()
			b.Logf("%5.1fs %+v", time.Since(start).Seconds(), s.Counts)
		}
	}})
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("%s in %s", res.State, time.Since(start))
	xs, _ := f.store.Executions(context.Background(), res.RunID)
	durs := map[string][]time.Duration{}
	for _, x := range xs {
		if x.State == state.ExecSucceeded {
			durs[x.Step] = append(durs[x.Step], x.EndedAt.Sub(x.StartedAt))
		}
	}
	for step, d := range durs {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		b.Logf("%s: p10 %s p50 %s p90 %s max %s", step, d[len(d)/10], d[len(d)/2], d[len(d)*9/10], d[len(d)-1])
	}
}

func BenchmarkDebugLatency(b *testing.B) {
	n := benchDevices(10000)
	f := startHubProcesses(b, benchFleet(n, "90ms..110ms"), fixtureOptions{seed: 12})
	r := f.newRunner(b, runner.Config{ControlInterval: time.Second})
	ps := func() string {
		out, _ := exec.Command("sh", "-c", "ps -eo pid,cputime,rss,args | grep runner.test | grep -v grep").Output()
		return string(out)
	}
	b.Log("before\n" + ps())
	defer func() { b.Log("after\n" + ps()) }()
	start := time.Now()
	res, err := r.Run(context.Background(), runner.Request{Job: loadJob(b, benchTwoStepJob, "concurrency="+os.Getenv("CONC"))})
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("%s in %s reads %d queries %d", res.State, time.Since(start), res.TwinReads, res.Queries)
	// sample devices
	var inv, firstProg, lastProg, succ []time.Duration
	for i := 1; i <= n; i += n / 200 {
		id := fmt.Sprintf("bench-%05d", i)
		tl, err := f.store.DeviceTimeline(context.Background(), id, 0)
		if err != nil {
			b.Fatal(err)
		}
		for _, e := range tl {
			if e.Execution.Step != "update" {
				continue
			}
			var tInv, tIP, tFirst, tLast, tSucc time.Time
			for _, ev := range e.Events {
				switch {
				case ev.Kind == state.KindState && ev.State == state.ExecInvoking:
					tInv = ev.ObservedAt
				case ev.Kind == state.KindState && ev.State == state.ExecInProgress:
					tIP = ev.ObservedAt
				case ev.Kind == state.KindProgress:
					if tFirst.IsZero() {
						tFirst = ev.ObservedAt
					}
					tLast = ev.ObservedAt
				case ev.Kind == state.KindState && ev.State == state.ExecSucceeded:
					tSucc = ev.ObservedAt
				}
			}
			inv = append(inv, tIP.Sub(tInv))
			firstProg = append(firstProg, tFirst.Sub(tIP))
			lastProg = append(lastProg, tLast.Sub(tFirst))
			succ = append(succ, tSucc.Sub(tInv))
		}
	}
	for name, d := range map[string][]time.Duration{"invoke": inv, "first progress": firstProg, "first->last progress": lastProg, "total": succ} {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		b.Logf("%s: p10 %s p50 %s p90 %s", name, d[len(d)/10], d[len(d)/2], d[len(d)*9/10])
	}
}
