package runner

import (
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hubflow/hubflow/iothub"
	"github.com/hubflow/hubflow/jobs"
)

// gate is a set of maintenance windows as one device sees them (all
// devices share one gate unless a window takes its zone from the device).
// A nil *gate is always open. It is safe for concurrent use.
type gate struct {
	set  jobs.WindowSet
	zone string // the zones the windows are read in, for display
	// locs are the zones of the job's windows in order, for listing each
	// window's openings; nil means each window's own zone.
	locs []*time.Location

	mu sync.Mutex
	// Memo of the last answer: open until closes, or closed until next.
	from, closes, next time.Time
	open               bool
}

// openAt reports whether the gate is open at t and when that changes: the
// closing time when open, the next opening when closed (zero: never).
func (g *gate) openAt(t time.Time) (open bool, change time.Time) {
	if g == nil {
		return true, time.Time{}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.from.IsZero() && !t.Before(g.from) {
		if g.open && t.Before(g.closes) {
			return true, g.closes
		}
		if !g.open && (g.next.IsZero() || t.Before(g.next)) {
			return false, g.next
		}
	}
	g.from = t
	g.open, g.closes = g.set.OpenAt(t)
	if g.open {
		return true, g.closes
	}
	g.next = g.set.NextOpening(t)
	return false, g.next
}

// gates builds and shares the gates of a job's devices.
type gates struct {
	job    *jobs.Job
	ignore bool
	shared *gate
	byZone map[string]*gate
}

func newGates(job *jobs.Job, ignore bool) *gates {
	g := &gates{job: job, ignore: ignore || len(job.Windows) == 0, byZone: map[string]*gate{}}
	if !g.ignore && !job.DeviceLocalWindows() {
		set, _ := job.WindowSet(jobs.Device{})
		g.shared = &gate{set: set, zone: zoneNames(job.Windows, nil)}
	}
	return g
}

// none reports whether windows do not apply at all.
func (g *gates) none() bool { return g.ignore }

// forDevice returns the gate of a device, or a skip reason when a window
// takes its zone from the device and the device has no usable zone.
func (g *gates) forDevice(id string, twin *iothub.Twin) (*gate, string) {
	if g.ignore {
		return nil, ""
	}
	if g.shared != nil {
		return g.shared, ""
	}
	dev := twinDevice(id, twin, time.Time{})
	locs := make([]*time.Location, len(g.job.Windows))
	for i, w := range g.job.Windows {
		loc, err := w.Location(dev)
		if err != nil {
			return nil, err.Error()
		}
		locs[i] = loc
	}
	key := zoneNames(g.job.Windows, locs)
	if gt := g.byZone[key]; gt != nil {
		return gt, ""
	}
	set, err := g.job.WindowSet(dev)
	if err != nil {
		return nil, err.Error()
	}
	gt := &gate{set: set, zone: key, locs: locs}
	g.byZone[key] = gt
	return gt, ""
}

// openings lists the next n openings of the job's windows through g,
// each with its own closing time, soonest first.
func (g *gates) openings(gt *gate, after time.Time, n int) []Opening {
	var out []Opening
	for i, w := range g.job.Windows {
		var loc *time.Location
		if gt.locs != nil {
			loc = gt.locs[i]
		}
		t := after
		for range n {
			next := w.NextOpening(t, loc)
			if next.IsZero() {
				break
			}
			out = append(out, Opening{Window: w.Name, Opens: next, Closes: next.Add(w.Duration)})
			t = next
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Opens.Before(out[j].Opens) })
	return out[:min(n, len(out))]
}

// all returns every distinct gate made so far.
func (g *gates) all() []*gate {
	if g.shared != nil {
		return []*gate{g.shared}
	}
	out := make([]*gate, 0, len(g.byZone))
	for _, gt := range g.byZone {
		out = append(out, gt)
	}
	return out
}

// zoneNames names the zones windows are read in; locs overrides the
// windows' own zones where set.
func zoneNames(ws []*jobs.Window, locs []*time.Location) string {
	seen := map[string]bool{}
	var names []string
	for i, w := range ws {
		loc := w.Timezone
		if locs != nil && locs[i] != nil {
			loc = locs[i]
		}
		name := "UTC"
		if loc != nil {
			name = loc.String()
		}
		if !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
	}
	return strings.Join(names, ", ")
}

// windowNames lists a job's window names for display.
func windowNames(job *jobs.Job) string {
	names := make([]string, len(job.Windows))
	for i, w := range job.Windows {
		names[i] = w.Name
	}
	return strings.Join(names, ", ")
}

// twinDevice is what job expressions see of a device.
func twinDevice(id string, twin *iothub.Twin, started time.Time) jobs.Device {
	d := jobs.Device{ID: id, StepStartedAt: started}
	if twin != nil {
		d.Tags, d.Desired, d.Reported = twin.Tags, withoutMeta(twin.Properties.Desired), withoutMeta(twin.Properties.Reported)
	}
	return d
}

// withoutMeta drops the hub's "$metadata" and "$version" members from a
// twin section: conditions name device properties, and the metadata tree,
// as large as the section itself, would only cost its conversion at every
// observation.
func withoutMeta(section map[string]any) map[string]any {
	if _, ok := section["$metadata"]; !ok {
		if _, ok := section["$version"]; !ok {
			return section
		}
	}
	out := make(map[string]any, len(section))
	for k, v := range section {
		if k != "$metadata" && k != "$version" {
			out[k] = v
		}
	}
	return out
}
