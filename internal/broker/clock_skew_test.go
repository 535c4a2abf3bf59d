package broker

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/wait"

	"github.com/stratalog/strata/api/record"
	"github.com/stratalog/strata/cluster"
	"github.com/stratalog/strata/internal/queue"
	"github.com/stratalog/strata/internal/topic"
)

// skewedClocks gives each node of a test cluster a wall clock that runs at
// real time plus its own offset. time.Now().Add keeps the monotonic
// reading, as a real machine's skewed clock does: only the wall time is off.
type skewedClocks []atomic.Int64 // offsets, ns

func (sc skewedClocks) set(i int, _ *cluster.NodeConfig, c *Config) {
	c.clock = func() time.Time { return time.Now().Add(time.Duration(sc[i].Load())) }
	c.Queue.TickInterval = 20 * time.Millisecond
}

// TestQueueClockSkewFailover: a backoff after a nack and a delivery delay
// are times on the wall clock of the node (or producer) that set them;
// after a failover to a node whose clock is off by skew, the record is
// due that much earlier or later, and not more. A lease is reloaded by the
// new leader as now+ackTimeout on its monotonic clock, whatever the skew.
func TestQueueClockSkewFailover(t *testing.T) {
	for _, skew := range []time.Duration{1500 * time.Millisecond, -1500 * time.Millisecond} {
		t.Run("new leader "+skew.String(), func(t *testing.T) {
			t.Parallel() // most of each is waiting
			testQueueSkewFailover(t, skew)
		})
	}
}

