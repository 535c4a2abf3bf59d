package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/wait"
)

// Issue 5 on a cluster: a queue group on a topic whose 6 partitions are led
// 2/2/2 by three nodes, while the dead-letter topic and the metadata each
// have one leader. Dead letters of every partition reach the dead-letter
// topic (written through its leader, created through the metadata leader),
// and redrive and reset work from any node.
func TestE2EQueueCluster(t *testing.T) {
	nodes := startCluster(t, 3)
	nodes[1].mustCLI(nil, "topic", "create", "work", "--partitions", "6", "--replication-factor", "3")
	wait.NoError(t, 30*time.Second, "leaders 2/2/2", func() error {
		d, err := describeTopic(nodes[0].node, "work")
		if err != nil {
			return err
		}
		if c := leaderCounts(d); c["n1"] != 2 || c["n2"] != 2 || c["n3"] != 2 {
			return fmt.Errorf("leaders per node %v", c)
		}
		return nil
	})
	nodes[2].mustCLI(nil, "queue", "create", "workers", "--topic", "work", "--max-deliveries", "1",
		"--ack-timeout", "2s", "--backoff-initial", "100ms", "--backoff-max", "100ms")
	const total = 60
	var in strings.Builder
	for i := range total {
		fmt.Fprintf(&in, "k%d:v%d\n", i, i)
	}
	nodes[0].mustCLI(strings.NewReader(in.String()), "produce", "work", "--key-separator", ":")
	if parts := partitionsOf(t, nodes[0], "work"); len(parts) < 4 {
		t.Fatalf("records landed on partitions %v only; want them spread", parts)
	}

	// One delivery and a nack: every record is dead-lettered, by the
	// leader of its partition, into a partition led by one node.
	got := receive(t, nodes[0], "workers", "--nack")
	if got != total {
		t.Fatalf("received %d records, want %d", got, total)
	}
	var d queueDescribe
	wait.NoError(t, 30*time.Second, "every record dead-lettered", func() error {
		r := nodes[1].mustCLI(nil, "queue", "describe", "workers", "--topic", "work", "--output", "json")
		if err := json.Unmarshal([]byte(r.Stdout), &d); err != nil {
			return err
		}
		if d.DeadLettered != total || d.Backlog != 0 {
			return fmt.Errorf("%+v", d)
		}
		return nil
	})
	r := nodes[2].mustCLI(nil, "consume", "work.workers.dlq", "--from-beginning", "--output", "json", "--timeout", "2s")
	seen := map[string]bool{}
	for _, rec := range parseRecords(t, r.Stdout) {
		if seen[rec.Value] || rec.Headers["strata-dlq-reason"] != "max-deliveries" {
			t.Fatalf("dead letter %+v (seen before: %v)", rec, seen[rec.Value])
		}
		seen[rec.Value] = true
	}
	if len(seen) != total {
		t.Fatalf("%d dead letters, want %d", len(seen), total)
	}

	// Redrive from a node, then every redriven record is delivered again.
	r = nodes[1].mustCLI(nil, "queue", "redrive", "workers", "--topic", "work", "--output", "json")
	if !strings.Contains(r.Stdout, fmt.Sprintf(`"redriven": %d`, total)) {
		t.Fatalf("redrive: %s", r.Stdout)
	}
	if got := receive(t, nodes[1], "workers", "--ack"); got != total {
		t.Fatalf("received %d records after the redrive, want %d", got, total)
	}

	// Reset to earliest from a third node: originals and redriven records
	// are all delivered again, from every partition.
	nodes[2].mustCLI(nil, "queue", "reset", "workers", "--topic", "work", "--to-earliest")
	if got := receive(t, nodes[2], "workers", "--ack"); got != 2*total {
		t.Fatalf("received %d records after the reset, want %d", got, 2*total)
	}

	// A dead-letter topic with one replica: a redrive through a node
	// that holds none of it is done by the node that does.
	nodes[0].mustCLI(nil, "topic", "create", "dead", "--replication-factor", "1")
	nodes[0].mustCLI(nil, "queue", "create", "audit", "--topic", "work", "--max-deliveries", "1",
		"--dead-letter-topic", "dead")
	if got := receive(t, nodes[0], "audit", "--nack"); got != 2*total {
		t.Fatalf("audit received %d records, want %d", got, 2*total)
	}
	wait.NoError(t, 30*time.Second, "audit's records dead-lettered", func() error {
		var d queueDescribe
		r := nodes[0].mustCLI(nil, "queue", "describe", "audit", "--topic", "work", "--output", "json")
		if err := json.Unmarshal([]byte(r.Stdout), &d); err != nil {
			return err
		}
		if d.DeadLettered != 2*total {
			return fmt.Errorf("%+v", d)
		}
		return nil
	})
	dd, err := describeTopic(nodes[0].node, "dead")
	if err != nil {
		t.Fatal(err)
	}
	var other *clusterNode
	for _, n := range nodes {
		if !slices.Contains(dd.Partitions[0].Replicas, n.ID) {
			other = n
		}
	}
	r = other.mustCLI(nil, "queue", "redrive", "audit", "--topic", "work", "--output", "json")
	if !strings.Contains(r.Stdout, fmt.Sprintf(`"redriven": %d`, 2*total)) {
		t.Fatalf("redrive through %s (dead is on %v): %s", other.ID, dd.Partitions[0].Replicas, r.Stdout)
	}
	r = other.mustCLI(nil, "queue", "list", "--topic", "work")
	if r.Stdout != "work\taudit\nwork\tworkers\n" {
		t.Fatalf("queue list: %q", r.Stdout)
	}
}

// receive leases what a queue group has through node n and settles it
// with the given flag; it returns how many records came.
func receive(t *testing.T, n *clusterNode, group, settle string) int {
	t.Helper()
	r := n.mustCLI(nil, "queue", "receive", group, "--topic", "work", "--max", "10000", "--timeout", "3s",
		settle, "--output", "json")
	return len(parseRecords(t, r.Stdout))
}

// partitionsOf returns the partitions that hold records of a topic.
func partitionsOf(t *testing.T, n *clusterNode, topic string) map[int32]int {
	t.Helper()
	r := n.mustCLI(nil, "consume", topic, "--from-beginning", "--output", "json", "--timeout", "2s")
	out := map[int32]int{}
	for _, rec := range parseRecords(t, r.Stdout) {
		out[rec.Partition]++
	}
	return out
}
