package broker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/wait"

	"github.com/stratalog/strata/api/record"
	"github.com/stratalog/strata/cluster"
	"github.com/stratalog/strata/internal/topic"
	"github.com/stratalog/strata/segment"
)

// metaGate holds a node's metadata apply back. While it is held, the
// metadata FSM's change callback blocks after the first command it reports,
// so raft keeps the commands that follow (replicated and committed, but not
// applied) until the gate opens: the node's view lags, as a slow follower's
// does, for as long as the test wants.
type metaGate struct {
	mu      sync.Mutex
	release chan struct{} // nil while open
	blocked chan struct{} // closed when a callback blocks
}

func (g *metaGate) hold() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.release, g.blocked = make(chan struct{}), make(chan struct{})
}

// open releases the callback; it may be called any number of times.
func (g *metaGate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.release != nil {
		close(g.release)
		g.release = nil
	}
}

// pass is the metadata FSM's change callback's first step.
func (g *metaGate) pass() {
	g.mu.Lock()
	rel, blk := g.release, g.blocked
	if rel != nil {
		select {
		case <-blk:
		default:
			close(blk)
		}
	}
	g.mu.Unlock()
	if rel != nil {
		<-rel
	}
}

// waitBlocked waits until a callback blocks in the gate.
func (g *metaGate) waitBlocked(t *testing.T) {
	t.Helper()
	g.mu.Lock()
	blk := g.blocked
	g.mu.Unlock()
	select {
	case <-blk:
	case <-time.After(10 * time.Second):
		t.Fatal("the node did not apply a metadata command within 10 s")
	}
}

// clusterBroker is one node of an in-process cluster with its broker.
type clusterBroker struct {
	id   string
	node *cluster.Node
	b    *Broker
	gate *metaGate
	// live is b once started, for the metadata FSM's callback (another
	// goroutine).
	live atomic.Pointer[Broker]
}

// startBrokerCluster starts n nodes on 127.0.0.1 (raft over TCP, serf
// gossip), each with a broker, and waits until every node knows all of them.
// Each of before runs on each node's broker before it starts.
func startBrokerCluster(t *testing.T, n int, before ...func(*clusterBroker)) []*clusterBroker {
	t.Helper()
	return startBrokerClusterWith(t, n, nil, before...)
}

