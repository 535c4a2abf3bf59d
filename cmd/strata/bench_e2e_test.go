package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// benchJSON is the object `strata bench ... --output json` prints.
type benchJSON struct {
	Records       int64    `json:"records"`
	RecordsPerSec *float64 `json:"records_per_sec"`
	MBPerSec      *float64 `json:"mb_per_sec"`
	LatencyMs     *struct {
		P50, P90, P99, P999, Max *float64
	} `json:"latency_ms"`
}

func parseBenchJSON(t *testing.T, out string) benchJSON {
	t.Helper()
	var b benchJSON
	if err := json.Unmarshal([]byte(out), &b); err != nil {
		t.Fatalf("bench printed no JSON object: %v\n%s", err, out)
	}
	return b
}

// A tiny `strata bench` run against a real node: every record is
// acknowledged and read, and the JSON carries the documented fields.
// (No figure is checked: performance lives in benchmarks.)
func TestE2EBench(t *testing.T) {
	n := startNode(t, "")
	r := n.mustCLI(nil, "bench", "produce", "--records", "2000", "--size", "64", "--partitions", "2",
		"--producers", "2", "--keyed", "--compression", "lz4", "--output", "json")
	b := parseBenchJSON(t, r.Stdout)
	if b.Records != 2000 || b.RecordsPerSec == nil || *b.RecordsPerSec <= 0 || b.MBPerSec == nil {
		t.Fatalf("produce: %+v\n%s", b, r.Stdout)
	}
	l := b.LatencyMs
	if l == nil || l.P50 == nil || l.P90 == nil || l.P99 == nil || l.P999 == nil || l.Max == nil ||
		*l.P50 > *l.P99 || *l.P99 > *l.Max || *l.Max <= 0 {
		t.Fatalf("produce latency: %s", r.Stdout)
	}
	r = n.mustCLI(nil, "bench", "produce", "--sync", "--records", "50", "--topic", "one")
	if !strings.Contains(r.Stdout, "produce sync 128B") || !strings.Contains(r.Stdout, "p99.9") {
		t.Fatalf("produce --sync table:\n%s", r.Stdout)
	}
	// 2000 are stored: consume fills the missing 1000 first, then reads 3000.
	r = n.mustCLI(nil, "bench", "consume", "--records", "3000", "--size", "64", "--output", "json")
	if b := parseBenchJSON(t, r.Stdout); b.Records != 3000 || b.LatencyMs != nil {
		t.Fatalf("consume: %s\nstderr: %s", r.Stdout, r.Stderr)
	}
	r = n.mustCLI(nil, "bench", "consume", "--records", "3000", "--group", "g", "--fill=false", "--output", "json")
	if b := parseBenchJSON(t, r.Stdout); b.Records != 3000 {
		t.Fatalf("consume --group: %s", r.Stdout)
	}
	r = n.mustCLI(nil, "bench", "e2e", "--records", "200", "--rate", "2000", "--topic", "lat", "--output", "json")
	if b := parseBenchJSON(t, r.Stdout); b.Records != 200 || b.LatencyMs == nil {
		t.Fatalf("e2e: %s", r.Stdout)
	}
	// Queue: a new group receives and acks the 3000 stored records.
	r = n.mustCLI(nil, "bench", "queue", "--records", "3000", "--fill=false", "--output", "json")
	if b := parseBenchJSON(t, r.Stdout); b.Records != 3000 || b.LatencyMs == nil {
		t.Fatalf("queue: %s\nstderr: %s", r.Stdout, r.Stderr)
	}
}
