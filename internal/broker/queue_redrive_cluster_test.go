package broker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/wait"

	"github.com/stratalog/strata/api/record"
	"github.com/stratalog/strata/internal/queue"
	"github.com/stratalog/strata/internal/topic"
)

// localPeers reaches the other brokers of an in-process cluster by calling
// them as the gRPC server would (internal/server): the request and its
// errors keep their meaning.
type localPeers struct {
	mu sync.Mutex
	m  map[string]*Broker // by GRPCAddr
}

var (
	_ Peers        = (*localPeers)(nil)
	_ OffsetReader = (*localPeers)(nil)
)

func (p *localPeers) add(cb *clusterBroker) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.m[cb.node.Config().GRPCAddr] = cb.b
}

func (p *localPeers) get(addr string) (*Broker, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if b := p.m[addr]; b != nil {
		return b, nil
	}
	return nil, fmt.Errorf("%w: no node at %s", ErrNotReady, addr)
}

func (p *localPeers) Produce(ctx context.Context, addr, topic string, partition int32, batch []byte) (ProduceResult, error) {
	b, err := p.get(addr)
	if err != nil {
		return ProduceResult{BaseOffset: -1}, err
	}
	return b.Produce(ctx, topic, partition, batch)
}

func (p *localPeers) CreateTopic(ctx context.Context, addr, name string, cfg topic.Config) error {
	b, err := p.get(addr)
	if err != nil {
		return err
	}
	_, err = b.CreateTopic(ctx, name, cfg)
	return err
}

func (p *localPeers) DeleteTopic(ctx context.Context, addr, name string) error {
	b, err := p.get(addr)
	if err != nil {
		return err
	}
	return b.DeleteTopic(ctx, name)
}

func (p *localPeers) InitProducer(ctx context.Context, addr string, id int64) (int64, int16, error) {
	b, err := p.get(addr)
	if err != nil {
		return 0, 0, err
	}
	return b.InitProducer(ctx, id)
}

func (p *localPeers) CommitOffsets(ctx context.Context, addr, group string, offs []topic.PartitionOffset) error {
	b, err := p.get(addr)
	if err != nil {
		return err
	}
	return b.CommitOffsets(ctx, group, "", 0, offs)
}

func (p *localPeers) ResetQueuePartition(ctx context.Context, addr, topic, group string, partition int32, spec ResetSpec) (int64, error) {
	b, err := p.get(addr)
	if err != nil {
		return 0, err
	}
	offs, err := b.ResetQueueGroup(ctx, topic, group, spec, []int32{partition})
	if err != nil || len(offs) != 1 {
		return 0, errors.Join(err, fmt.Errorf("reset answered %d partitions", len(offs)))
	}
	return offs[0].Offset, nil
}

func (p *localPeers) RedrivePartition(ctx context.Context, addr, topic, group, reason string, dlqPartition int32, maxN int) (int, error) {
	b, err := p.get(addr)
	if err != nil {
		return 0, err
	}
	return b.RedriveQueueGroup(ctx, topic, group, reason, maxN, []int32{dlqPartition})
}

func (p *localPeers) PartitionLags(ctx context.Context, addr, group string, parts []PartitionLag) ([]PartitionLag, error) {
	b, err := p.get(addr)
	if err != nil {
		return nil, err
	}
	return b.LedPartitionLags(parts), nil
}

func (p *localPeers) DescribeQueueLed(ctx context.Context, addr, topic, group string) (QueueDescription, error) {
	b, err := p.get(addr)
	if err != nil {
		return QueueDescription{}, err
	}
	return b.DescribeQueueGroupLed(ctx, topic, group)
}

func (p *localPeers) ReadOffsets(ctx context.Context, addr, group string, parts []TopicPartition) ([]topic.PartitionOffset, error) {
	b, err := p.get(addr)
	if err != nil {
		return nil, err
	}
	return b.ReadOffsets(ctx, group, parts)
}

// redriveCluster is a 3-node cluster whose brokers reach each other, with
// topic "jobs" (1 partition, 3 replicas), queue group "g" on it and its
// dead-letter topic "jobs.g.dlq" (1 partition, 3 replicas).
type redriveCluster struct {
	t      *testing.T
	nodes  []*clusterBroker
	leader *clusterBroker // of the metadata
	dead   int            // dead letters written so far
}

func startRedriveCluster(t *testing.T) *redriveCluster {
	t.Helper()
	peers := &localPeers{m: map[string]*Broker{}}
	nodes := startBrokerCluster(t, 3, func(cb *clusterBroker) {
		peers.add(cb)
		cb.b.SetPeers(peers)
	})
	rc := &redriveCluster{t: t, nodes: nodes, leader: metaLeaderOf(t, nodes)}
	ctx := ctxT(t)
	for _, name := range []string{"jobs", "jobs.g.dlq"} {
		wait.For(t, 20*time.Second, "topic "+name+" with 3 replicas", func() bool {
			_, err := rc.leader.b.CreateTopic(ctx, name, topic.Config{Partitions: 1, ReplicationFactor: 3})
			return err == nil || errors.Is(err, topic.ErrTopicExists)
		})
	}
	if _, err := rc.leader.b.CreateQueueGroup(ctx, "jobs", "g", queue.Settings{}); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 10*time.Second, "every node knows the group and both topics", func() bool {
		for _, cb := range nodes {
			_, okq := cb.node.MetaFSM.QueueDef("jobs", "g")
			tj, okj := cb.node.MetaFSM.Topic("jobs")
			td, okd := cb.node.MetaFSM.Topic("jobs.g.dlq")
			if !okq || !okj || !okd || !cb.hasReplicas(tj) || !cb.hasReplicas(td) {
				return false
			}
		}
		return true
	})
	return rc
}

