package broker

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/wait"

	"github.com/hashicorp/raft"

	"github.com/stratalog/strata/api/record"
	"github.com/stratalog/strata/cluster"
	"github.com/stratalog/strata/internal/queue"
	"github.com/stratalog/strata/internal/topic"
)

// applyGate holds a data group's FSM apply back on one node: while it is
// held, the node's FSM goroutine blocks before the next command, so the
// node keeps storing (and acknowledging) the group's log while its
// partitions and queue states stay behind, as a slow replica's do.
type applyGate struct {
	mu      sync.Mutex
	release chan struct{} // nil while open
}

func (g *applyGate) hold() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.release = make(chan struct{})
}

// open releases the FSM; it may be called any number of times.
func (g *applyGate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.release != nil {
		close(g.release)
		g.release = nil
	}
}

// pass is the group's apply hook.
func (g *applyGate) pass(*raft.Log) {
	g.mu.Lock()
	rel := g.release
	g.mu.Unlock()
	if rel != nil {
		<-rel
	}
}

// handover is a 3-node cluster with a topic of one partition replicated
// on every node, led by from; to is the group's preferred leader, so that
// once leadership moves to it no node hands it back.
type handover struct {
	topic    topic.Topic
	gid      uint32
	key      cluster.PartKey
	from, to *clusterBroker
	gate     *applyGate // on to's replica of the group
}

// setupHandover builds the cluster. Every leader of a data group hands
// leadership back to the group's preferred leader (cluster/reconcile.go),
// at most once per 10 s: the test moves leadership from the preferred
// leader to another node twice, so that the second time that node has
// just handed it back and keeps it for the test.
func setupHandover(t *testing.T, name string, qs *queue.Settings) *handover {
	t.Helper()
	nodes := startBrokerCluster(t, 3)
	ctx := ctxT(t)
	ml := metaLeaderOf(t, nodes)
	wait.For(t, 20*time.Second, "a topic with 3 replicas", func() bool {
		_, err := ml.b.CreateTopic(ctx, name, topic.Config{Partitions: 1, ReplicationFactor: 3})
		return err == nil || errors.Is(err, topic.ErrTopicExists)
	})
	if qs != nil {
		mustQueue(t, ml.b, name, "q", *qs)
	}
	h := &handover{gate: &applyGate{}}
	h.topic, _ = ml.node.MetaFSM.Topic(name)
	h.gid = h.topic.Partitions[0].DataGroup
	h.key = cluster.PartKey{TopicID: h.topic.ID, Partition: 0}
	info, _ := ml.node.MetaFSM.DataGroupInfo(h.gid)
	for _, cb := range nodes {
		if cb.id == info.PreferredLeader() {
			h.to = cb
		}
	}
	h.from = otherThan(nodes, h.to)
	for _, cb := range nodes {
		wait.For(t, 10*time.Second, "the partition on "+cb.id, func() bool {
			dg := cb.node.DataGroup(h.gid)
			return dg != nil && dg.FSM.Partition(h.key) != nil
		})
	}
	leads := func(cb *clusterBroker) func() bool {
		return func() bool { return cb.node.DataGroup(h.gid).Group.IsLeader() }
	}
	wait.For(t, 20*time.Second, "the preferred leader "+h.to.id+" leading", leads(h.to))
	h.move(t, h.to, h.from)
	wait.For(t, 20*time.Second, h.from.id+" handing leadership back to "+h.to.id, leads(h.to))
	h.move(t, h.to, h.from)
	wait.For(t, 10*time.Second, h.from.id+" caught up as leader", func() bool {
		return h.from.node.DataGroup(h.gid).Group.IsReadyLeader()
	})
	dg := h.to.node.DataGroup(h.gid)
	dg.Group.SetApplyHook(h.gate.pass)
	t.Cleanup(func() { dg.Group.SetApplyHook(nil) })
	t.Cleanup(h.gate.open) // runs first: a held apply would block Close
	return h
}

