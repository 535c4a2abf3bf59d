package benchcmp

import (
	"bytes"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratalog/strata/internal/bench"
)

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// fakeRuns are three rounds of a throughput and a latency workload, with
// one failed round.
func fakeRuns() ([]*workload, []Run) {
	ws := []*workload{
		{id: "a", size: 128, title: "produce", targets: []string{tStrata, tNATS}},
		{id: "b", size: 128, title: "latency", targets: []string{tStrata, tNATS}, latency: true},
		{id: "d", size: 128, title: "queue", notRun: "not run: needs queue groups"},
	}
	var runs []Run
	for i, v := range []float64{100, 300, 200} {
		round := i + 1
		runs = append(runs,
			Run{Workload: "a", Size: 128, Target: tStrata, Round: round, Result: bench.Summary{RecordsPerSec: 10 * v}},
			Run{Workload: "a", Size: 128, Target: tNATS, Round: round, Result: bench.Summary{RecordsPerSec: v}},
			Run{Workload: "b", Size: 128, Target: tStrata, Round: round, Result: bench.Summary{RecordsPerSec: v,
				LatencyMs: &bench.Latency{P50: v / 100, P99: v / 10}}},
			Run{Workload: "b", Size: 128, Target: tNATS, Round: round, Result: bench.Summary{RecordsPerSec: v,
				LatencyMs: &bench.Latency{P50: v / 200, P99: v / 10}}})
	}
	runs = append(runs, Run{Workload: "a", Size: 128, Target: tNATS, Round: 3, Err: "boom"})
	return ws, runs
}

func TestTablesShowMediansAndRatios(t *testing.T) {
	ws, runs := fakeRuns()
	a := aggregate(ws[0], tNATS, runs)
	if a.rounds != 3 || a.failed != 1 || a.rps != 200 || a.rpsLo != 100 || a.rpsHi != 300 {
		t.Fatalf("aggregate: %+v", a)
	}
	var out bytes.Buffer
	writeTables(&out, ws, runs)
	s := out.String()
	for _, want := range []string{
		"| 2,000 (1.0k–3.0k) |",       // Strata's median with its spread
		"(1 failed)",                  // NATS's failed round is reported
		"| 10.00× |",                  // throughput ratio Strata/NATS
		"| 2.00 / 1.00 |",             // latency ratios p50 / p99
		"not run: needs queue groups", // a workload that cannot run yet
	} {
		if !strings.Contains(s, want) {
			t.Errorf("tables lack %q:\n%s", want, s)
		}
	}
}

func TestSVGIsWellFormed(t *testing.T) {
	ws, runs := fakeRuns()
	path := filepath.Join(t.TempDir(), "c.svg")
	if err := writeSVG(path, ws, runs); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(bytes.NewReader(b))
	rects := 0
	for {
		tok, err := d.Token()
		if err != nil {
			if err.Error() != "EOF" {
				t.Fatalf("SVG is not well-formed XML: %v", err)
			}
			break
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "rect" {
			rects++
		}
	}
	// background + 2 throughput bars + 4 latency bars + 2 legend boxes
	if rects != 9 {
		t.Fatalf("%d rects, want 9:\n%s", rects, b)
	}
}

func TestReplotFromJSON(t *testing.T) {
	_, runs := fakeRuns()
	dir := t.TempDir()
	path := filepath.Join(dir, "runs.json")
	if err := writeJSON(path, runs); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Sizes = []int{128}
	var out bytes.Buffer
	cfg.Out, cfg.SVGPath = &out, filepath.Join(dir, "c.svg")
	if err := Replot(cfg, path); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, want := range []string{"medians of 3 rounds", "| 2,000 (1.0k–3.0k) |", "| 10.00× |", "not run: needs queue groups", "| no runs |"} {
		if !strings.Contains(s, want) {
			t.Errorf("replot lacks %q:\n%s", want, s)
		}
	}
	if _, err := os.Stat(cfg.SVGPath); err != nil {
		t.Fatalf("no chart: %v", err)
	}
}
