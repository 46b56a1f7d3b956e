package bench

import (
	"bytes"
	"encoding/xml"
	"io"
	"strings"
	"testing"
)

// svgDoc collects what a test checks of a chart.
type svgDoc struct {
	rects []map[string]string
	texts []string
}

func parseSVG(t testing.TB, b []byte) svgDoc {
	t.Helper()
	var d svgDoc
	dec := xml.NewDecoder(bytes.NewReader(b))
	inText := false
	root := ""
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("chart is not well-formed XML: %v\n%s", err, b)
		}
		switch el := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = el.Name.Local
			}
			attrs := map[string]string{}
			for _, a := range el.Attr {
				attrs[a.Name.Local] = a.Value
			}
			switch el.Name.Local {
			case "rect":
				d.rects = append(d.rects, attrs)
			case "text":
				inText = true
			}
		case xml.EndElement:
			if el.Name.Local == "text" {
				inText = false
			}
		case xml.CharData:
			if inText {
				d.texts = append(d.texts, string(el))
			}
		}
	}
	if root != "svg" {
		t.Fatalf("root element is %q, want svg", root)
	}
	return d
}

func TestWriteSVG(t *testing.T) {
	r := sampleReport("")
	second := r.Results[0]
	second.Devices, second.ExecutionsPerSecond = 10000, 1600
	r.Results = append(r.Results, second)
	var b bytes.Buffer
	if err := WriteSVG(&b, r); err != nil {
		t.Fatal(err)
	}
	d := parseSVG(t, b.Bytes())
	// Background, four bars per size, four legend keys.
	if got, want := len(d.rects), 1+4*2+4; got != want {
		t.Errorf("got %d rects, want %d", got, want)
	}
	joined := strings.Join(d.texts, "|")
	for _, w := range []string{"1000 devices", "10000 devices", "800", "1600", "4000", "1000", "4.00",
		"executions per second (one device through one step), by fleet size",
		"hubflow runner", "limit (method round trips)", "workflow limit (no back-end cost)", "baseline (tutorial back-end app)",
		"hubflow bench: two-step, 100ms stages, concurrency 512"} {
		if !strings.Contains(joined, w) {
			t.Errorf("chart lacks the text %q; it has %q", w, joined)
		}
	}
	// The tallest bar (the limit, 4000) reaches at most the top of the plot,
	// and a bar twice as tall as another is drawn twice as high.
	heights := map[string]float64{}
	for _, rc := range d.rects {
		// Legend keys are 12 wide; bars are wider.
		if h, ok := rc["height"]; ok && rc["fill"] == "#2b6cb0" && rc["width"] != "12" {
			heights[rc["x"]] = atof(t, h)
		}
	}
	if len(heights) != 2 {
		t.Fatalf("got %d runner bars, want 2", len(heights))
	}
	var hs []float64
	for _, h := range heights {
		hs = append(hs, h)
	}
	lo, hi := min(hs[0], hs[1]), max(hs[0], hs[1])
	if diff := hi/lo - 2; diff > 0.01 || diff < -0.01 {
		t.Errorf("runner bars of 800 and 1600 are %.1f and %.1f high, want a ratio of 2", lo, hi)
	}
	for _, rc := range d.rects {
		if y, ok := rc["y"]; ok && atof(t, y) < marginTop-0.5 {
			t.Errorf("rect %v rises above the plot", rc)
		}
	}
}

func TestWriteSVG_EscapesAndEmpty(t *testing.T) {
	r := &Report{Workflow: "<two&step>", StageMS: 100, Concurrency: 1}
	var b bytes.Buffer
	if err := WriteSVG(&b, r); err != nil {
		t.Fatal(err)
	}
	d := parseSVG(t, b.Bytes())
	if !strings.Contains(strings.Join(d.texts, "|"), "<two&step>") {
		t.Errorf("title lost its escaped characters: %q", d.texts)
	}
}

func TestNiceStep(t *testing.T) {
	for _, tc := range []struct{ raw, want float64 }{
		{0, 1}, {0.3, 0.5}, {1, 1}, {1.1, 2}, {3, 5}, {7, 10}, {140, 200}, {2001, 5000},
	} {
		if got := niceStep(tc.raw); got != tc.want {
			t.Errorf("niceStep(%v): got %v, want %v", tc.raw, got, tc.want)
		}
	}
}
