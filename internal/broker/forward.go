package broker

import (
	"context"
	"errors"
	"fmt"

	"github.com/stratalog/strata/cluster"
	"github.com/stratalog/strata/internal/topic"
)

// Peers reaches the brokers of other nodes, through the client API. A
// node must sometimes write where it does not lead: the leader of a source
// partition writes its dead letters to the dead-letter topic's partition
// (led anywhere) and creates that topic through the metadata leader; a
// redrive reads a dead-letter partition, writes to the source partitions'
// leaders and stores its position through the metadata leader; a reset
// goes to each partition's leader; a describe asks each partition's
// leader for its numbers (describe_leaders.go). The agent sets an implementation over
// gRPC (internal/server); without one these writes fail with the
// NotLeaderError, as on a single node they never do.
//
// Requests keep their meaning when forwarded: a produce carries the same
// batch bytes, so an idempotent producer's sequence numbers (the dead
// letters') still make a retry a duplicate. Errors come back as this
// package's errors (a *NotLeaderError, a *topic.SequenceError,
// topic.ErrTopicExists, …).
type Peers interface {
	// Produce appends a batch on the node at addr.
	Produce(ctx context.Context, addr, topic string, partition int32, batch []byte) (ProduceResult, error)
	// CreateTopic creates a topic through the node at addr.
	CreateTopic(ctx context.Context, addr, name string, cfg topic.Config) error
	// CommitOffsets commits a standalone consumer's offsets through the
	// node at addr.
	CommitOffsets(ctx context.Context, addr, group string, offs []topic.PartitionOffset) error
	// ResetQueuePartition resets one partition of a queue group on the node
	// at addr, which must lead it, and returns the new position.
	ResetQueuePartition(ctx context.Context, addr, topic, group string, partition int32, spec ResetSpec) (int64, error)
	// RedrivePartition redrives up to maxN dead letters of one partition of
	// a queue group's dead-letter topic on the node at addr, which must
	// hold it, and returns how many it moved.
	RedrivePartition(ctx context.Context, addr, topic, group, reason string, dlqPartition int32, maxN int) (int, error)
	// DeleteTopic deletes a topic through the node at addr.
	DeleteTopic(ctx context.Context, addr, name string) error
	// InitProducer allocates or restarts a producer id through the node
	// at addr.
	InitProducer(ctx context.Context, addr string, id int64) (int64, int16, error)
	// PartitionLags asks the node at addr for the end offset and lag of a
	// group on those of parts it leads, each measured from its Committed
	// offset (Broker.LedPartitionLags); it leaves out the others.
	PartitionLags(ctx context.Context, addr, group string, parts []PartitionLag) ([]PartitionLag, error)
	// DescribeQueueLed describes a queue group on the partitions the node
	// at addr leads (Broker.DescribeQueueGroupLed).
	DescribeQueueLed(ctx context.Context, addr, topic, group string) (QueueDescription, error)
}

// SetPeers sets how this broker reaches other nodes (see Peers). Call it
// before the broker serves requests.
func (b *Broker) SetPeers(p Peers) { b.peers = p }

// onLeader runs local and, when that fails because another node leads
// (a *NotLeaderError that names the leader's address), runs remote with
// that address. An unknown leader (an election under way) is returned as
// it is, for the caller's retry.
func onLeader[T any](b *Broker, local func() (T, error), remote func(addr string) (T, error)) (T, error) {
	v, err := local()
	var nl *NotLeaderError
	if err == nil || b.peers == nil || !errors.As(err, &nl) || nl.LeaderAddr == "" {
		return v, err
	}
	return remote(nl.LeaderAddr)
}

// produceOnLeader appends a batch through the partition's leader, here or
// on another node.
func (b *Broker) produceOnLeader(ctx context.Context, topic string, partition int32, batch []byte) (ProduceResult, error) {
	return onLeader(b,
		func() (ProduceResult, error) { return b.Produce(ctx, topic, partition, batch) },
		func(addr string) (ProduceResult, error) { return b.peers.Produce(ctx, addr, topic, partition, batch) })
}

// createTopicOnLeader creates a topic through the metadata leader. When
// another node created it, the topic may not be in this node's metadata
// yet: the caller sees ErrNotReady and tries again later.
func (b *Broker) createTopicOnLeader(ctx context.Context, name string, cfg topic.Config) (topic.Topic, error) {
	return onLeader(b,
		func() (topic.Topic, error) { return b.CreateTopic(ctx, name, cfg) },
		func(addr string) (topic.Topic, error) {
			err := b.peers.CreateTopic(ctx, addr, name, cfg)
			if err != nil && !errors.Is(err, topic.ErrTopicExists) {
				return topic.Topic{}, err
			}
			if t, terr := b.knownTopic(name); terr == nil {
				return t, err
			}
			return topic.Topic{}, fmt.Errorf("%w: topic %q was created through %s; this node's metadata does not have it yet", ErrNotReady, name, addr)
		})
}

// commitOnLeader stores offsets of an internal standalone cursor (a
// redrive position) through the metadata leader. The cursor only moves
// forward, so a plain commit (not a reset) is right.
func (b *Broker) commitOnLeader(ctx context.Context, group string, offs []topic.PartitionOffset) error {
	_, err := onLeader(b,
		func() (struct{}, error) {
			_, err := b.applyMeta(ctx, cluster.CommitOffsetsCmd(group, offs, false))
			return struct{}{}, mapClusterErr(err)
		},
		func(addr string) (struct{}, error) { return struct{}{}, b.peers.CommitOffsets(ctx, addr, group, offs) })
	return err
}

// CreateTopicAnywhere creates a topic here when this node leads the
// metadata group, and through the leader otherwise (the Kafka listener:
// any node takes a CreateTopics).
func (b *Broker) CreateTopicAnywhere(ctx context.Context, name string, cfg topic.Config) (topic.Topic, error) {
	return b.createTopicOnLeader(ctx, name, cfg)
}

// DeleteTopicAnywhere deletes a topic here or through the metadata leader.
func (b *Broker) DeleteTopicAnywhere(ctx context.Context, name string) error {
	_, err := onLeader(b,
		func() (struct{}, error) { return struct{}{}, b.DeleteTopic(ctx, name) },
		func(addr string) (struct{}, error) { return struct{}{}, b.peers.DeleteTopic(ctx, addr, name) })
	return err
}

// InitProducerAnywhere is InitProducer here or through the metadata
// leader.
func (b *Broker) InitProducerAnywhere(ctx context.Context, id int64) (int64, int16, error) {
	type idEpoch struct {
		id    int64
		epoch int16
	}
	v, err := onLeader(b,
		func() (idEpoch, error) {
			pid, e, err := b.InitProducer(ctx, id)
			return idEpoch{pid, e}, err
		},
		func(addr string) (idEpoch, error) {
			pid, e, err := b.peers.InitProducer(ctx, addr, id)
			return idEpoch{pid, e}, err
		})
	return v.id, v.epoch, err
}
