package runner

import (
	"context"
	"errors"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hubflow/hubflow/iothub"
	"github.com/hubflow/hubflow/jobs"
	"github.com/hubflow/hubflow/state"
)

// fakeHub is a Hub made of functions, for the state machine's unit tests.
type fakeHub struct {
	invoke func(ctx context.Context, id string, call MethodCall) (*iothub.MethodResponse, error)
	patch  func(ctx context.Context, id string, desired map[string]any) error
	twin   func(ctx context.Context, id string) (*iothub.Twin, error)
	query  func(ctx context.Context, query string) ([]*iothub.Twin, error)
}

var _ Hub = (*fakeHub)(nil)

func (h *fakeHub) InvokeMethod(ctx context.Context, id string, call MethodCall) (*iothub.MethodResponse, error) {
	return h.invoke(ctx, id, call)
}

func (h *fakeHub) PatchDesired(ctx context.Context, id string, desired map[string]any) error {
	return h.patch(ctx, id, desired)
}

func (h *fakeHub) GetTwin(ctx context.Context, id string) (*iothub.Twin, error) {
	return h.twin(ctx, id)
}

func (h *fakeHub) QueryTwins(ctx context.Context, query string) TwinPages {
	return &onePage{run: func(ctx context.Context) ([]*iothub.Twin, error) { return h.query(ctx, query) }}
}

type onePage struct {
	run  func(context.Context) ([]*iothub.Twin, error)
	done bool
}

func (p *onePage) More() bool { return !p.done }

func (p *onePage) Next(ctx context.Context) ([]*iothub.Twin, error) {
	twins, err := p.run(ctx)
	if err == nil {
		p.done = true
	}
	return twins, err
}

// fakeDevice is one device of a fakeFleet.
type fakeDevice struct {
	id       string
	tags     map[string]any
	reported map[string]any
	// work is how long after an accepted call the device reports
	// status "done".
	work      time.Duration
	invokedAt time.Time
	updatedAt time.Time
	// away, when set, says when the device is disconnected.
	away func(now time.Time) bool
}

// fakeFleet models devices behind a fakeHub: a call makes a device report
// status "working", and "done" once its work time has passed on the clock.
type fakeFleet struct {
	clock Clock

	mu      sync.Mutex
	devices map[string]*fakeDevice
	calls   []fakeCall
	// answer, when set, decides each call before the device acts on it.
	answer func(d *fakeDevice, n int, now time.Time) (*iothub.MethodResponse, error)
	// down, when set, says when the hub cannot be reached for twins.
	down func(now time.Time) bool
}

// errHubDown is what reading from a hub that cannot be reached gives.
var errHubDown = errors.New("dial tcp 127.0.0.1:8443: connect: connection refused")

type fakeCall struct {
	id     string
	method string
	at     time.Time
}

func newFakeFleet(clock Clock, devs ...*fakeDevice) *fakeFleet {
	f := &fakeFleet{clock: clock, devices: map[string]*fakeDevice{}}
	for _, d := range devs {
		if d.reported == nil {
			d.reported = map[string]any{}
		}
		f.devices[d.id] = d
	}
	return f
}

