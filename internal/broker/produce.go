package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/stratalog/strata/cluster"
	"github.com/stratalog/strata/internal/topic"
	"github.com/stratalog/strata/segment"
)

// ProduceResult is where a produced batch landed.
type ProduceResult struct {
	BaseOffset int64
	// Duplicate is true when an idempotent producer's retry was recognised;
	// BaseOffset is then the original offset, or -1 when no longer known.
	Duplicate bool
}

// partition resolves a topic and partition to its data group on this node,
// waiting as Topic does for a topic this node does not know yet.
func (b *Broker) partition(ctx context.Context, name string, partition int32) (topic.Topic, *cluster.DataGroup, cluster.PartKey, error) {
	t, err := b.Topic(ctx, name)
	if err != nil {
		if verr := ValidName("topic", name); verr != nil {
			return t, nil, cluster.PartKey{}, verr
		}
		return t, nil, cluster.PartKey{}, err
	}
	if partition < 0 || int(partition) >= len(t.Partitions) {
		return t, nil, cluster.PartKey{}, fmt.Errorf("%w: %q has %d partitions, asked for %d",
			topic.ErrUnknownPartition, name, len(t.Partitions), partition)
	}
	k := cluster.PartKey{TopicID: t.ID, Partition: partition}
	gid := t.Partitions[partition].DataGroup
	dg := b.node.DataGroup(gid)
	if dg == nil {
		// No replica here: name the leader (from gossip) so the client
		// goes there.
		e := &NotLeaderError{What: fmt.Sprintf("%s/%d", name, partition), LeaderID: b.node.GroupLeader(gid)}
		if info, ok := b.node.MetaFSM.NodeInfo(e.LeaderID); ok {
			e.LeaderAddr = info.GRPCAddr
		}
		return t, nil, k, e
	}
	return t, dg, k, nil
}

// Produce appends one Kafka v2 record batch to a partition through its data
// group's raft log, and returns once the batch is committed: fsynced in
// raft's log on a majority of the group's voters and applied here.
//
// Nothing is written when the batch is refused: the checks (size, CRC,
// layout, a fenced producer epoch) run before raft, and the idempotence
// check runs in the FSM.
func (b *Broker) Produce(ctx context.Context, topic string, partition int32, batch []byte) (ProduceResult, error) {
	return b.ProduceAsync(ctx, topic, partition, batch)()
}

// ProduceAsync checks a batch and hands it to raft, then returns a function
// that waits for its commit. Batches handed over by successive calls from
// one goroutine enter raft's log in that order, so a pipelining producer's
// batches keep their order without waiting for each other.
func (b *Broker) ProduceAsync(ctx context.Context, topic string, partition int32, batch []byte) func() (ProduceResult, error) {
	fail := func(err error) func() (ProduceResult, error) {
		return func() (ProduceResult, error) { return ProduceResult{BaseOffset: -1}, err }
	}
	start := time.Now()
	t, dg, k, err := b.partition(ctx, topic, partition)
	if err != nil {
		return fail(err)
	}
	if len(batch) > int(t.Config.MaxBatchBytes) {
		return fail(fmt.Errorf("%w: %d bytes, %q accepts at most %d",
			ErrBatchTooLarge, len(batch), topic, t.Config.MaxBatchBytes))
	}
	h, err := checkBatch(batch, int(t.Config.MaxBatchBytes))
	if err != nil {
		return fail(err)
	}
	if err := b.fenced(h); err != nil {
		return fail(err)
	}
	what := fmt.Sprintf("%s/%d", topic, partition)
	if !dg.Group.IsLeader() {
		return fail(b.notLeader(dg.Group, what))
	}
	if p := dg.FSM.Partition(k); p == nil {
		b.NotifyMetadataChanged()
		return fail(fmt.Errorf("%w: %s", ErrNotReady, what))
	}
	if err := b.disk.check(len(batch)); err != nil { // before raft: ENOSPC there is not retryable
		return fail(err)
	}
	ext := cluster.ProduceExt(k)
	if ackBeforeCommit { // a failpoint: the constant false unless built with -tags failpoints
		applyLate(func() func() (any, error) { return dg.Group.ApplyLogAsync(context.Background(), batch, ext) })
		return func() (ProduceResult, error) { return ProduceResult{BaseOffset: -1}, nil }
	}
	wait := dg.Group.ApplyLogAsync(ctx, batch, ext)
	return func() (ProduceResult, error) {
		res, err := wait()
		if err != nil {
			if errors.Is(err, cluster.ErrNotLeader) {
				return ProduceResult{BaseOffset: -1}, b.notLeader(dg.Group, what)
			}
			return ProduceResult{BaseOffset: -1}, mapClusterErr(err)
		}
		r := res.(cluster.ProduceResult)
		b.m.observeProduce(topic, int(h.RecordCount), len(batch), time.Since(start))
		return ProduceResult{BaseOffset: r.BaseOffset, Duplicate: r.Duplicate}, nil
	}
}

// fenced refuses a batch from an idempotent producer whose id this node's
// metadata knows a newer epoch of: fencing at the leader, before raft,
// stops the older instance on every partition at once, not only on those
// the newer one has written to (which the data FSM fences by itself).
// It runs for every batch: a lock-free map lookup.
func (b *Broker) fenced(h segment.BatchHeader) error {
	if h.ProducerID < 0 {
		return nil
	}
	if cur := b.node.MetaFSM.ProducerEpoch(h.ProducerID); h.ProducerEpoch < cur {
		return &topic.FencedError{ProducerID: h.ProducerID, Epoch: h.ProducerEpoch, Current: cur}
	}
	return nil
}

// checkBatch validates a batch's layout and CRC before it enters raft.
func checkBatch(batch []byte, maxBytes int) (segment.BatchHeader, error) {
	if err := segment.CheckBatch(batch, maxBytes); err != nil {
		if errors.Is(err, segment.ErrBatchTooLarge) {
			return segment.BatchHeader{}, fmt.Errorf("%w: %w", ErrBatchTooLarge, err)
		}
		return segment.BatchHeader{}, fmt.Errorf("%w: %w", ErrInvalidBatch, err)
	}
	h, err := segment.ParseBatchHeader(batch)
	if err != nil {
		return h, fmt.Errorf("%w: %w", ErrInvalidBatch, err)
	}
	if int(h.BatchLength)+12 != len(batch) {
		return h, fmt.Errorf("%w: the request holds %d bytes after one batch of %d", ErrInvalidBatch,
			len(batch)-int(h.BatchLength)-12, int(h.BatchLength)+12)
	}
	if h.RecordCount <= 0 {
		return h, fmt.Errorf("%w: a batch must hold at least one record", ErrInvalidBatch)
	}
	return h, nil
}
