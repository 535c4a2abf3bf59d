package broker

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/wait"

	"github.com/stratalog/strata/cluster"
	"github.com/stratalog/strata/internal/queue"
	"github.com/stratalog/strata/internal/topic"
)

// stallingPeers is localPeers whose describe calls to the stalled
// addresses never answer: they wait for the caller's deadline, as a
// leader that hangs (or a network that drops its packets) would make
// them.
type stallingPeers struct {
	*localPeers
	mu      sync.Mutex
	stalled map[string]bool
}

func (p *stallingPeers) stall(addr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stalled[addr] = true
}

func (p *stallingPeers) wait(ctx context.Context, addr string) error {
	p.mu.Lock()
	stalled := p.stalled[addr]
	p.mu.Unlock()
	if !stalled {
		return nil
	}
	<-ctx.Done()
	return ctx.Err()
}

func (p *stallingPeers) PartitionLags(ctx context.Context, addr, group string, parts []PartitionLag) ([]PartitionLag, error) {
	if err := p.wait(ctx, addr); err != nil {
		return nil, err
	}
	return p.localPeers.PartitionLags(ctx, addr, group, parts)
}

func (p *stallingPeers) DescribeQueueLed(ctx context.Context, addr, topic, group string) (QueueDescription, error) {
	if err := p.wait(ctx, addr); err != nil {
		return QueueDescription{}, err
	}
	return p.localPeers.DescribeQueueLed(ctx, addr, topic, group)
}

// TestDescribeBoundsASilentLeader: a describe on one node asks the other
// node for the partitions it leads; when that node stops answering, the
// describe still answers within the describe timeout, with those
// partitions unknown and the partitions led here measured as before.
func TestDescribeBoundsASilentLeader(t *testing.T) {
	const timeout = 300 * time.Millisecond
	peers := &stallingPeers{localPeers: &localPeers{m: map[string]*Broker{}}, stalled: map[string]bool{}}
	nodes := startBrokerClusterWith(t, 2, func(_ int, _ *cluster.NodeConfig, bc *Config) { bc.DescribeTimeout = timeout },
		func(cb *clusterBroker) {
			peers.add(cb)
			cb.b.SetPeers(peers)
		})
	ctx := ctxT(t)
	ml := metaLeaderOf(t, nodes)
	wait.For(t, 20*time.Second, "topic spread", func() bool {
		_, err := ml.b.CreateTopic(ctx, "spread", topic.Config{Partitions: 4, ReplicationFactor: 1})
		return err == nil || errors.Is(err, topic.ErrTopicExists)
	})
	if _, err := ml.b.CreateQueueGroup(ctx, "spread", "q", queue.Settings{AckTimeoutMs: 600000}); err != nil {
		t.Fatal(err)
	}
	asker, other := nodes[0], nodes[1]
	var tp topic.Topic
	wait.For(t, 20*time.Second, "every partition's leader known on both nodes, and made there", func() bool {
		var err error
		if tp, err = asker.b.knownTopic("spread"); err != nil {
			return false
		}
		for i, a := range tp.Partitions {
			id, addr := asker.b.groupLeader(a.DataGroup)
			if id == "" || (id != asker.id && addr == "") {
				return false
			}
			holder := asker
			if id == other.id {
				holder = other
			}
			if dg := holder.node.DataGroup(a.DataGroup); dg == nil || dg.FSM.Partition(cluster.PartKey{TopicID: tp.ID, Partition: int32(i)}) == nil {
				return false
			}
		}
		return true
	})
	led := map[int32]*clusterBroker{}
	for i, a := range tp.Partitions {
		led[int32(i)] = asker
		if id, _ := asker.b.groupLeader(a.DataGroup); id == other.id {
			led[int32(i)] = other
		}
	}
	remote := 0
	for _, cb := range led {
		if cb == other {
			remote++
		}
	}
	if remote == 0 || remote == 4 {
		t.Fatalf("%d of 4 partitions are led by %s: want some here and some there", remote, other.id)
	}
	var offs []topic.PartitionOffset
	for p, cb := range led {
		produceN(t, cb.b, "spread", p, 5, 0, nil)
		if _, err := cb.b.QueueReceive(ctx, ReceiveRequest{Topic: "spread", Group: "q", Member: "m", Partition: p, Max: 2}); err != nil {
			t.Fatal(err)
		}
		offs = append(offs, topic.PartitionOffset{Topic: "spread", Partition: p, Offset: 1})
	}
	if err := ml.b.CommitOffsets(ctx, "g", "", 0, offs); err != nil {
		t.Fatal(err)
	}

	check := func(stalled bool) {
		t.Helper()
		start := time.Now()
		g, gerr := asker.b.DescribeGroup(ctx, "g")
		q, qerr := asker.b.DescribeQueueGroup(ctx, "spread", "q")
		if err := errors.Join(gerr, qerr); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); stalled && d > 2*time.Second+4*timeout {
			t.Fatalf("the describes took %v with a silent leader (timeout %v)", d, timeout)
		}
		if len(g.Partitions) != 4 || len(q.Partitions) != 4 {
			t.Fatalf("described %d group partitions and %d queue partitions, want 4", len(g.Partitions), len(q.Partitions))
		}
		for i := range 4 {
			gp, qp := g.Partitions[i], q.Partitions[i]
			unknown := stalled && led[int32(i)] == other
			wantG := PartitionLag{Topic: "spread", Partition: int32(i), Committed: 1, EndOffset: 5, LagRecords: 4}
			wantQ := QueuePartition{Partition: int32(i), HighWatermark: 5, Backlog: 5, Leased: 2, Available: 3, Deliveries: 2}
			if unknown {
				wantG.setUnknown()
				wantQ = unknownQueuePartition(int32(i))
			}
			gp.LagSeconds = max(gp.LagSeconds, -1) // not compared when known
			if !unknown {
				gp.LagSeconds = 0
			}
			qp.OldestUnacked, wantQ.OldestUnacked = 0, 0
			if gp != wantG || qp != wantQ {
				t.Fatalf("partition %d (led by %s, that node silent: %v) described on %s:\ngroup %+v\nwant  %+v\nqueue %+v\nwant  %+v",
					i, led[int32(i)].id, stalled, asker.id, gp, wantG, qp, wantQ)
			}
		}
		if want := int64(2 * len(led)); !stalled && q.Members["m"] != want {
			t.Fatalf("members %v, want m with %d leases", q.Members, want)
		}
	}
	check(false)
	peers.stall(other.node.Config().GRPCAddr)
	check(true)
}