func (f *fakeFleet) hub() *fakeHub {
	return &fakeHub{
		invoke: func(ctx context.Context, id string, call MethodCall) (*iothub.MethodResponse, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			d := f.devices[id]
			if d == nil {
				return nil, &iothub.Error{Status: 404, Code: iothub.CodeDeviceNotFound}
			}
			now := f.clock.Now()
			n := 0
			for _, c := range f.calls {
				if c.id == id {
					n++
				}
			}
			f.calls = append(f.calls, fakeCall{id, call.Name, now})
			if f.answer != nil {
				resp, err := f.answer(d, n, now)
				if err != nil || resp.Status != 200 {
					return resp, err
				}
			}
			d.invokedAt, d.updatedAt = now, now
			d.reported["status"] = "working"
			return &iothub.MethodResponse{Status: 200, Payload: []byte(`{"ok":true}`)}, nil
		},
		patch: func(ctx context.Context, id string, desired map[string]any) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			now := f.clock.Now()
			f.calls = append(f.calls, fakeCall{id, "$desired", now})
			d := f.devices[id]
			d.invokedAt, d.updatedAt = now, now
			d.reported["status"] = "working"
			return nil
		},
		twin: func(ctx context.Context, id string) (*iothub.Twin, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.down != nil && f.down(f.clock.Now()) {
				return nil, errHubDown
			}
			d := f.devices[id]
			if d == nil {
				return nil, &iothub.Error{Status: 404, Code: iothub.CodeDeviceNotFound}
			}
			return f.twinLocked(d), nil
		},
		query: func(ctx context.Context, query string) ([]*iothub.Twin, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.down != nil && f.down(f.clock.Now()) {
				return nil, errHubDown
			}
			var out []*iothub.Twin
			if i := strings.Index(query, "deviceId IN ["); i >= 0 {
				for _, m := range quotedID.FindAllStringSubmatch(query[i:], -1) {
					if d := f.devices[m[1]]; d != nil {
						out = append(out, f.twinLocked(d))
					}
				}
				return out, nil
			}
			for _, d := range f.devices {
				out = append(out, f.twinLocked(d))
			}
			sort.Slice(out, func(i, j int) bool { return out[i].DeviceID < out[j].DeviceID })
			return out, nil
		},
	}
}

var quotedID = regexp.MustCompile(`'([^'\\]*)'`)

func (f *fakeFleet) twinLocked(d *fakeDevice) *iothub.Twin {
	now := f.clock.Now()
	if !d.invokedAt.IsZero() && d.reported["status"] == "working" && !now.Before(d.invokedAt.Add(d.work)) {
		d.reported["status"] = "done"
		d.updatedAt = d.invokedAt.Add(d.work)
	}
	rep := map[string]any{}
	for k, v := range d.reported {
		rep[k] = v
	}
	ver := int64(1)
	if !d.updatedAt.IsZero() {
		rep["$metadata"] = map[string]any{"$lastUpdated": iothub.FormatTime(d.updatedAt)}
		ver = d.updatedAt.UnixNano()
	}
	rep["$version"] = float64(ver)
	conn := "Connected"
	if d.away != nil && d.away(now) {
		conn = "Disconnected"
	}
	return &iothub.Twin{DeviceID: d.id, Tags: d.tags, ETag: d.id, Version: ver, ConnectionState: conn,
		Properties: iothub.TwinProperties{Reported: rep, Desired: map[string]any{"$version": float64(1)}}}
}

// callsTo returns the calls made to a device.
func (f *fakeFleet) callsTo(id string) []fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []fakeCall
	for _, c := range f.calls {
		if c.id == id {
			out = append(out, c)
		}
	}
	return out
}

// testStore opens a fresh history database.
func testStore(t testing.TB) *state.Store {
	t.Helper()
	st, err := state.Open(context.Background(), filepath.Join(t.TempDir(), "h.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func testJob(t testing.TB, src string) *jobs.Job {
	t.Helper()
	cfg, diags := jobs.Load(jobs.LoadConfig{Sources: []jobs.Source{{Name: "job.hcl", Bytes: []byte(src)}}})
	if diags.HasErrors() {
		t.Fatalf("load job: %v", diags)
	}
	return cfg.Jobs[0]
}

func testRunner(t testing.TB, hub Hub, rec Recorder, clock Clock) *Runner {
	t.Helper()
	r, err := New(Config{Hub: hub, Recorder: rec, Clock: clock, ControlInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func execsByKey(t testing.TB, st *state.Store, runID string) map[string]state.Execution {
	t.Helper()
	xs, err := st.Executions(context.Background(), runID)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]state.Execution{}
	for _, x := range xs {
		out[x.DeviceID+"/"+x.Step] = x
	}
	return out
}
