package broker

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stratalog/strata/api/record"
	"github.com/stratalog/strata/cluster"
	"github.com/stratalog/strata/internal/queue"
	"github.com/stratalog/strata/internal/topic"
	"github.com/stratalog/strata/segment"
)

// queueNode is a single-node cluster with a broker whose configuration the
// test chooses, reopenable on the same directory (a restart).
type queueNode struct {
	t    testing.TB
	dir  string
	cfg  Config
	node *cluster.Node
	b    *Broker
	// countsInMemory switches the broker's delivery-count failpoint on at
	// every open (see queueManager.countsInMemory).
	countsInMemory bool
}

func openQueueNode(t testing.TB, dir string, mutate func(*Config)) *queueNode {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Queue.TickInterval = 20 * time.Millisecond
	if mutate != nil {
		mutate(&cfg)
	}
	qn := &queueNode{t: t, dir: dir, cfg: cfg}
	qn.open()
	t.Cleanup(qn.close)
	return qn
}

func (qn *queueNode) open() {
	t := qn.t
	t.Helper()
	var b *Broker
	rc := cluster.DefaultGroupConfig()
	rc.SnapshotThreshold = 1 << 20
	rc.HeartbeatTimeout, rc.ElectionTimeout, rc.LeaderLeaseTimeout = 200*time.Millisecond, 200*time.Millisecond, 100*time.Millisecond
	node, err := cluster.OpenNode(context.Background(), cluster.NodeConfig{
		ID: "n1", Dir: qn.dir, ClusterAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:1", DataGroups: 2,
		Segment: func(tc topic.Config) segment.Config {
			c := segment.DefaultConfig()
			c.MaxSegmentBytes = 8 << 20
			c.MaxIndexBytes = 1 << 18
			c.Fsync = segment.FsyncNever
			if c.RetentionBytes = tc.RetentionBytes; c.RetentionBytes > 0 {
				c.MaxSegmentBytes = 16 << 10 // so that retention tests delete segments soon
			}
			return c
		},
		Raft: rc,
	}, func() {
		if b != nil {
			b.NotifyMetadataChanged()
		}
	})
	if err != nil {
		t.Fatalf("open node: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := node.Start(ctx); err != nil {
		t.Fatalf("start node: %v", err)
	}
	if b, err = New(qn.cfg, node); err != nil {
		t.Fatal(err)
	}
	b.queue.countsInMemory = qn.countsInMemory
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	qn.node, qn.b = node, b
}

func (qn *queueNode) close() {
	if qn.b == nil {
		return
	}
	if err := qn.b.Close(); err != nil {
		qn.t.Errorf("close broker: %v", err)
	}
	if err := qn.node.Close(); err != nil {
		qn.t.Errorf("close node: %v", err)
	}
	qn.b, qn.node = nil, nil
}

func (qn *queueNode) restart() {
	qn.t.Helper()
	qn.close()
	qn.open()
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// produceN writes n records "v-i" (key "k-(i%keys)" when keys > 0) to a
// partition, in batches of 500.
func produceN(t testing.TB, b *Broker, topic string, p int32, n, keys int, hdr func(i int) []record.Header) {
	t.Helper()
	for i := 0; i < n; {
		var recs []record.Record
		for ; i < n && len(recs) < 500; i++ {
			r := record.Record{Value: []byte(fmt.Sprintf("v-%d", i)), Timestamp: time.Now()}
			if keys > 0 {
				r.Key = []byte(fmt.Sprintf("k-%d", i%keys))
			}
			if hdr != nil {
				r.Headers = hdr(i)
			}
			recs = append(recs, r)
		}
		batch, err := record.AppendBatch(nil, recs, record.BatchOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Produce(ctxT(t), topic, p, batch); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
}

func mustTopic(t testing.TB, b *Broker, name string, parts int32) {
	t.Helper()
	if _, err := b.CreateTopic(ctxT(t), name, topic.Config{Partitions: parts}); err != nil {
		t.Fatalf("create topic: %v", err)
	}
}

func mustQueue(t testing.TB, b *Broker, topic, group string, s queue.Settings) queue.Def {
	t.Helper()
	d, err := b.CreateQueueGroup(ctxT(t), topic, group, s)
	if err != nil {
		t.Fatalf("create queue group: %v", err)
	}
	return d
}

func receive(t testing.TB, b *Broker, topic, group, member string, n int, wait time.Duration) []QueueMessage {
	t.Helper()
	msgs, err := b.QueueReceive(ctxT(t), ReceiveRequest{Topic: topic, Group: group, Member: member, Partition: -1, Max: n, Wait: wait})
	if err != nil {
		t.Fatalf("receive: %v", err)
	}
	return msgs
}

func refs(msgs ...QueueMessage) map[int32][]int64 {
	out := map[int32][]int64{}
	for _, m := range msgs {
		out[m.Partition] = append(out[m.Partition], m.Offset)
	}
	return out
}

// dlqRecords reads every record of a topic's partition 0.
func dlqRecords(t testing.TB, b *Broker, topic string) []record.Record {
	t.Helper()
	var out []record.Record
	from := int64(0)
	for {
		res, err := b.Fetch(ctxT(t), topic, 0, from, 1<<20, 0)
		if err != nil {
			t.Fatalf("fetch %s: %v", topic, err)
		}
		if len(res.Records) == 0 {
			return out
		}
		next, err := record.DecodeBatchesFrom(res.Records, from, func(r record.Record) bool {
			out = append(out, r)
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
		from = next
	}
}

func header(r record.Record, k string) string {
	for _, h := range r.Headers {
		if h.Key == k {
			return string(h.Value)
		}
	}
	return ""
}
