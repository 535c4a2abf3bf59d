package broker

import (
	"context"
	"fmt"
	"sync"

	"github.com/stratalog/strata/internal/topic"
)

// What the Kafka listener (internal/kafka) needs beyond the gRPC
// service's calls: a fetch that long-polls many partitions at once, a
// leader-only view of a partition's bounds, offsets by time with the
// record's timestamp, and a topic's validation without creating it.

// NodeID returns this node's id.
func (b *Broker) NodeID() string { return b.node.ID() }

// TopicDefaults returns what a topic created without settings gets: the
// default partition count and max batch bytes (replication factor and
// retention are filled at creation).
func (b *Broker) TopicDefaults() topic.Config {
	return topic.Config{Partitions: b.cfg.DefaultPartitions, MaxBatchBytes: b.cfg.DefaultMaxBatchBytes}
}

// ValidateTopic checks what CreateTopic would check of a new topic (its
// name, its settings once defaults are filled, that the name is free,
// the cluster's partition cap) without creating it, as this node's
// metadata sees the cluster.
func (b *Broker) ValidateTopic(name string, cfg topic.Config) error {
	if err := ValidName("topic", name); err != nil {
		return err
	}
	cfg, err := b.completeConfig(cfg)
	if err != nil {
		return err
	}
	if _, ok := b.node.MetaFSM.Topic(name); ok {
		return fmt.Errorf("%w: %q", topic.ErrTopicExists, name)
	}
	return b.checkPartitionCap(cfg.Partitions)
}

// PartitionBounds is a partition's log start offset and high watermark.
type PartitionBounds struct {
	LogStartOffset int64
	HighWatermark  int64
}

// LeaderBounds returns a partition's bounds on its leader, without
// reading: a *NotLeaderError on any other node, so that a client that
// must never see the high watermark go back (a Kafka consumer) asks the
// leader only. A new leader still applying what its predecessor committed
// reports at least offset, the position the client had from a leader
// (Fetch does the same).
func (b *Broker) LeaderBounds(ctx context.Context, topic string, partition int32, offset int64) (PartitionBounds, error) {
	dg, p, err := b.localReplica(ctx, topic, partition)
	if err != nil {
		return PartitionBounds{}, err
	}
	if !dg.Group.IsLeader() {
		return PartitionBounds{}, b.notLeader(dg.Group, fmt.Sprintf("%s/%d", topic, partition))
	}
	pb := PartitionBounds{LogStartOffset: p.Log.StartOffset(), HighWatermark: p.Log.HighWatermark()}
	if dg.Group.CatchingUp() {
		pb.HighWatermark = max(pb.HighWatermark, offset)
	}
	return pb, nil
}

// LeaderOffsetForTime returns, on the partition's leader, the first offset
// whose record timestamp is at or after tsMs with that timestamp (in
// milliseconds); found is false when no record is that recent. Other
// nodes answer a *NotLeaderError. A new leader answers once it has
// applied what its predecessor committed (ErrNotReady after a while), as
// ListOffsets does.
func (b *Broker) LeaderOffsetForTime(ctx context.Context, topic string, partition int32, tsMs int64) (offset, recordTsMs int64, found bool, err error) {
	dg, p, err := b.localReplica(ctx, topic, partition)
	if err != nil {
		return -1, -1, false, err
	}
	if !dg.Group.IsLeader() {
		return -1, -1, false, b.notLeader(dg.Group, fmt.Sprintf("%s/%d", topic, partition))
	}
	if err := b.awaitCaughtUp(ctx, dg.Group, leaderCatchUp); err != nil {
		return -1, -1, false, err
	}
	off, err := offsetForTime(p.Log, tsMs)
	if err != nil {
		return -1, -1, false, err
	}
	ts, ok := recordTimeAt(p.Log, off)
	if !ok {
		return -1, -1, false, nil
	}
	return off, ts.UnixMilli(), true, nil
}

// PartitionOffset is a position in a partition.
type PartitionOffset struct {
	Topic     string
	Partition int32
	Offset    int64
}

// WaitAny waits until the high watermark of any of parts, on this node's
// replica, passes its offset, and returns nil then; it returns ctx's
// error when ctx ends first. A partition that cannot be waited on here
// (unknown, no replica, closed) or whose new leader finishes applying
// what its predecessor committed ends the wait too: the caller's next
// read tells what happened. It waits on every partition at once, not one
// after the other, with one goroutine per partition that it joins before
// returning.
func (b *Broker) WaitAny(ctx context.Context, parts []PartitionOffset) error {
	if len(parts) == 0 {
		<-ctx.Done()
		return ctx.Err()
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	woke := make(chan struct{}, 1)
	var wg sync.WaitGroup
	for _, po := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if b.waitOne(wctx, po) == nil || wctx.Err() == nil {
				select {
				case woke <- struct{}{}:
				default:
				}
			}
		}()
	}
	var err error
	select {
	case <-woke:
	case <-wctx.Done():
		err = ctx.Err()
	}
	cancel()
	wg.Wait()
	return err
}

// waitOne waits until one partition has data past po.Offset, or its new
// leader has caught up.
func (b *Broker) waitOne(ctx context.Context, po PartitionOffset) error {
	dg, p, err := b.localReplica(ctx, po.Topic, po.Partition)
	if err != nil {
		return err
	}
	if dg.Group.CatchingUp() {
		noteCatchUp()
		if _, err := dg.Group.WaitReady(ctx); ctx.Err() != nil {
			return ctx.Err()
		} else if err != nil {
			return err
		}
		return nil
	}
	return p.Log.Wait(ctx, po.Offset)
}
