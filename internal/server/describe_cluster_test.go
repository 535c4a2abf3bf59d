package server_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/wait"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/stratalog/strata/api/record"
	stratav1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/internal/agent"
	"github.com/stratalog/strata/internal/queue"
	"github.com/stratalog/strata/internal/topic"
)

// grpcClient returns a client of a's gRPC API, closed at the test's end.
func grpcClient(t *testing.T, a *agent.Agent) stratav1.StrataClient {
	t.Helper()
	conn, err := grpc.NewClient(a.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return stratav1.NewStrataClient(conn)
}

// metaLeader returns the agent that leads the metadata group.
func metaLeader(t *testing.T, as [2]*agent.Agent) *agent.Agent {
	t.Helper()
	var id string
	wait.For(t, 30*time.Second, "a metadata leader", func() bool {
		id = as[0].Broker().ClusterStatus().MetadataLeader
		return id != ""
	})
	for _, a := range as {
		if a.Broker().NodeID() == id {
			return a
		}
	}
	t.Fatalf("metadata leader %q is not one of the nodes", id)
	return nil
}

// createTopic creates a topic through the metadata leader and waits until
// every partition has a leader that both nodes know.
func createTopic(t *testing.T, ctx context.Context, as [2]*agent.Agent, name string, cfg topic.Config) topic.Topic {
	t.Helper()
	ml := metaLeader(t, as)
	wait.For(t, 30*time.Second, "topic "+name, func() bool {
		_, err := ml.Broker().CreateTopic(ctx, name, cfg)
		return err == nil || errors.Is(err, topic.ErrTopicExists)
	})
	var tp topic.Topic
	wait.For(t, 30*time.Second, "the leaders of "+name+" known on both nodes", func() bool {
		for _, a := range as {
			var err error
			if tp, err = a.Broker().Topic(ctx, name); err != nil {
				return false
			}
			for _, ps := range a.Broker().PartitionStates(tp) {
				if ps.LeaderID == "" || ps.LeaderAddr == "" {
					return false
				}
			}
		}
		return true
	})
	return tp
}

// leaderOf returns the agent that leads partition p of tp.
func leaderOf(t *testing.T, as [2]*agent.Agent, tp topic.Topic, p int32) (leader, other *agent.Agent) {
	t.Helper()
	id := as[0].Broker().PartitionStates(tp)[p].LeaderID
	if as[0].Broker().NodeID() == id {
		return as[0], as[1]
	}
	return as[1], as[0]
}

// produceTo appends n records to partition p through its leader, retrying
// while the partition is still being made there.
func produceTo(t *testing.T, ctx context.Context, cl stratav1.StrataClient, name string, p int32, n int) {
	t.Helper()
	var recs []record.Record
	for i := range n {
		recs = append(recs, record.Record{Value: fmt.Appendf(nil, "r%d", i), Timestamp: time.Now().Add(-time.Minute)})
	}
	batch, err := record.AppendBatch(nil, recs, record.BatchOptions{ProducerID: -1})
	if err != nil {
		t.Fatal(err)
	}
	wait.For(t, 20*time.Second, fmt.Sprintf("a produce to %s/%d", name, p), func() bool {
		_, err := cl.Produce(ctx, &stratav1.ProduceRequest{Topic: name, Partition: p, Batch: batch})
		return err == nil
	})
}

// TestDescribeAsksTheLeaders: a node describes a consumer group and a
// queue group with each partition's numbers as its leader has them, for a
// partition it holds no replica of (replication factor 1 elsewhere: the
// end offset and the lag) and for one it follows (the leases, which only
// the leader holds); and when that leader is gone, the describe still
// answers, with those partitions marked unknown.
func TestDescribeAsksTheLeaders(t *testing.T) {
	as := startTwoNodes(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// A queue group on a partition both nodes hold: leased on its leader.
	work := createTopic(t, ctx, as, "work", topic.Config{Partitions: 1, ReplicationFactor: 2})
	leader, asker := leaderOf(t, as, work, 0)
	if _, err := metaLeader(t, as).Broker().CreateQueueGroup(ctx, "work", "w", queue.Settings{AckTimeoutMs: 600000}); err != nil {
		t.Fatal(err)
	}
	lc, ac := grpcClient(t, leader), grpcClient(t, asker)
	produceTo(t, ctx, lc, "work", 0, 5)
	got, err := lc.QueueReceive(ctx, &stratav1.QueueReceiveRequest{Topic: "work", Group: "w", MemberId: "m1", Partition: 0, MaxMessages: 2})
	if err != nil || len(got.Messages) != 2 {
		t.Fatalf("receive on the leader: %d messages, %v", len(got.GetMessages()), err)
	}

	// A consumer group on a partition only the same leader holds.
	lagged := createTopic(t, ctx, as, "lagged", topic.Config{Partitions: 4, ReplicationFactor: 1})
	p := int32(-1)
	for _, ps := range as[0].Broker().PartitionStates(lagged) {
		if ps.LeaderID == leader.Broker().NodeID() {
			p = ps.Partition
		}
	}
	if p < 0 {
		t.Fatalf("no partition of %q is on %s", "lagged", leader.Broker().NodeID())
	}
	produceTo(t, ctx, lc, "lagged", p, 5)
	if err := metaLeader(t, as).Broker().CommitOffsets(ctx, "readers", "", 0,
		[]topic.PartitionOffset{{Topic: "lagged", Partition: p, Offset: 2}}); err != nil {
		t.Fatal(err)
	}

	g, err := ac.DescribeGroup(ctx, &stratav1.DescribeGroupRequest{Group: "readers"})
	if err != nil {
		t.Fatal(err)
	}
	gp := groupPartition(t, g, "lagged", p)
	if gp.CommittedOffset != 2 || gp.EndOffset != 5 || gp.LagRecords != 3 || gp.LagSeconds < 50 || gp.Unknown {
		t.Fatalf("%s describes the group's partition %d (on %s) as %v; want committed 2, end 5, lag 3 records, about 60 s",
			asker.Broker().NodeID(), p, leader.Broker().NodeID(), gp)
	}
	q, err := ac.DescribeQueueGroup(ctx, &stratav1.DescribeQueueGroupRequest{Topic: "work", Group: "w"})
	if err != nil {
		t.Fatal(err)
	}
	qp := queuePartition(t, q, 0)
	if qp.HighWatermark != 5 || qp.Backlog != 5 || qp.Leased != 2 || qp.Available != 3 || qp.Deliveries != 2 || qp.Unknown ||
		len(q.Members) != 1 || q.Members[0].MemberId != "m1" || q.Members[0].Leased != 2 {
		t.Fatalf("%s describes the queue group's partition 0 (led by %s) as %v, members %v; want end 5, backlog 5, 2 leased to m1, 3 available",
			asker.Broker().NodeID(), leader.Broker().NodeID(), qp, q.Members)
	}

	// The leader goes: its partitions are unknown, the rest still answers.
	if err := leader.Close(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if g, err = ac.DescribeGroup(ctx, &stratav1.DescribeGroupRequest{Group: "readers"}); err != nil {
		t.Fatalf("describe the group with its partition's leader gone: %v", err)
	}
	if gp = groupPartition(t, g, "lagged", p); !gp.Unknown || gp.EndOffset != -1 || gp.LagRecords != -1 || gp.CommittedOffset != 2 {
		t.Fatalf("with its leader gone, partition %d of the group is %v; want unknown (-1) with committed 2", p, gp)
	}
	if q, err = ac.DescribeQueueGroup(ctx, &stratav1.DescribeQueueGroupRequest{Topic: "work", Group: "w"}); err != nil {
		t.Fatalf("describe the queue group with its partition's leader gone: %v", err)
	}
	if qp = queuePartition(t, q, 0); !qp.Unknown || qp.Leased != -1 || qp.Available != -1 {
		t.Fatalf("with its leader gone, partition 0 of the queue group is %v; want unknown (-1)", qp)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Fatalf("the describes took %v with a leader gone", d)
	}
}

func groupPartition(t *testing.T, g *stratav1.DescribeGroupResponse, name string, p int32) *stratav1.GroupPartitionLag {
	t.Helper()
	for _, gp := range g.Partitions {
		if gp.Topic == name && gp.Partition == p {
			return gp
		}
	}
	t.Fatalf("the group's description has no %s/%d: %v", name, p, g.Partitions)
	return nil
}

func queuePartition(t *testing.T, q *stratav1.DescribeQueueGroupResponse, p int32) *stratav1.QueuePartitionState {
	t.Helper()
	for _, qp := range q.Partitions {
		if qp.Partition == p {
			return qp
		}
	}
	t.Fatalf("the queue group's description has no partition %d: %v", p, q.Partitions)
	return nil
}
