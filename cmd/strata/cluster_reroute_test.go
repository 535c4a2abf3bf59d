package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/wait"
)

// TestE2EClusterProduceAfterLeaderDies: a producer that starts while the
// nodes still name a leader that just died (its metadata points at a
// closed port) reads the metadata again on each failed connection, finds
// the new leader and writes everything, with the default retries. Before
// the fix it dialled the dead address until its retries ran out.
func TestE2EClusterProduceAfterLeaderDies(t *testing.T) {
	nodes := startCluster(t, 3)
	nodes[0].mustCLI(nil, "topic", "create", "reroute", "--partitions", "1", "--replication-factor", "3")
	var leader, other *clusterNode
	wait.NoError(t, 30*time.Second, "a leader of reroute/0", func() error {
		d, err := describeTopic(nodes[0].node, "reroute")
		if err != nil {
			return err
		}
		if leader = nodeByID(nodes, d.Partitions[0].Leader); leader == nil {
			return fmt.Errorf("no leader yet")
		}
		return nil
	})
	for _, n := range nodes {
		if n != leader {
			other = n
		}
	}
	leader.kill9()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var in strings.Builder
	for i := range 100 {
		fmt.Fprintf(&in, "r-%d\n", i)
	}
	r := other.cli(ctx, strings.NewReader(in.String()), "produce", "reroute")
	if r.Code != 0 || !strings.Contains(r.Stderr, "produced 100 records") {
		t.Fatalf("produce after the leader died: exit %d\nstdout:\n%s\nstderr:\n%s", r.Code, r.Stdout, r.Stderr)
	}
	r = other.mustCLI(nil, "consume", "reroute", "--from-beginning", "--timeout", "3s")
	if got := strings.Count(r.Stdout, "\n"); got != 100 {
		t.Fatalf("consumed %d records after the leader died, want 100\nstderr:\n%s", got, r.Stderr)
	}
}

// TestE2EClusterConsumeAfterLeaderDies: a consumer that starts while the
// nodes still name a leader that just died reads every partition's
// records, the dead leader's too once another replica leads, within its
// idle timeout.
func TestE2EClusterConsumeAfterLeaderDies(t *testing.T) {
	nodes := startCluster(t, 3)
	nodes[0].mustCLI(nil, "topic", "create", "reread", "--partitions", "3", "--replication-factor", "3")
	var in strings.Builder
	for i := range 300 {
		fmt.Fprintf(&in, "r-%d\n", i)
	}
	nodes[0].mustCLI(strings.NewReader(in.String()), "produce", "reread")
	d, err := describeTopic(nodes[0].node, "reread")
	if err != nil {
		t.Fatal(err)
	}
	leader := nodeByID(nodes, d.Partitions[0].Leader)
	if leader == nil {
		t.Fatalf("no leader of reread/0: %+v", d)
	}
	var other *clusterNode
	for _, n := range nodes {
		if n != leader {
			other = n
		}
	}
	leader.kill9()
	r := other.mustCLI(nil, "consume", "reread", "--from-beginning", "--timeout", "3s")
	if got := strings.Count(r.Stdout, "\n"); got != 300 {
		t.Fatalf("consumed %d records after a leader died, want 300\nstderr:\n%s", got, r.Stderr)
	}
}
