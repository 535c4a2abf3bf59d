package benchcmp

import (
	"fmt"
	"html"
	"math"
	"os"
	"strings"
)

// targetColors colour the bars of each target in the chart.
var targetColors = map[string]string{
	tStrata:     "#2b6cb0",
	tNATS:       "#dd6b20",
	tNATSAlways: "#c53030",
	tNATSNoAck:  "#d69e2e",
	// (e): darker or lighter shades of the same systems.
	tStrataR3:     "#1a365d",
	tNATSR3:       "#f6ad55",
	tNATSR3Always: "#822727",
}

type bar struct {
	target string
	value  float64
}

type barGroup struct {
	label string
	bars  []bar
}

// writeSVG draws throughput (left) and one-at-a-time latency (right),
// medians of the rounds, on log scales.
func writeSVG(path string, ws []*workload, runs []Run) error {
	var thr, lat []barGroup
	for _, w := range ws {
		if w.notRun != "" {
			continue
		}
		label := fmt.Sprintf("(%s) %s", w.id, sizeLabel(w.size))
		if m, ok := strings.CutPrefix(w.variant, "m"); ok {
			label += " ×" + m // members of the queue group
		}
		var g, g50, g99 barGroup
		g.label, g50.label, g99.label = label, label+" p50", label+" p99"
		for _, t := range w.targets {
			a := aggregate(w, t, runs)
			if a.rounds == 0 {
				continue
			}
			g.bars = append(g.bars, bar{t, a.rps})
			g50.bars = append(g50.bars, bar{t, a.p50})
			g99.bars = append(g99.bars, bar{t, a.p99})
		}
		if w.latency {
			lat = append(lat, g50, g99)
		} else {
			thr = append(thr, g)
		}
	}
	const W, H = 1320, 520
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", W, H, W, H)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", W, H)
	panel(&b, 70, 40, 680, 360, "Throughput, records/s (median, log scale; higher is better)", thr)
	panel(&b, 830, 40, 460, 360, "(b), (e) One at a time: latency ms, median, log scale", lat)
	legend(&b, 70, 470, ws)
	b.WriteString("</svg>\n")
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

func sizeLabel(size int) string {
	if size >= 1024 && size%1024 == 0 {
		return fmt.Sprintf("%d KiB", size/1024)
	}
	return fmt.Sprintf("%d B", size)
}

// panel draws grouped bars on a log10 axis in the box (x, y, w, h).
func panel(b *strings.Builder, x, y, w, h float64, title string, groups []barGroup) {
	fmt.Fprintf(b, `<text x="%.0f" y="%.0f" font-size="14" font-weight="bold">%s</text>`+"\n", x, y-16, html.EscapeString(title))
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, g := range groups {
		for _, br := range g.bars {
			if br.value > 0 {
				lo, hi = math.Min(lo, br.value), math.Max(hi, br.value)
			}
		}
	}
	if math.IsInf(lo, 1) {
		fmt.Fprintf(b, `<text x="%.0f" y="%.0f">no data</text>`+"\n", x+10, y+h/2)
		return
	}
	dLo, dHi := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if dHi == dLo {
		dHi++
	}
	ypos := func(v float64) float64 { return y + h - (math.Log10(v)-dLo)/(dHi-dLo)*h }
	for d := dLo; d <= dHi; d++ {
		yy := ypos(math.Pow(10, d))
		fmt.Fprintf(b, `<line x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", x, x+w, yy, yy)
		fmt.Fprintf(b, `<text x="%.0f" y="%.1f" text-anchor="end">%s</text>`+"\n", x-6, yy+4, axisLabel(math.Pow(10, d)))
	}
	fmt.Fprintf(b, `<line x1="%.0f" x2="%.0f" y1="%.0f" y2="%.0f" stroke="#333"/>`+"\n", x, x+w, y+h, y+h)
	gw := w / float64(len(groups))
	for i, g := range groups {
		gx := x + float64(i)*gw
		bw := (gw - 16) / float64(max(len(g.bars), 1))
		for j, br := range g.bars {
			if br.value <= 0 {
				continue
			}
			bx, by := gx+8+float64(j)*bw, ypos(br.value)
			fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s: %s</title></rect>`+"\n",
				bx, by, bw-2, y+h-by, targetColors[br.target], html.EscapeString(targetLabels[br.target]), valueLabel(br.value))
			fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="10">%s</text>`+"\n", bx+(bw-2)/2, by-3, valueLabel(br.value))
		}
		fmt.Fprintf(b, `<text x="%.1f" y="%.0f" text-anchor="middle">%s</text>`+"\n", gx+gw/2, y+h+18, html.EscapeString(g.label))
	}
}

// legend lists the targets that appear in the workloads.
func legend(b *strings.Builder, x, y float64, ws []*workload) {
	seen := map[string]bool{}
	for _, w := range ws {
		for _, t := range w.targets {
			if seen[t] || w.notRun != "" {
				continue
			}
			seen[t] = true
			fmt.Fprintf(b, `<rect x="%.0f" y="%.0f" width="12" height="12" fill="%s"/>`+"\n", x, y-10, targetColors[t])
			fmt.Fprintf(b, `<text x="%.0f" y="%.0f">%s</text>`+"\n", x+16, y, html.EscapeString(targetLabels[t]))
			x += 16 + 7*float64(len(targetLabels[t])) + 20
			if x > 1100 {
				x, y = 70, y+20
			}
		}
	}
}

func axisLabel(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%gM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%gk", v/1e3)
	}
	return fmt.Sprintf("%g", v)
}

func valueLabel(v float64) string {
	if v < 10 {
		return fmt.Sprintf("%.2g", v)
	}
	return short(v)
}