// move transfers the group's leadership from one node to another.
func (h *handover) move(t *testing.T, from, to *clusterBroker) {
	t.Helper()
	info, _ := from.node.MetaFSM.NodeInfo(to.id)
	// A transfer that raft accepted can still end with another leader (the
	// target's election lost on a loaded machine): while from leads, ask
	// again, within one deadline.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	timeout := time.After(30 * time.Second)
	for !to.node.DataGroup(h.gid).Group.IsLeader() {
		if g := from.node.DataGroup(h.gid).Group; g.IsLeader() {
			if err := g.TransferLeadership(ctxT(t), to.id, info.ClusterAddr); err != nil {
				t.Logf("transfer leadership of group %d from %s to %s: %v (retrying)", h.gid, from.id, to.id, err)
			}
		}
		select {
		case <-tick.C:
		case <-timeout:
			t.Fatalf("%s not leading group %d within 30s of the transfer from %s", to.id, h.gid, from.id)
		}
	}
}

// part returns cb's replica of the partition.
func (h *handover) part(cb *clusterBroker) *cluster.Partition {
	return cb.node.DataGroup(h.gid).FSM.Partition(h.key)
}

// countCatchUps counts the requests that start to wait for a leader to
// catch up.
func countCatchUps(t *testing.T) *atomic.Int32 {
	var n atomic.Int32
	hook := func() { n.Add(1) }
	testHookCatchUp.Store(&hook)
	t.Cleanup(func() { testHookCatchUp.Store(nil) })
	return &n
}

