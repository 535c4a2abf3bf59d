package main

import (
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stratalog/strata/api/client"
	stratav1 "github.com/stratalog/strata/api/v1"
)

// stdoutOf returns what print writes to os.Stdout.
func stdoutOf(t *testing.T, print func() error) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		out <- string(b)
	}()
	old := os.Stdout
	os.Stdout = w
	perr := print()
	os.Stdout = old
	w.Close()
	s := <-out
	r.Close()
	if perr != nil {
		t.Fatal(perr)
	}
	return s
}

// TestDescribeOutputShowsUnknownPartitions: a partition whose leader the
// server could not ask prints as unknown, with a note, and is left out of
// the queue group's totals, instead of printing its -1s as numbers.
func TestDescribeOutputShowsUnknownPartitions(t *testing.T) {
	g := &stratav1.DescribeGroupResponse{Group: "readers", State: "Empty", Partitions: []*stratav1.GroupPartitionLag{
		{Topic: "t", Partition: 0, CommittedOffset: 2, EndOffset: 5, LagRecords: 3, LagSeconds: 1.5},
		{Topic: "t", Partition: 1, CommittedOffset: 2, EndOffset: -1, LagRecords: -1, LagSeconds: -1, Unknown: true},
	}}
	out := stdoutOf(t, func() error { return printGroup(g, "") })
	lines := strings.Split(out, "\n")
	if len(lines) < 5 || !strings.Contains(lines[3], "5") || !strings.Contains(lines[3], "1.5s") ||
		strings.Count(lines[4], "unknown") != 3 || strings.Contains(lines[4], "-1") ||
		!strings.Contains(out, "1 partition(s) unknown: their leader did not answer") {
		t.Fatalf("group describe prints:\n%s", out)
	}

	q := client.QueueGroupDescription{Topic: "t", Group: "w", Partitions: []client.QueuePartitionState{
		{Partition: 0, HighWatermark: 5, Backlog: 5, Available: 3, Leased: 2, Deliveries: 2, OldestUnacked: time.Second},
		{Partition: 1, Floor: -1, HighWatermark: -1, Backlog: -1, Available: -1, Leased: -1, OldestUnacked: -time.Second, Unknown: true},
	}, Members: map[string]int64{"m1": 2}}
	out = stdoutOf(t, func() error { return printQueueDescription(q, "") })
	if !strings.Contains(out, "available 3, leased 2,") || !strings.Contains(strings.Join(strings.Fields(out), " "), " 1 unknown unknown") ||
		strings.Contains(out, "-1") || !strings.Contains(out, "1 partition(s) unknown: their leader did not answer the node asked (or none is known); the totals leave them out") {
		t.Fatalf("queue describe prints:\n%s", out)
	}
	out = stdoutOf(t, func() error { return printQueueDescription(q, "json") })
	if !strings.Contains(out, `"unknown_partitions": 1`) || !strings.Contains(out, `"available": 3,`) {
		t.Fatalf("queue describe --output json prints:\n%s", out)
	}
}
