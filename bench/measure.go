package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hubflow/hubflow/iothub"
	"github.com/hubflow/hubflow/iothub/service"
)

// limitResult is the bare method path's throughput.
type limitResult struct {
	roundTrips int64 // answered calls counted
	errors     int64 // calls that failed (not answered by the device)
	elapsed    time.Duration
}

func (l limitResult) perSecond() float64 {
	if l.elapsed <= 0 {
		return 0
	}
	return float64(l.roundTrips) / l.elapsed.Seconds()
}

// warmUp has each of workers callers make one ping, so that every
// connection a measurement uses is open (a TLS handshake costs far more
// than a call) before the clock starts.
func warmUp(ctx context.Context, c *service.Client, ids []string, workers int) {
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			_, _ = c.InvokeMethod(ctx, ids[i%len(ids)], service.MethodCall{Name: pingMethod, ResponseTimeout: 5 * time.Second})
		})
	}
	wg.Wait()
}

// measureLimit has workers goroutines invoke the ping method on the
// devices in turn, as fast as answers come back, and counts the answers
// that arrive during d, once every caller's connection is open.
func measureLimit(ctx context.Context, c *service.Client, ids []string, workers int, d time.Duration) (limitResult, error) {
	if len(ids) == 0 || workers < 1 {
		return limitResult{}, errors.New("measure limit: no devices")
	}
	warmUp(ctx, c, ids, workers)
	to := time.Now().Add(d)
	var next, counted, failed atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				if time.Now().After(to) {
					return
				}
				id := ids[int(next.Add(1)-1)%len(ids)]
				_, err := c.InvokeMethod(ctx, id, service.MethodCall{Name: pingMethod, ResponseTimeout: 5 * time.Second})
				if time.Now().After(to) {
					continue
				}
				if err != nil {
					failed.Add(1)
					errOnce.Do(func() { firstErr = err })
					continue
				}
				counted.Add(1)
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return limitResult{}, err
	}
	res := limitResult{roundTrips: counted.Load(), errors: failed.Load(), elapsed: d}
	// A few failures (a device reconnecting) do not make the figure wrong;
	// many mean the path measured is not the one the runner uses.
	if res.errors > 0 && res.errors*100 > res.roundTrips {
		return res, fmt.Errorf("measure limit: %d of %d calls failed: %w", res.errors, res.errors+res.roundTrips, firstErr)
	}
	return res, nil
}

// workflowLimitResult is the pace of the job's workflow with a back end
// that costs nothing: devices carried through every step, and executions
// (steps a device was carried through, those of failed devices included).
type workflowLimitResult struct {
	devices    int
	executions int
	failed     int
	firstErr   error
	elapsed    time.Duration
}

// driverTimeout bounds one device's wait in the workflow limit.
const driverTimeout = time.Minute

// measureWorkflowLimit carries every device through the workflow's methods
// with workers bare callers: each takes the next device, invokes its first
// method, waits for the device to report that step done (told by the
// fleet, without reading the hub), then the next step, then the next
// device. No twin is read and nothing is recorded, so this is what the hub
// and devices sustain at that concurrency when the back end costs nothing.
func measureWorkflowLimit(ctx context.Context, c *service.Client, watch *reportWatch, ids []string, calls []driverCall, workers int) (workflowLimitResult, error) {
	if len(ids) == 0 || workers < 1 {
		return workflowLimitResult{}, errors.New("measure workflow limit: no devices")
	}
	warmUp(ctx, c, ids, workers)
	watch.active.Store(true)
	defer watch.active.Store(false)
	var next, done, steps, failed atomic.Int64
	var firstErr error
	var errOnce sync.Once
	start := time.Now()
	var wg sync.WaitGroup
	for range min(workers, len(ids)) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= len(ids) {
					return
				}
				n, err := driveDevice(ctx, c, watch, ids[i], calls)
				steps.Add(int64(n))
				if err != nil {
					failed.Add(1)
					errOnce.Do(func() { firstErr = err })
					continue
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	res := workflowLimitResult{devices: int(done.Load()), executions: int(steps.Load()), failed: int(failed.Load()), firstErr: firstErr, elapsed: time.Since(start)}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if res.failed*100 > len(ids) {
		return res, fmt.Errorf("measure workflow limit: %d of %d devices failed: %w", res.failed, len(ids), firstErr)
	}
	return res, nil
}

// driveDevice carries one device through calls and returns how many of
// them the device finished.
func driveDevice(ctx context.Context, c *service.Client, watch *reportWatch, id string, calls []driverCall) (int, error) {
	for i, call := range calls {
		reported := watch.expect(id, call.done)
		resp, err := c.InvokeMethod(ctx, id, service.MethodCall{Name: call.method, Payload: call.payload, ResponseTimeout: 30 * time.Second})
		if err == nil && resp.Status != 200 {
			err = fmt.Errorf("device %s answered %s with %d", id, call.method, resp.Status)
		}
		if err != nil {
			watch.forget(id)
			return i, err
		}
		t := time.NewTimer(driverTimeout)
		select {
		case <-reported:
			t.Stop()
		case <-t.C:
			watch.forget(id)
			return i, fmt.Errorf("device %s: %s not done after %s", id, call.method, driverTimeout)
		case <-ctx.Done():
			t.Stop()
			watch.forget(id)
			return i, ctx.Err()
		}
	}
	return len(calls), nil
}

// baselineResult is the tutorial back-end app's pace on a sample.
type baselineResult struct {
	devices    int
	executions int           // devices × steps: every step of every device
	total      time.Duration // all devices, one after the other
}

// baselineTimeout bounds one device's wait in the baseline.
const baselineTimeout = 2 * time.Minute

// measureBaseline does what the tutorials' back-end apps do, for each sample
// device in turn: invoke the method, then read the twin every poll until
// the device reports it is done, then the next step, then the next device.
func measureBaseline(ctx context.Context, hub *service.Client, ids []string, calls []baselineCall, poll time.Duration) (baselineResult, error) {
	start := time.Now()
	for _, id := range ids {
		for _, call := range calls {
			if err := tutorialStep(ctx, hub, id, call, poll); err != nil {
				return baselineResult{}, fmt.Errorf("baseline: device %s: %w", id, err)
			}
		}
	}
	return baselineResult{devices: len(ids), executions: len(ids) * len(calls), total: time.Since(start)}, nil
}

func tutorialStep(ctx context.Context, hub *service.Client, id string, call baselineCall, poll time.Duration) error {
	invoked := time.Now()
	resp, err := hub.InvokeMethod(ctx, id, service.MethodCall{Name: call.method, Payload: call.payload, ResponseTimeout: 30 * time.Second})
	if err != nil {
		return fmt.Errorf("invoke %s: %w", call.method, err)
	}
	if resp.Status != 200 {
		return fmt.Errorf("invoke %s: device answered %d", call.method, resp.Status)
	}
	deadline := invoked.Add(baselineTimeout)
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		twin, err := hub.GetTwin(ctx, id)
		switch {
		case iothub.KindOf(err) == iothub.KindThrottled:
			// The tutorial app has no throttling logic; it reads again at
			// the next tick.
		case err != nil:
			return fmt.Errorf("read twin: %w", err)
		case call.done(twin.Properties.Reported, invoked):
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not done after %s", call.method, baselineTimeout)
		}
	}
}