// A fetch that reaches a new leader before it has applied what its
// predecessor committed, at offsets the predecessor served, waits for
// them instead of answering OutOfRange (after which a client resets to
// the earliest or the latest offset), and the high watermark it reports,
// there and through ListOffsets, is the predecessor's, not less. The new
// leader's apply is held until both requests wait (or, without the fix,
// have answered).
func TestNewLeaderFetchWaitsForCatchUp(t *testing.T) {
	h := setupHandover(t, "catchup-fetch", nil)
	ctx := ctxT(t)
	for i := range 2 {
		if _, err := h.from.b.Produce(ctx, h.topic.Name, 0, batchOf(t, record.BatchOptions{}, fmt.Sprintf("v-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	wait.For(t, 10*time.Second, h.to.id+" applying the first records", func() bool {
		return h.part(h.to).Log.HighWatermark() == 2
	})
	h.gate.hold()
	for i := 2; i < 5; i++ {
		if _, err := h.from.b.Produce(ctx, h.topic.Name, 0, batchOf(t, record.BatchOptions{}, fmt.Sprintf("v-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if hw := h.from.b.partitionHW(t, h.topic.Name); hw != 5 {
		t.Fatalf("high watermark %d on %s, want 5", hw, h.from.id)
	}
	h.move(t, h.from, h.to)
	if hw := h.part(h.to).Log.HighWatermark(); hw != 2 {
		t.Fatalf("%s applied up to %d despite the gate; want 2: the test shows nothing", h.to.id, hw)
	}

	waits := countCatchUps(t)
	var answered atomic.Int32
	type fetched struct {
		res FetchResult
		err error
	}
	fetchCh := make(chan fetched, 1)
	go func() {
		defer answered.Add(1)
		res, err := h.to.b.Fetch(ctx, h.topic.Name, 0, 3, 1<<20, 10*time.Second)
		fetchCh <- fetched{res, err}
	}()
	type listed struct {
		off int64
		err error
	}
	listCh := make(chan listed, 1)
	go func() {
		defer answered.Add(1)
		off, err := h.to.b.ListOffsets(ctx, h.topic.Name, 0, SpecLatest, 0)
		listCh <- listed{off, err}
	}()
	wait.For(t, 10*time.Second, "both requests waiting or answered", func() bool {
		return waits.Load()+answered.Load() >= 2
	})
	h.gate.open()

	f := <-fetchCh
	if f.err != nil {
		t.Fatalf("fetch at offset 3 on the new leader %s: %v; want the records 3 and 4", h.to.id, f.err)
	}
	var offs []int64
	if _, err := record.DecodeBatchesFrom(f.res.Records, 3, func(r record.Record) bool {
		offs = append(offs, r.Offset)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if len(offs) == 0 || offs[0] != 3 || f.res.HighWatermark != 5 {
		t.Errorf("fetch at 3 on the new leader: offsets %v, high watermark %d; want from 3, high watermark 5", offs, f.res.HighWatermark)
	}
	if l := <-listCh; l.err != nil || l.off != 5 {
		t.Errorf("latest offset on the new leader: %d, %v; want 5", l.off, l.err)
	}
}

// partitionHW returns the high watermark of partition 0 of topic on b.
func (b *Broker) partitionHW(t *testing.T, topic string) int64 {
	t.Helper()
	p, err := b.localPartition(ctxT(t), topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	return p.Log.HighWatermark()
}

// A record the old leader leased in its last round is not leased again by
// the new leader before the ack timeout, even when the new leader has not
// applied the delivery yet when the next receive reaches it: the receive
// waits until it has, and gets the next record instead.
func TestNewLeaderDoesNotLeaseTwice(t *testing.T) {
	s := queue.Settings{AckTimeoutMs: 60_000}
	h := setupHandover(t, "catchup-queue", &s)
	ctx := ctxT(t)
	// A receive with nothing to lease creates the group's state on the
	// partition and delivers nothing.
	if msgs := receive(t, h.from.b, h.topic.Name, "q", "m-a", 1, 0); len(msgs) != 0 {
		t.Fatalf("received %d records from an empty topic", len(msgs))
	}
	for i := range 2 {
		if _, err := h.from.b.Produce(ctx, h.topic.Name, 0, batchOf(t, record.BatchOptions{}, fmt.Sprintf("v-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	wait.For(t, 10*time.Second, h.to.id+" applying the records and the queue state", func() bool {
		p := h.part(h.to)
		return p.Log.HighWatermark() == 2 && p.Queue("q") != nil
	})
	h.gate.hold()
	first := receive(t, h.from.b, h.topic.Name, "q", "m-a", 1, 0)
	if len(first) != 1 || first[0].Offset != 0 {
		t.Fatalf("first receive on %s: %+v; want record 0", h.from.id, first)
	}
	h.move(t, h.from, h.to)

	waits := countCatchUps(t)
	type received struct {
		msgs []QueueMessage
		err  error
	}
	recvCh := make(chan received, 1)
	var answered atomic.Bool
	go func() {
		defer answered.Store(true)
		msgs, err := h.to.b.QueueReceive(ctx, ReceiveRequest{Topic: h.topic.Name, Group: "q", Member: "m-b", Partition: -1, Max: 2, Wait: 10 * time.Second})
		recvCh <- received{msgs, err}
	}()
	// Without the wait, the receive picks records from the stale state:
	// they join the leader's window (ReadNext moves) before the delivery
	// command, which then waits for the held apply.
	q := h.part(h.to).Queue("q")
	readNext := func() int64 { // where the leader's window ends; next until it has one
		if l := h.to.b.queue.leads.leaderOf(h.key, "q", q); l != nil {
			next, _ := l.ReadNext(1 << 20)
			return next
		}
		_, next := q.Range()
		return next
	}
	if next := readNext(); next != 0 {
		t.Fatalf("%s's window starts at %d despite the gate; want 0: the test shows nothing", h.to.id, next)
	}
	wait.For(t, 10*time.Second, "the receive waiting, answered, or picking", func() bool {
		return waits.Load() > 0 || answered.Load() || readNext() > 0
	})
	h.gate.open()

	r := <-recvCh
	if r.err != nil {
		t.Fatalf("receive on the new leader %s: %v", h.to.id, r.err)
	}
	var got []string
	for _, m := range r.msgs {
		got = append(got, fmt.Sprintf("%d (delivery %d)", m.Offset, m.Deliveries))
		if m.Offset == 0 {
			t.Errorf("record 0, leased to m-a by %s for 60 s, leased again to m-b by %s (delivery %d)", h.from.id, h.to.id, m.Deliveries)
		}
	}
	if len(r.msgs) != 1 || r.msgs[0].Offset != 1 {
		t.Errorf("receive on the new leader: %v; want record 1 alone", got)
	}
}
