package broker

import (
	"errors"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/wait"

	"github.com/stratalog/strata/api/record"
)

// TestQueueReceiveStaleRoute: a receive for a named partition with
// AlsoLed, sent to a node that does not lead it (the client's metadata is
// stale), answers NotLeader naming the leader, instead of serving only what
// that node leads: with Partition -1 a client that routed a partition to a
// node leading another one never heard that its partition had moved, and
// the partition's records waited for the client's metadata to expire
// (faulttest's minority split: a queue stuck for 90 s).
func TestQueueReceiveStaleRoute(t *testing.T) {
	rc := startRedriveCluster(t)
	tp, _ := rc.leader.node.MetaFSM.Topic("jobs")
	var leader, follower *clusterBroker
	wait.For(t, 10*time.Second, "a leader of jobs/0", func() bool {
		leader, follower = nil, nil
		for _, cb := range rc.nodes {
			if dg := cb.node.DataGroup(tp.Partitions[0].DataGroup); dg != nil && dg.Group.IsLeader() {
				leader = cb
			} else {
				follower = cb
			}
		}
		return leader != nil && follower != nil
	})
	batch, err := record.AppendBatch(nil, []record.Record{{Value: []byte("x"), Timestamp: time.Now()}}, record.BatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leader.b.Produce(ctxT(t), "jobs", 0, batch); err != nil {
		t.Fatal(err)
	}
	req := ReceiveRequest{Topic: "jobs", Group: "g", Member: "m", Partition: 0, AlsoLed: true, Max: 10}
	_, err = follower.b.QueueReceive(ctxT(t), req)
	var nl *NotLeaderError
	if !errors.As(err, &nl) || nl.LeaderID != leader.node.ID() {
		t.Fatalf("receive of jobs/0 on a follower: %v, want NotLeader naming %s", err, leader.node.ID())
	}
	req.Wait = 5 * time.Second
	msgs, err := leader.b.QueueReceive(ctxT(t), req)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("receive on the leader: %d records, %v", len(msgs), err)
	}
}