// startBrokerClusterWith is startBrokerCluster with mutate applied to the
// node and broker configurations of node i (from 0).
func startBrokerClusterWith(t *testing.T, n int, mutate func(i int, nc *cluster.NodeConfig, bc *Config), before ...func(*clusterBroker)) []*clusterBroker {
	t.Helper()
	var out []*clusterBroker
	for i := range n {
		cb := &clusterBroker{id: fmt.Sprintf("n%d", i+1), gate: &metaGate{}}
		rc := cluster.DefaultGroupConfig()
		rc.HeartbeatTimeout, rc.ElectionTimeout, rc.LeaderLeaseTimeout = 500*time.Millisecond, 500*time.Millisecond, 250*time.Millisecond
		rc.SnapshotThreshold = 1 << 20
		rc.NoSync = true
		g := cluster.DefaultMembershipConfig()
		g.BindAddr = "127.0.0.1:0"
		g.ProbeInterval, g.ProbeTimeout, g.GossipInterval = 200*time.Millisecond, 100*time.Millisecond, 50*time.Millisecond
		g.LeavePropagateDelay = 0
		cfg := cluster.NodeConfig{
			ID: cb.id, Dir: t.TempDir(), ClusterAddr: "127.0.0.1:0", GRPCAddr: "grpc-of-" + cb.id,
			Gossip: g, DataGroups: 2, ReconcileInterval: 100 * time.Millisecond, Raft: rc,
			Segment: func(topic.Config) segment.Config {
				c := segment.DefaultConfig()
				c.MaxSegmentBytes, c.MaxIndexBytes, c.Fsync = 1<<20, 1<<14, segment.FsyncNever
				return c
			},
		}
		if i > 0 {
			cfg.Join = []string{out[0].node.GossipAddr()}
		}
		bc := DefaultConfig()
		if mutate != nil {
			mutate(i, &cfg, &bc)
		}
		node, err := cluster.OpenNode(context.Background(), cfg, func() {
			cb.gate.pass()
			if b := cb.live.Load(); b != nil {
				b.NotifyMetadataChanged()
			}
		})
		if err != nil {
			t.Fatalf("open node %s: %v", cb.id, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = node.Start(ctx)
		cancel()
		if err != nil {
			node.Close()
			t.Fatalf("start node %s: %v", cb.id, err)
		}
		b, err := New(bc, node)
		if err != nil {
			t.Fatal(err)
		}
		cb.node, cb.b = node, b
		cb.live.Store(b)
		t.Cleanup(func() {
			if err := errors.Join(b.Close(), node.Close()); err != nil {
				t.Errorf("close %s: %v", cb.id, err)
			}
		})
		t.Cleanup(cb.gate.open) // runs first: a held apply would block Close
		for _, f := range before {
			f(cb)
		}
		if err := b.Start(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		out = append(out, cb)
	}
	wait.For(t, 20*time.Second, "every node registered and alive everywhere", func() bool {
		for _, cb := range out {
			if len(cb.node.MetaFSM.NodeInfos()) != n || cb.b.aliveNodes() != n {
				return false
			}
		}
		return true
	})
	return out
}

// metaLeaderOf returns the node that leads the metadata group.
func metaLeaderOf(t *testing.T, nodes []*clusterBroker) *clusterBroker {
	t.Helper()
	var l *clusterBroker
	wait.For(t, 10*time.Second, "a metadata leader", func() bool {
		for _, cb := range nodes {
			if cb.node.Meta.IsLeader() {
				l = cb
				return true
			}
		}
		return false
	})
	return l
}

// otherThan returns the first of nodes that is not n (nodes holds at least
// two).
func otherThan(nodes []*clusterBroker, n *clusterBroker) *clusterBroker {
	if nodes[0] == n {
		return nodes[1]
	}
	return nodes[0]
}

// hasReplicas reports whether every partition of t that has a replica on
// cb exists there.
func (cb *clusterBroker) hasReplicas(t topic.Topic) bool {
	for i, a := range t.Partitions {
		dg := cb.node.DataGroup(a.DataGroup)
		if dg == nil || dg.FSM.Partition(cluster.PartKey{TopicID: t.ID, Partition: int32(i)}) == nil {
			return false
		}
	}
	return true
}

// otherPartition returns a partition of t whose data group another node
// leads and that has its replica on cb, or -1.
func (cb *clusterBroker) otherPartition(t topic.Topic) int32 {
	for i, a := range t.Partitions {
		dg := cb.node.DataGroup(a.DataGroup)
		if dg != nil && !dg.Group.IsLeader() && dg.FSM.Partition(cluster.PartKey{TopicID: t.ID, Partition: int32(i)}) != nil {
			return int32(i)
		}
	}
	return -1
}

// A topic (or a group's offsets) created through the metadata leader and
// used at once through a node whose metadata apply lags must be found
// there: the follower waits for its metadata to catch up instead of
// answering NotFound. The follower's apply is held back until the request
// starts waiting, so without the wait every case fails with "unknown
// topic" (or "unknown group").
//
// The cases use a partition that another node leads: the follower creates
// the partitions of the data groups it leads only once its metadata has
// the topic.
func TestFollowerWaitsForNewTopic(t *testing.T) {
	nodes := startBrokerCluster(t, 3)
	ctx := ctxT(t)
	leader := metaLeaderOf(t, nodes)
	f := otherThan(nodes, leader)
	wait.For(t, 20*time.Second, "a topic with 3 replicas", func() bool {
		_, err := leader.b.CreateTopic(ctx, "warm", topic.Config{Partitions: 4, ReplicationFactor: 3})
		return err == nil || errors.Is(err, topic.ErrTopicExists)
	})
	var waits atomic.Int32
	release := func() { waits.Add(1); f.gate.open() }
	testHookMetaWait.Store(&release)
	t.Cleanup(func() { testHookMetaWait.Store(nil) })

	batch := batchOf(t, record.BatchOptions{}, "v")
	cases := []struct {
		name string
		// setup runs on the metadata leader while f's apply is held.
		setup func(topicName string) error
		// op runs on f with a partition that f holds and does not lead.
		op func(tp topic.Topic, p int32) error
	}{
		{name: "produce", op: func(tp topic.Topic, p int32) error {
			_, err := f.b.Produce(ctx, tp.Name, p, batch)
			var nl *NotLeaderError
			if errors.As(err, &nl) && nl.LeaderID != "" && nl.LeaderID != f.id {
				return nil // the client goes to the partition's leader
			}
			return fmt.Errorf("%v; want the partition's leader named", err)
		}},
		{name: "fetch", op: func(tp topic.Topic, p int32) error {
			_, err := f.b.Fetch(ctx, tp.Name, p, 0, 1<<20, 0)
			return err
		}},
		{name: "list offsets", op: func(tp topic.Topic, p int32) error {
			_, err := f.b.ListOffsets(ctx, tp.Name, p, SpecLatest, 0)
			return err
		}},
		{name: "describe topic", op: func(tp topic.Topic, _ int32) error {
			got, err := f.b.Topic(ctx, tp.Name)
			if err == nil && got.ID != tp.ID {
				return fmt.Errorf("topic id %d, want %d", got.ID, tp.ID)
			}
			return err
		}},
		{name: "describe group", setup: func(topicName string) error {
			return leader.b.CommitOffsets(ctx, "g-"+topicName, "", 0, []topic.PartitionOffset{{Topic: topicName, Partition: 0, Offset: 0}})
		}, op: func(tp topic.Topic, _ int32) error {
			d, err := f.b.DescribeGroup(ctx, "g-"+tp.Name)
			if err == nil && len(d.Partitions) != len(tp.Partitions) {
				return fmt.Errorf("lag of %d partitions, want %d", len(d.Partitions), len(tp.Partitions))
			}
			return err
		}},
		{name: "reset offsets", op: func(tp topic.Topic, p int32) error {
			_, err := f.b.ResetOffsets(ctx, "g", tp.Name, []int32{p}, ResetSpec{Spec: SpecEarliest})
			var nl *NotLeaderError
			if errors.As(err, &nl) && nl.LeaderID == leader.id {
				return nil // the offsets are written through the metadata leader
			}
			return fmt.Errorf("%v; want the metadata leader named", err)
		}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name := fmt.Sprintf("fresh-%d", i)
			f.gate.hold()
			defer f.gate.open()
			// A command f applies and then blocks on: what follows waits.
			if _, _, err := leader.b.InitProducer(ctx, 0); err != nil {
				t.Fatal(err)
			}
			f.gate.waitBlocked(t)
			// CreateTopic waits for the partitions f leads, which f creates
			// once its metadata has the topic: run it aside.
			created := make(chan error, 1)
			go func() {
				_, err := leader.b.CreateTopic(ctx, name, topic.Config{Partitions: 4, ReplicationFactor: 3})
				created <- err
			}()
			defer func() {
				f.gate.open()
				if err := <-created; err != nil {
					t.Errorf("create %s: %v", name, err)
				}
			}()
			var tp topic.Topic
			wait.For(t, 10*time.Second, "the topic on the metadata leader", func() bool {
				var ok bool
				tp, ok = leader.node.MetaFSM.Topic(name)
				return ok
			})
			if tc.setup != nil {
				if err := tc.setup(name); err != nil {
					t.Fatal(err)
				}
			}
			if _, ok := f.node.MetaFSM.Topic(name); ok {
				t.Fatalf("%s applied the topic despite the gate: the test shows nothing", f.id)
			}
			// The data groups are not held: wait until f holds a replica
			// that another node leads, so that only f's metadata lags.
			p := int32(-1)
			wait.For(t, 10*time.Second, "a replica on "+f.id+" led elsewhere", func() bool {
				p = f.otherPartition(tp)
				return p >= 0
			})
			before := waits.Load()
			if err := tc.op(tp, p); err != nil {
				t.Fatalf("%s through %s right after the topic's creation: %v", tc.name, f.id, err)
			}
			if waits.Load() == before {
				t.Errorf("%s did not wait for the metadata", tc.name)
			}
		})
	}
}

// After the wait a follower still answers NotFound, with the name; the
// metadata leader, whose view is the reference, answers at once; and the
// coordinator's requests go to the leader without a wait.
func TestFollowerUnknownTopicAfterWait(t *testing.T) {
	nodes := startBrokerCluster(t, 2)
	ctx := ctxT(t)
	leader := metaLeaderOf(t, nodes)
	f := otherThan(nodes, leader)
	batch := batchOf(t, record.BatchOptions{}, "v")

	start := time.Now()
	_, err := f.b.Produce(ctx, "never-created", 0, batch)
	took := time.Since(start)
	if !errors.Is(err, topic.ErrUnknownTopic) || !strings.Contains(err.Error(), `"never-created"`) {
		t.Fatalf("produce to a topic that does not exist, through a follower: %v; want %v naming it", err, topic.ErrUnknownTopic)
	}
	if took < metaCatchUp || took > metaCatchUp+5*time.Second {
		t.Errorf("the follower answered after %v; want about %v", took, metaCatchUp)
	}

	start = time.Now()
	_, err = leader.b.Fetch(ctx, "never-created", 0, 0, 1, 0)
	if !errors.Is(err, topic.ErrUnknownTopic) || !strings.Contains(err.Error(), `"never-created"`) {
		t.Fatalf("fetch of a topic that does not exist, on the metadata leader: %v; want %v naming it", err, topic.ErrUnknownTopic)
	}
	if took := time.Since(start); took >= metaCatchUp {
		t.Errorf("the metadata leader answered after %v; want at once", took)
	}

	start = time.Now()
	_, err = f.b.JoinGroup("g", "", "c", []string{"never-created"}, 0)
	var nl *NotLeaderError
	if !errors.As(err, &nl) || nl.LeaderID != leader.id {
		t.Fatalf("join through a follower: %v; want the coordinator %s named", err, leader.id)
	}
	if took := time.Since(start); took >= metaCatchUp {
		t.Errorf("the follower named the coordinator after %v; want at once", took)
	}
}
