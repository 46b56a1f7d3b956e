package bench

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"math"
)

// Chart geometry, in SVG user units.
const (
	chartWidth  = 720
	chartHeight = 440
	marginLeft  = 80
	marginRight = 24
	marginTop   = 64
	marginBot   = 84
)

// series is one bar of each fleet size's group.
type series struct {
	label string
	color string
	value func(Result) float64
}

func chartSeries() []series {
	return []series{
		{"hubflow runner", "#2b6cb0", func(x Result) float64 { return x.ExecutionsPerSecond }},
		{"limit (method round trips)", "#a0aec0", func(x Result) float64 { return x.Limit.ExecutionsPerSecond }},
		{"workflow limit (no back-end cost)", "#48bb78", func(x Result) float64 {
			if x.WorkflowLimit == nil {
				return 0
			}
			return x.WorkflowLimit.ExecutionsPerSecond
		}},
		{"baseline (tutorial back-end app)", "#dd6b20", func(x Result) float64 { return x.Baseline.ExecutionsPerSecond }},
	}
}

// WriteSVG draws device executions (one device through one step) per
// second against fleet size as a bar chart, one group per fleet size: the
// runner, the limit, the workflow limit and the baseline, each bar
// labelled with its value.
func WriteSVG(w io.Writer, r *Report) error {
	var b bytes.Buffer
	ss := chartSeries()
	top := 0.0
	for _, x := range r.Results {
		for _, s := range ss {
			top = math.Max(top, s.value(x))
		}
	}
	step := niceStep(top / 5)
	// Headroom above the tallest bar keeps its label inside the plot.
	yMax := math.Max(step, math.Ceil(top*1.08/step)*step)
	plotW := float64(chartWidth - marginLeft - marginRight)
	plotH := float64(chartHeight - marginTop - marginBot)
	y := func(v float64) float64 { return marginTop + plotH - v/yMax*plotH }

	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		chartWidth, chartHeight, chartWidth, chartHeight)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", chartWidth, chartHeight)
	title := fmt.Sprintf("hubflow bench: %s, %s stages, concurrency %d", r.Workflow, fmtMS(r.StageMS), r.Concurrency)
	if r.Tier != "" {
		title += fmt.Sprintf(", %s × %d", r.Tier, r.Units)
	}
	text(&b, marginLeft, 24, "start", "15", title)
	text(&b, marginLeft, 44, "start", "12", "executions per second (one device through one step), by fleet size")

	// Grid lines and the y axis's labels.
	for v := 0.0; v <= yMax+step/2; v += step {
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#e2e8f0"/>`+"\n", marginLeft, y(v), chartWidth-marginRight, y(v))
		text(&b, marginLeft-8, y(v)+4, "end", "12", fmtRate(v))
	}
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%.1f" stroke="#4a5568"/>`+"\n", marginLeft, marginTop, marginLeft, y(0))
	fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#4a5568"/>`+"\n", marginLeft, y(0), chartWidth-marginRight, y(0))

	n := max(len(r.Results), 1)
	groupW := plotW / float64(n)
	barW := math.Min(groupW*0.8/float64(len(ss)), 80)
	for i, x := range r.Results {
		left := marginLeft + groupW*float64(i) + (groupW-barW*float64(len(ss)))/2
		for j, s := range ss {
			v := s.value(x)
			bx := left + barW*float64(j)
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s: %s</title></rect>`+"\n",
				bx, y(v), barW-2, y(0)-y(v), s.color, escape(s.label), fmtRate(v))
			text(&b, bx+(barW-2)/2, y(v)-4, "middle", "11", fmtRate(v))
		}
		text(&b, marginLeft+groupW*(float64(i)+0.5), y(0)+18, "middle", "12", fmt.Sprintf("%d devices", x.Devices))
	}

	// Legend under the axis, two keys a row.
	for i, s := range ss {
		lx := marginLeft + plotW/2*float64(i%2)
		ly := float64(chartHeight - 46 + 20*(i/2))
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="12" height="12" fill="%s"/>`+"\n", lx, ly, s.color)
		text(&b, lx+16, ly+10, "start", "12", s.label)
	}
	b.WriteString("</svg>\n")
	_, err := w.Write(b.Bytes())
	return err
}

func text(b *bytes.Buffer, x, y float64, anchor, size, s string) {
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="%s" font-size="%s" fill="#1a202c">%s</text>`+"\n", x, y, anchor, size, escape(s))
}

func escape(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// niceStep rounds a raw tick step up to 1, 2 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	if raw <= 0 || math.IsNaN(raw) || math.IsInf(raw, 0) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if raw <= m*p {
			return m * p
		}
	}
	return 10 * p
}
