package simulator

import (
	"math/rand/v2"
	"reflect"
	"testing"
)

const planFleet = `
group "press" {
  count = 200
  tags = {
    model    = one_of(["PX-100", "PX-200"])
    timezone = weighted({ "Europe/Berlin" = 3, "Asia/Tokyo" = 1, "Nowhere/Never" = 0 })
  }
  offline {
    fraction = 0.1
  }
  flaky {
    fraction = 0.25
  }
  slow {
    fraction = 0.5
  }
  maintenance_window {
    accept = 0.5
  }
}
`

func loadPlanFleet(t testing.TB) *Fleet {
	t.Helper()
	f, diags := LoadFleet("fleet.hcl", []byte(planFleet))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return f
}

func TestFleet_ExpandIsDeterministic(t *testing.T) {
	f := loadPlanFleet(t)
	a, err := f.expand(7)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := f.expand(7)
	c, _ := f.expand(8)
	if !reflect.DeepEqual(a, b) {
		t.Errorf("the same seed gave different fleets")
	}
	if reflect.DeepEqual(a, c) {
		t.Errorf("seeds 7 and 8 gave the same fleet")
	}
}

func TestFleet_ExpandDraws(t *testing.T) {
	specs, err := loadPlanFleet(t).expand(1)
	if err != nil {
		t.Fatal(err)
	}
	var offline, flaky, slow, slowOffline, accepts int
	zones := map[any]int{}
	models := map[any]int{}
	for _, s := range specs {
		zones[s.tags["timezone"]]++
		models[s.tags["model"]]++
		if s.offline {
			offline++
			if s.slow || s.flaky {
				slowOffline++
			}
		}
		if s.flaky {
			flaky++
		}
		if s.slow {
			slow++
		}
		if s.accepts {
			accepts++
		}
	}
	// Fractions are exact counts: of 200, 20 offline; of the 180 online,
	// 45 flaky and 90 slow.
	exact := []struct {
		name      string
		got, want int
	}{
		{"offline", offline, 20},
		{"flaky", flaky, 45},
		{"slow", slow, 90},
		{"offline devices that are also slow or flaky", slowOffline, 0},
		{"zero-weight zone", zones["Nowhere/Never"], 0},
	}
	for _, c := range exact {
		if c.got != c.want {
			t.Errorf("%s: got %d, want %d", c.name, c.got, c.want)
		}
	}
	// Weighted and uniform draws: loose bounds that a broken draw misses.
	loose := []struct {
		name    string
		got     int
		lo, hi  int
		comment string
	}{
		{"Europe/Berlin", zones["Europe/Berlin"], 125, 175, "weight 3 of 4"},
		{"PX-100", models["PX-100"], 70, 130, "one of two"},
		{"accepting", accepts, 70, 130, "probability 0.5"},
	}
	for _, c := range loose {
		if c.got < c.lo || c.got > c.hi {
			t.Errorf("%s (%s): got %d of 200, want %d–%d", c.name, c.comment, c.got, c.lo, c.hi)
		}
	}
}

func TestChoose(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	cases := []struct {
		n        int
		fraction float64
		exclude  []bool
		want     int
	}{
		{10, 0, nil, 0},
		{10, 1, nil, 10},
		{10, 0.25, nil, 3}, // 2.5 rounds half away from zero
		{3, 0.1, nil, 0},
		{4, 1, []bool{true, false, true, false}, 2},
	}
	for _, c := range cases {
		got := choose(rng, c.n, c.fraction, c.exclude)
		n := 0
		for i, v := range got {
			if v {
				n++
				if c.exclude != nil && c.exclude[i] {
					t.Errorf("choose(%d, %g) picked excluded device %d", c.n, c.fraction, i)
				}
			}
		}
		if n != c.want {
			t.Errorf("choose(%d, %g): got %d, want %d", c.n, c.fraction, n, c.want)
		}
	}
}

func TestMergePatch(t *testing.T) {
	older := map[string]any{"a": 1.0, "o": map[string]any{"x": 1.0, "y": 2.0}, "gone": nil}
	newer := map[string]any{"b": 2.0, "o": map[string]any{"y": nil, "z": 3.0}, "gone": 4.0}
	got := mergePatch(older, newer)
	want := map[string]any{"a": 1.0, "b": 2.0, "o": map[string]any{"x": 1.0, "y": nil, "z": 3.0}, "gone": 4.0}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if _, ok := older["b"]; ok {
		t.Errorf("mergePatch modified its input")
	}
	if mergePatch(nil, nil) != nil {
		t.Errorf("merging nothing gave a patch")
	}
}

func TestReplacePatch(t *testing.T) {
	old := map[string]any{"start": "01:00", "days": "weekdays", "o": map[string]any{"a": 1.0, "b": 2.0}}
	next := map[string]any{"start": "02:00", "o": map[string]any{"a": 1.0}}
	got := replacePatch(old, next)
	want := map[string]any{"start": "02:00", "days": nil, "o": map[string]any{"a": 1.0, "b": nil}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if got := replacePatch(old, nil); got != nil {
		t.Errorf("replacing with nothing: got %v, want nil", got)
	}
}

func TestApplyMergePatch(t *testing.T) {
	cases := []struct {
		name          string
		target, patch any
		want          any
	}{
		{"merge", map[string]any{"a": 1.0, "b": 2.0}, map[string]any{"b": nil, "c": 3.0}, map[string]any{"a": 1.0, "c": 3.0}},
		{"onto nothing", nil, map[string]any{"a": 1.0, "b": nil}, map[string]any{"a": 1.0}},
		{"scalar replaces", map[string]any{"a": 1.0}, "x", "x"},
		{"delete", map[string]any{"a": 1.0}, nil, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := applyMergePatch(c.target, c.patch); !reflect.DeepEqual(got, c.want) {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}
}

func TestRange_Draw(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	r, err := ParseRange("1s..2s")
	if err != nil {
		t.Fatal(err)
	}
	for range 1000 {
		if d := r.Draw(rng); d < r.Min || d > r.Max {
			t.Fatalf("got %s, want within %s", d, r)
		}
	}
	if got := Fixed(5).Draw(rng); got != 5 {
		t.Errorf("fixed: got %d, want 5", got)
	}
	if got := r.String(); got != "1s..2s" {
		t.Errorf("got %q, want 1s..2s", got)
	}
}
