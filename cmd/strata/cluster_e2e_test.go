package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/wait"
)

// Issue 4, test 1: a 3-node cluster; a topic with 6 partitions and
// replication factor 3 gets its leaders spread 2/2/2.
func TestE2EClusterLeadersSpread(t *testing.T) {
	nodes := startCluster(t, 3)
	nodes[1].mustCLI(nil, "topic", "create", "spread", "--partitions", "6", "--replication-factor", "3")
	wait.NoError(t, 30*time.Second, "leaders 2/2/2", func() error {
		d, err := describeTopic(nodes[2].node, "spread")
		if err != nil {
			return err
		}
		c := leaderCounts(d)
		for _, n := range nodes {
			if c[n.ID] != 2 {
				return fmt.Errorf("leaders per node %v", c)
			}
		}
		for _, p := range d.Partitions {
			if len(p.Replicas) != 3 || len(p.InSync) != 3 {
				return fmt.Errorf("partition %d: replicas %v in sync %v", p.Partition, p.Replicas, p.InSync)
			}
		}
		return nil
	})
	st, err := clusterStatus(nodes[0].node)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range st.Nodes {
		if n.State != "alive" || n.Leads != 2 || n.Follows != 4 {
			t.Errorf("node %s: state %s, leads %d, follows %d; want alive, 2, 4", n.ID, n.State, n.Leads, n.Follows)
		}
	}
}
