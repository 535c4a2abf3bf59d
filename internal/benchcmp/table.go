package benchcmp

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/stratalog/strata/internal/bench"
)

// agg is the median over rounds of one target's runs of one workload.
type agg struct {
	target     string
	rounds     int // successful runs
	failed     int
	rps, mbps  float64
	rpsLo      float64 // slowest round
	rpsHi      float64 // fastest round
	p50, p99   float64
	p999, max  float64
	cpu        float64
	hasLatency bool
	firstErr   string
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// aggregate takes the medians of w's runs on target.
func aggregate(w *workload, target string, runs []Run) agg {
	a := agg{target: target}
	var rps, mbps, p50, p99, p999, mx, cpu []float64
	for _, r := range runs {
		if r.Workload != w.key() || r.Size != w.size || r.Target != target || w.title == "" {
			continue
		}
		if r.Err != "" {
			a.failed++
			if a.firstErr == "" {
				a.firstErr = r.Err
			}
			continue
		}
		rps = append(rps, r.Result.RecordsPerSec)
		mbps = append(mbps, r.Result.MBPerSec)
		cpu = append(cpu, r.ServerCPU)
		if l := r.Result.LatencyMs; l != nil {
			a.hasLatency = true
			p50, p99, p999, mx = append(p50, l.P50), append(p99, l.P99), append(p999, l.P999), append(mx, l.Max)
		}
	}
	a.rounds = len(rps)
	if a.rounds > 0 {
		a.rpsLo, a.rpsHi = slices.Min(rps), slices.Max(rps)
	}
	a.rps, a.mbps, a.cpu = median(rps), median(mbps), median(cpu)
	a.p50, a.p99, a.p999, a.max = median(p50), median(p99), median(p999), median(mx)
	return a
}

// writeTables writes one markdown table per workload.
func writeTables(out io.Writer, ws []*workload, runs []Run) {
	for _, w := range ws {
		fmt.Fprintf(out, "\n### (%s) %s, %d B records\n\n", w.id, w.title, w.size)
		if w.notRun != "" {
			fmt.Fprintf(out, "%s\n", w.notRun)
			continue
		}
		if w.note != "" {
			fmt.Fprintf(out, "%s\n\n", w.note)
		}
		aggs := make([]agg, len(w.targets))
		for i, t := range w.targets {
			aggs[i] = aggregate(w, t, runs)
		}
		ratioHead := "Strata ÷ this, records/s"
		if w.latency {
			ratioHead = "Strata ÷ this, p50 / p99 latency"
		}
		fmt.Fprintf(out, "| target | records/s (slowest–fastest) | MB/s | p50 ms | p99 ms | p99.9 ms | max ms | server CPU (cores) | %s |\n", ratioHead)
		fmt.Fprintln(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|")
		s := aggs[0]
		for i, a := range aggs {
			if a.rounds == 0 && a.failed == 0 {
				fmt.Fprintf(out, "| %s | no runs | | | | | | | |\n", targetLabels[a.target])
				continue
			}
			if a.rounds == 0 {
				fmt.Fprintf(out, "| %s | failed in all %d rounds: %s | | | | | | | |\n", targetLabels[a.target], a.failed, oneLine(a.firstErr))
				continue
			}
			lat := func(v float64) string {
				if !a.hasLatency {
					return "–"
				}
				return bench.Millis(v)
			}
			ratio := "–"
			if i > 0 && s.rounds > 0 { // the first target is Strata's
				if w.latency {
					ratio = fmt.Sprintf("%.2f / %.2f", s.p50/a.p50, s.p99/a.p99)
				} else {
					ratio = fmt.Sprintf("%.2f×", s.rps/a.rps)
				}
			}
			failed := ""
			if a.failed > 0 {
				failed = fmt.Sprintf(" (%d failed)", a.failed)
			}
			fmt.Fprintf(out, "| %s | %s (%s–%s)%s | %.1f | %s | %s | %s | %s | %.2f | %s |\n",
				targetLabels[a.target], bench.Count(a.rps), short(a.rpsLo), short(a.rpsHi), failed, a.mbps,
				lat(a.p50), lat(a.p99), lat(a.p999), lat(a.max), a.cpu, ratio)
		}
	}
}

// short formats a rate compactly (912k, 1.23M).
func short(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.0fk", v/1e3)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return s
}

// report writes the tables, and the JSON and SVG files when asked.
func report(cfg Config, ws []*workload, runs []Run) error {
	fmt.Fprintf(cfg.Out, "## Strata vs NATS JetStream: medians of %d rounds\n\n", cfg.Rounds)
	fmt.Fprintf(cfg.Out, "Machine: %s. 1-minute load average at the start of the runs: %s.\n", Machine(), loadRange(runs))
	writeTables(cfg.Out, ws, runs)
	if cfg.JSONPath != "" {
		if err := writeJSON(cfg.JSONPath, runs); err != nil {
			return err
		}
	}
	if cfg.SVGPath != "" {
		if err := writeSVG(cfg.SVGPath, ws, runs); err != nil {
			return err
		}
	}
	return nil
}

// loadRange returns the smallest and largest 1-minute load average the
// runs started at.
func loadRange(runs []Run) string {
	var v []float64
	for _, r := range runs {
		if f := strings.Fields(r.Load); len(f) > 0 {
			if x, err := strconv.ParseFloat(f[0], 64); err == nil {
				v = append(v, x)
			}
		}
	}
	if len(v) == 0 {
		return "unknown"
	}
	return fmt.Sprintf("%.2f–%.2f (median %.2f)", slices.Min(v), slices.Max(v), median(v))
}
