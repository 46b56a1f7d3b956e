package reliability_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/hubflow/hubflow/emulator"
	"github.com/hubflow/hubflow/runner"
	"github.com/hubflow/hubflow/state"
)

// TestEmulatorRestart stops the emulator in the middle of a run and starts
// it again on the same data directory and ports a second later, as
// `hubflow emulator -data DIR` restarted would be: the devices reconnect on
// their own, the runner carries on through the gap, and the run ends with
// every device done once, as the two hubs' logs together witness.
func TestEmulatorRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped with -short: restarts the emulator under a run")
	}
	opts := hubOptions{dataDir: t.TempDir(), httpsAddr: freeAddr(t), mqttAddr: freeAddr(t), seed: 7}
	h := startHub(t, fleetHCL(fleetSpec{count: 200, site: "restart", stage: "100ms..300ms"}), opts)
	first := h.hub
	store := openStore(t, filepath.Join(t.TempDir(), "history.db"), state.Options{})
	r := h.runner(t, store)
	job := loadJob(t, jobSpec{name: "restart", site: "restart", concurrency: 40}.hcl())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	type ran struct {
		res *runner.Result
		err error
	}
	done := make(chan ran, 1)
	go func() {
		res, err := r.Run(ctx, runner.Request{Job: job})
		done <- ran{res, err}
	}()
	for first.Stats().MethodsInvoked < 60 {
		time.Sleep(2 * time.Millisecond)
	}
	if err := first.Close(); err != nil {
		t.Fatalf("stop the emulator: %v", err)
	}
	time.Sleep(time.Second)
	second, err := emulator.Start(ctx, emulator.Options{DataDir: opts.dataDir, HTTPSAddr: opts.httpsAddr, MQTTAddr: opts.mqttAddr})
	if err != nil {
		t.Fatalf("restart the emulator: %v", err)
	}
	t.Cleanup(func() { second.Close() })
	t.Logf("emulator restarted after %d calls; %d devices registered", first.Stats().MethodsInvoked, second.Stats().RegisteredDevices)

	out := <-done
	if out.err != nil {
		t.Fatalf("run: %v", out.err)
	}
	res := out.res
	logs := hubLogs{first, second}
	t.Logf("run %s: %+v (%s); hub: %s", res.State, res.Counts, res.Reason, invocationOutcomes(logs))
	if res.State != state.RunSucceeded {
		t.Errorf("got run %s (%s), want succeeded", res.State, res.Reason)
	}
	if n := second.Stats().ConnectedDevices; n != 200 {
		t.Errorf("got %d devices connected to the restarted emulator, want 200", n)
	}
	if err := store.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	rep := compareWithWitness(t, logs, store.Path(), executionsByKey(t, store, res.RunID), h.sim.Devices(), witnessOptions{stepTimeout: 2 * time.Minute})
	t.Logf("witness: %s", rep)
	failOnIssues(t, rep)
}
