package broker

import (
	"context"
	"fmt"

	"github.com/stratalog/strata/cluster"
	"github.com/stratalog/strata/internal/topic"
)

// Kafka clients' consumer groups are coordinated by the Kafka listener
// (internal/kafka), on the same node as native groups: the metadata
// leader. A group name is used by one kind of member at a time: the
// coordinator keeps the names of groups with live Kafka members
// (coordinator.kafka, under c.mu), which the native JoinGroup refuses, and
// the Kafka side refuses a group with live native members. Both checks
// run under c.mu, so two members of different kinds cannot both get in.

// GroupCoordinator returns the node that coordinates consumer groups, the
// metadata leader ("" while there is none), and whether it is this node.
func (b *Broker) GroupCoordinator() (id string, local bool) {
	id, _ = b.node.Meta.Leader()
	return id, b.node.Meta.IsLeader()
}

// SetKafkaGroupMembers records that a group has n live Kafka members (0:
// none, the name is free for native members again). It fails with
// ErrGroupNotEmpty, recording nothing, when n > 0 and the group has live
// native members.
func (b *Broker) SetKafkaGroupMembers(group string, n int) error {
	c := b.coord
	c.mu.Lock()
	defer c.mu.Unlock()
	if n <= 0 {
		delete(c.kafka, group)
		return nil
	}
	if g := c.groups[group]; g != nil && len(g.members) > 0 {
		return fmt.Errorf("%w: %q has %d live native members", ErrGroupNotEmpty, group, len(g.members))
	}
	if c.kafka == nil {
		c.kafka = map[string]int{}
	}
	c.kafka[group] = n
	return nil
}

// kafkaConflictLocked refuses a native member in a group with live Kafka
// members. Caller must hold c.mu.
func (c *coordinator) kafkaConflictLocked(group string) error {
	if n := c.kafka[group]; n > 0 {
		return fmt.Errorf("%w: %q has %d live Kafka members", ErrGroupNotEmpty, group, n)
	}
	return nil
}

// NativeGroupMembers returns the number of live native members of a
// group.
func (b *Broker) NativeGroupMembers(group string) int {
	c := b.coord
	c.mu.Lock()
	defer c.mu.Unlock()
	if g := c.groups[group]; g != nil {
		return len(g.members)
	}
	return 0
}

// CommitKafkaOffsets stores offsets a Kafka client committed, the same
// committed offsets native groups use (`strata group describe` shows
// them). Unlike CommitOffsets, last write wins, as in Kafka: a consumer
// that seeks back and commits moves its offset back, so the command is
// applied with the reset flag. Membership and generation are checked by
// the Kafka coordinator; topics and partitions by the caller. A group with
// live native members refuses it (ErrGroupNotEmpty).
func (b *Broker) CommitKafkaOffsets(ctx context.Context, group string, offs []topic.PartitionOffset) error {
	if err := ValidName("group", group); err != nil {
		return err
	}
	if n := b.NativeGroupMembers(group); n > 0 {
		return fmt.Errorf("%w: %q has %d live native members", ErrGroupNotEmpty, group, n)
	}
	for _, o := range offs {
		if o.Offset < 0 {
			return fmt.Errorf("%w: commit of offset %d for %s/%d", ErrInvalidRequest, o.Offset, o.Topic, o.Partition)
		}
	}
	_, err := b.applyMeta(ctx, cluster.CommitOffsetsCmd(group, offs, true))
	return mapClusterErr(err)
}
