package bench

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/hubflow/hubflow/iothub"
	"github.com/hubflow/hubflow/runner"
)

// countingHub counts the calls the runner makes and the throttled answers it
// gets, whichever process the hub runs in.
type countingHub struct {
	hub runner.Hub

	methods, answered, reads, patches, pages atomic.Int64
	throttled                                atomic.Int64
	// Time spent waiting for answers, by kind, in nanoseconds.
	methodTime, readTime, pageTime atomic.Int64
}

var _ runner.Hub = (*countingHub)(nil)

func (h *countingHub) note(err error) {
	if iothub.KindOf(err) == iothub.KindThrottled {
		h.throttled.Add(1)
	}
}

func (h *countingHub) InvokeMethod(ctx context.Context, id string, call runner.MethodCall) (*iothub.MethodResponse, error) {
	h.methods.Add(1)
	defer since(&h.methodTime, time.Now())
	resp, err := h.hub.InvokeMethod(ctx, id, call)
	if err == nil {
		h.answered.Add(1)
	}
	h.note(err)
	return resp, err
}

func (h *countingHub) PatchDesired(ctx context.Context, id string, desired map[string]any) error {
	h.patches.Add(1)
	err := h.hub.PatchDesired(ctx, id, desired)
	h.note(err)
	return err
}

func (h *countingHub) GetTwin(ctx context.Context, id string) (*iothub.Twin, error) {
	h.reads.Add(1)
	defer since(&h.readTime, time.Now())
	t, err := h.hub.GetTwin(ctx, id)
	h.note(err)
	return t, err
}

func (h *countingHub) QueryTwins(ctx context.Context, query string) runner.TwinPages {
	return countingPages{h.hub.QueryTwins(ctx, query), h}
}

type countingPages struct {
	p runner.TwinPages
	h *countingHub
}

func (p countingPages) More() bool { return p.p.More() }

func (p countingPages) Next(ctx context.Context) ([]*iothub.Twin, error) {
	p.h.pages.Add(1)
	defer since(&p.h.pageTime, time.Now())
	twins, err := p.p.Next(ctx)
	p.h.note(err)
	return twins, err
}

// calls is every call the runner made.
func (h *countingHub) calls() int64 {
	return h.methods.Load() + h.reads.Load() + h.patches.Load() + h.pages.Load()
}

func since(total *atomic.Int64, start time.Time) { total.Add(int64(time.Since(start))) }

// meanMS is the mean of total over n calls, in milliseconds.
func meanMS(total *atomic.Int64, n *atomic.Int64) float64 {
	if n.Load() == 0 {
		return 0
	}
	return float64(total.Load()) / float64(n.Load()) / float64(time.Millisecond)
}