// addDeadLetters writes n dead letters of group g (from jobs/0, reasons
// alternating) to the dead-letter topic.
func (rc *redriveCluster) addDeadLetters(n int) {
	rc.t.Helper()
	var recs []record.Record
	for range n {
		reason := []string{"rejected", "max-deliveries"}[rc.dead%2]
		off := strconv.Itoa(rc.dead)
		recs = append(recs, record.Record{Value: []byte("v-" + off), Timestamp: time.Now(), Headers: []record.Header{
			{Key: HeaderDLQGroup, Value: []byte("g")}, {Key: HeaderDLQTopic, Value: []byte("jobs")},
			{Key: HeaderDLQPartition, Value: []byte("0")}, {Key: HeaderDLQOffset, Value: []byte(off)},
			{Key: HeaderDLQReason, Value: []byte(reason)}, {Key: HeaderDLQID, Value: []byte("jobs/0/" + off + "/g")},
		}})
		rc.dead++
	}
	batch, err := record.AppendBatch(nil, recs, record.BatchOptions{})
	if err != nil {
		rc.t.Fatal(err)
	}
	if _, err := rc.nodes[0].b.produceOnLeader(ctxT(rc.t), "jobs.g.dlq", 0, batch); err != nil {
		rc.t.Fatal(err)
	}
	// Every replica holds them, so that no redrive moves fewer because
	// the replica it reads lags.
	wait.For(rc.t, 10*time.Second, "the dead letters on every replica", func() bool {
		for _, cb := range rc.nodes {
			lp, err := cb.b.localPartition(ctxT(rc.t), "jobs.g.dlq", 0)
			if err != nil || lp.Log.HighWatermark() != int64(rc.dead) {
				return false
			}
		}
		return true
	})
}

// redriven counts, per dead-letter offset, the redriven records in jobs/0,
// read on its leader (where every acknowledged write is applied).
func (rc *redriveCluster) redriven() map[string]int {
	rc.t.Helper()
	tp, _ := rc.leader.node.MetaFSM.Topic("jobs")
	var on *Broker
	wait.For(rc.t, 10*time.Second, "a leader of jobs/0", func() bool {
		for _, cb := range rc.nodes {
			if dg := cb.node.DataGroup(tp.Partitions[0].DataGroup); dg != nil && dg.Group.IsLeader() {
				on = cb.b
				return true
			}
		}
		return false
	})
	out := map[string]int{}
	for _, r := range dlqRecords(rc.t, on, "jobs") {
		if from := header(r, HeaderRedrivenFrom); from != "" {
			out[from]++
		}
	}
	return out
}

// checkOnce checks that each of the dead letters written so far was
// redriven exactly once.
func (rc *redriveCluster) checkOnce() {
	rc.t.Helper()
	got := rc.redriven()
	for i := range rc.dead {
		if from := fmt.Sprintf("jobs.g.dlq/0/%d", i); got[from] != 1 {
			rc.t.Errorf("dead letter %s redriven %d times, want once", from, got[from])
		}
	}
	if len(got) != rc.dead {
		rc.t.Errorf("%d dead letters redriven, want %d", len(got), rc.dead)
	}
}

// Redrives started at once through every node (two through one, of
// every reason and of one) move each dead letter once.
func TestRedriveConcurrentThroughNodes(t *testing.T) {
	rc := startRedriveCluster(t)
	ctx := ctxT(t)
	for round, reasons := range [][]string{{"", "", "", ""}, {"rejected", "", "max-deliveries", "rejected"}} {
		rc.addDeadLetters(20)
		var wg sync.WaitGroup
		moved := make([]int, len(reasons))
		errs := make([]error, len(reasons))
		for i, reason := range reasons {
			wg.Go(func() {
				moved[i], errs[i] = rc.nodes[i%len(rc.nodes)].b.RedriveQueueGroup(ctx, "jobs", "g", reason, 0, nil)
			})
		}
		wg.Wait()
		total := 0
		for i := range moved {
			if errs[i] != nil {
				t.Fatalf("round %d: redrive %d (%q) through %s: %v", round, i, reasons[i], rc.nodes[i%len(rc.nodes)].id, errs[i])
			}
			total += moved[i]
		}
		if total != 20 {
			t.Errorf("round %d: the redrives moved %v, %d in all, want 20", round, moved, total)
		}
		rc.checkOnce()
	}
}

// A redrive through a node whose metadata lags behind the position the
// previous redrive committed moves nothing again.
func TestRedriveThroughLaggingNode(t *testing.T) {
	rc := startRedriveCluster(t)
	ctx := ctxT(t)
	rc.addDeadLetters(10)
	f := otherThan(rc.nodes, rc.leader)
	f.gate.hold()
	defer f.gate.open()
	// A command f applies and then blocks on: what follows waits.
	if _, _, err := rc.leader.b.InitProducer(ctx, 0); err != nil {
		t.Fatal(err)
	}
	f.gate.waitBlocked(t)
	if n, err := rc.leader.b.RedriveQueueGroup(ctx, "jobs", "g", "", 0, nil); n != 10 || err != nil {
		t.Fatalf("redrive through the metadata leader: %d, %v", n, err)
	}
	if n, err := f.b.RedriveQueueGroup(ctx, "jobs", "g", "", 0, nil); n != 0 || err != nil {
		t.Errorf("redrive again through %s, whose metadata lags: moved %d (%v), want 0", f.id, n, err)
	}
	rc.checkOnce()
}