func testQueueSkewFailover(t *testing.T, skew time.Duration) {
	const (
		delay      = 3 * time.Second // nack delay and deliver-at, on the old leader's clock
		ackTimeout = 3 * time.Second
		// late allows for the millisecond the times are kept in, the
		// receive's round trip through raft and a loaded machine.
		late = 400 * time.Millisecond
	)
	clocks := make(skewedClocks, 3)
	nodes := startBrokerClusterWith(t, 3, clocks.set)
	ml := metaLeaderOf(t, nodes)
	ctx := ctxT(t)
	if _, err := ml.b.CreateTopic(ctx, "jobs", topic.Config{Partitions: 1, ReplicationFactor: 3}); err != nil {
		t.Fatal(err)
	}
	mustQueue(t, ml.b, "jobs", "workers", queue.Settings{AckTimeoutMs: ackTimeout.Milliseconds(), MaxDeliveries: 10})
	old, _ := partitionLeader(t, nodes, "jobs")
	var rest []*clusterBroker // either may lead next: both run skew ahead of old
	for i, cb := range nodes {
		if cb != old {
			clocks[i].Store(int64(skew))
			rest = append(rest, cb)
		}
	}
	for _, cb := range rest {
		wait.For(t, 10*time.Second, cb.id+"'s replica", func() bool { return cb.hasReplicas(topicOf(t, old.b, "jobs")) })
	}

	// Offset 0 is nacked, 1 stays leased, 2 is delayed by the producer,
	// whose clock is the old leader's.
	producedAt := time.Now() // the old leader's clock reads the same
	recs := []record.Record{{Value: []byte("nacked")}, {Value: []byte("leased")}}
	recs = append(recs, record.Record{Value: []byte("delayed"), Headers: []record.Header{{Key: HeaderDeliverAt,
		Value: []byte(strconv.FormatInt(producedAt.Add(delay).UnixMilli(), 10))}}})
	produceRecords(t, old.b, "jobs", recs)
	got, err := old.b.QueueReceive(ctx, ReceiveRequest{Topic: "jobs", Group: "workers", Member: "m1", Partition: 0, Max: 3})
	if err != nil || len(got) != 2 || got[0].Offset != 0 || got[1].Offset != 1 {
		t.Fatalf("receive on the old leader: %v %v, want offsets 0 and 1", got, err)
	}
	nackedAt := time.Now()
	if n, err := old.b.QueueNack(ctx, SettleRequest{Topic: "jobs", Group: "workers", Member: "m1",
		Offsets: map[int32][]int64{0: {0}}, Delay: delay}); n != 1 || err != nil {
		t.Fatalf("nack: %d %v", n, err)
	}

	// Fail over: the old leader stops (its leases are gone with it).
	if err := errors.Join(old.b.Close(), old.node.Close()); err != nil {
		t.Fatalf("close the old leader: %v", err)
	}
	movedAt := time.Now()
	// The two left may hand leadership between them (to the group's
	// preferred leader): their clocks agree, so only a lease, reloaded at
	// every move, sees it.
	lastMove, leader := movedAt, ""
	first := map[int64]time.Time{} // offset -> real time of its first delivery after the failover
	for len(first) < 3 && time.Since(movedAt) < 3*delay {
		nu, _ := partitionLeader(t, rest, "jobs")
		if nu.id != leader {
			lastMove, leader = time.Now(), nu.id
		}
		msgs, err := nu.b.QueueReceive(ctx, ReceiveRequest{Topic: "jobs", Group: "workers", Member: "m2", Partition: 0, Max: 3, Wait: 200 * time.Millisecond})
		if err != nil {
			t.Logf("receive on %s: %v", nu.id, err)
			continue
		}
		for _, m := range msgs {
			if _, ok := first[m.Offset]; !ok {
				first[m.Offset] = time.Now()
			}
		}
	}
	// check: offset off was first delivered between lo and hi after ref.
	check := func(what string, off int64, ref time.Time, lo, hi time.Duration) {
		t.Helper()
		at, ok := first[off]
		if !ok {
			t.Errorf("%s (offset %d) never delivered on the new leader", what, off)
			return
		}
		d := at.Sub(ref)
		if d < lo || d > hi {
			t.Errorf("%s (offset %d) delivered %v after its reference, want %v to %v", what, off, d.Round(time.Millisecond), lo, hi)
			return
		}
		t.Logf("%s (offset %d) delivered %v after its reference, within %v to %v", what, off, d.Round(time.Millisecond), lo, hi)
	}
	// The new leader's clock is skew ahead of the old one's: what was due
	// at T on the old clock is due skew sooner in real time (the
	// millisecond the times are kept in may make it up to 1 ms sooner).
	check("nacked", 0, nackedAt, delay-skew-time.Millisecond, delay-skew+late)
	check("delayed", 2, producedAt, delay-skew-time.Millisecond, delay-skew+late)
	// Leases are reloaded at the new leader's first receive, after the
	// old leader stopped.
	check("leased", 1, movedAt, ackTimeout, lastMove.Sub(movedAt)+ackTimeout+late)
}

// partitionLeader waits for the leader of partition 0 of topic and returns
// it with its data group.
func partitionLeader(t *testing.T, nodes []*clusterBroker, topic string) (*clusterBroker, *cluster.DataGroup) {
	t.Helper()
	var leader *clusterBroker
	var dg *cluster.DataGroup
	wait.For(t, 10*time.Second, "a leader of "+topic+"/0 holding it", func() bool {
		for _, cb := range nodes {
			tp, ok := cb.node.MetaFSM.Topic(topic)
			if !ok {
				continue
			}
			g := cb.node.DataGroup(tp.Partitions[0].DataGroup)
			if g != nil && g.Group.IsLeader() && g.FSM.Partition(cluster.PartKey{TopicID: tp.ID}) != nil {
				leader, dg = cb, g
				return true
			}
		}
		return false
	})
	return leader, dg
}

func topicOf(t *testing.T, b *Broker, name string) topic.Topic {
	t.Helper()
	tp, err := b.Topic(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return tp
}

func produceRecords(t *testing.T, b *Broker, topic string, recs []record.Record) {
	t.Helper()
	for i := range recs {
		recs[i].Timestamp = time.Now()
	}
	batch, err := record.AppendBatch(nil, recs, record.BatchOptions{ProducerID: -1, BaseSequence: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Produce(ctxT(t), topic, 0, batch); err != nil {
		t.Fatalf("produce: %v", err)
	}
}
