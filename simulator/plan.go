package simulator

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// deviceSpec is one device of the fleet with every trait drawn: what Start
// registers, tags, reports and runs. Drawing all of it up front, in fleet
// order, keeps a seed's fleet the same however the connections interleave.
type deviceSpec struct {
	id       string
	group    *Group
	tags     map[string]any
	reported map[string]any
	offline  bool
	flaky    bool
	slow     bool
	accepts  bool   // accepts maintenance-window policies
	seed     uint64 // for the device's own draws (durations, failures)
}

// expand draws every device's traits from seed. The same fleet and seed give
// the same devices.
func (f *Fleet) expand(seed int64) ([]deviceSpec, error) {
	master := rand.New(rand.NewPCG(uint64(seed), 0x68756266))
	d := newDrawer(0)
	specs := make([]deviceSpec, 0, f.Size())
	for _, g := range f.Groups {
		grng := rand.New(rand.NewPCG(master.Uint64(), master.Uint64()))
		b := g.Behaviour
		offline := choose(grng, g.Count, b.Offline, nil)
		flaky := choose(grng, g.Count, b.Flaky.Fraction, offline)
		slow := choose(grng, g.Count, b.Slow.Fraction, offline)
		for i := range g.Count {
			s := deviceSpec{
				id:      g.DeviceID(i),
				group:   g,
				offline: offline[i],
				flaky:   flaky[i] && b.Flaky.DisconnectsPerHour > 0,
				slow:    slow[i],
				seed:    master.Uint64(),
			}
			d.rng = rand.New(rand.NewPCG(s.seed, 1))
			tags, dt := d.evalTemplate(g, i, g.tags, "tags")
			reported, dr := d.evalTemplate(g, i, g.reported, "reported")
			if diags := append(dt, dr...); diags.HasErrors() {
				return nil, fmt.Errorf("draw device %s: %w", s.id, diags)
			}
			s.tags, s.reported = tags, reported
			s.accepts = d.rng.Float64() < b.Window.Accept
			specs = append(specs, s)
		}
	}
	return specs, nil
}

// choose marks round(fraction·k) of the n devices, where k counts the ones
// not excluded, picked uniformly among those.
func choose(rng *rand.Rand, n int, fraction float64, exclude []bool) []bool {
	out := make([]bool, n)
	var pool []int
	for i := range n {
		if exclude == nil || !exclude[i] {
			pool = append(pool, i)
		}
	}
	k := int(math.Round(fraction * float64(len(pool))))
	rng.Shuffle(len(pool), func(i, j int) { pool[i], pool[j] = pool[j], pool[i] })
	for _, i := range pool[:k] {
		out[i] = true
	}
	return out
}
