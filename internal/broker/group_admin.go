package broker

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/stratalog/strata/cluster"
	"github.com/stratalog/strata/internal/topic"
)

// MemberInfo describes a live member.
type MemberInfo struct {
	ID          string
	ClientID    string
	Assignments []TopicPartition
}

// PartitionLag is a group's progress on one partition.
type PartitionLag struct {
	Topic      string
	Partition  int32
	Committed  int64 // -1 when nothing is committed
	EndOffset  int64
	LagRecords int64
	// LagSeconds is the age of the oldest record not yet consumed (0 when
	// the group is caught up).
	LagSeconds float64
	MemberID   string
}

// GroupDescription is DescribeGroup's answer.
type GroupDescription struct {
	Name       string
	State      string
	Generation int32
	Members    []MemberInfo
	Partitions []PartitionLag
}

// DescribeGroup returns a group's members, assignments and lag for every
// partition of the topics it consumes or has committed offsets for. A node
// that does not lead the metadata (and so holds no members) waits
// (lookupMeta) for the committed offsets of a group it does not know yet.
func (b *Broker) DescribeGroup(ctx context.Context, name string) (GroupDescription, error) {
	d := GroupDescription{Name: name}
	owner := map[TopicPartition]string{}
	topics := map[string]bool{}
	b.coord.mu.Lock()
	if g := b.coord.groups[name]; g != nil {
		d.Generation = g.generation
		for _, id := range slices.Sorted(maps.Keys(g.members)) {
			m := g.members[id]
			d.Members = append(d.Members, MemberInfo{ID: id, ClientID: m.clientID, Assignments: slices.Clone(g.assigned[id])})
			for _, t := range m.topics {
				topics[t] = true
			}
			for _, tp := range g.assigned[id] {
				owner[tp] = id
			}
		}
	}
	b.coord.mu.Unlock()
	// The metadata knows a group once it committed (its offsets may have
	// gone since, with their topics).
	lookupMeta(ctx, b, func() (struct{}, bool) {
		_, known := slices.BinarySearch(b.node.MetaFSM.GroupNames(), name)
		return struct{}{}, known || len(d.Members) > 0
	})
	committed := b.node.MetaFSM.GroupOffsets(name)
	for t := range committed {
		topics[t] = true
	}
	if len(d.Members) == 0 && len(committed) == 0 {
		return d, fmt.Errorf("%w: %q", ErrUnknownGroup, name)
	}
	d.State = groupState(len(d.Members))
	now := time.Now()
	for _, tn := range slices.Sorted(maps.Keys(topics)) {
		t, err := b.knownTopic(tn)
		if err != nil {
			continue
		}
		for _, ps := range b.PartitionStates(t) {
			pl := PartitionLag{Topic: tn, Partition: ps.Partition, Committed: -1, EndOffset: ps.HighWatermark,
				MemberID: owner[TopicPartition{tn, ps.Partition}]}
			from := ps.LogStartOffset
			if off, ok := committed[tn][ps.Partition]; ok {
				pl.Committed = off
				from = max(off, ps.LogStartOffset)
			}
			pl.LagRecords = max(ps.HighWatermark-from, 0)
			if pl.LagRecords > 0 {
				if p, err := b.localPartition(ctx, tn, ps.Partition); err == nil {
					if ts, ok := recordTimeAt(p.Log, from); ok {
						pl.LagSeconds = max(now.Sub(ts).Seconds(), 0)
					}
				}
			}
			d.Partitions = append(d.Partitions, pl)
		}
	}
	return d, nil
}

// ResetSpec says where ResetOffsets moves a group.
type ResetSpec struct {
	Spec      OffsetSpec // SpecEarliest, SpecLatest, SpecTimestamp, or 0 for Offset
	Offset    int64
	Timestamp int64 // ms
}

// ResetOffsets moves a group's offsets for a topic (all partitions, or
// those listed) to the earliest, latest, a given offset (clamped into the
// log) or the first record at or after a time. The group must have no live
// members, so nobody commits over the reset. This is the one way a
// committed offset moves backwards: replay.
func (b *Broker) ResetOffsets(ctx context.Context, group, topicName string, partitions []int32, spec ResetSpec) ([]topic.PartitionOffset, error) {
	if err := ValidName("group", group); err != nil {
		return nil, err
	}
	t, err := b.Topic(ctx, topicName)
	if err != nil {
		return nil, err
	}
	if n := b.coord.liveMembers(group); n > 0 {
		return nil, fmt.Errorf("%w: %q has %d live members; stop them first", ErrGroupNotEmpty, group, n)
	}
	if len(partitions) == 0 {
		for i := range t.Partitions {
			partitions = append(partitions, int32(i))
		}
	}
	var offs []topic.PartitionOffset
	for _, p := range partitions {
		lp, err := b.localPartition(ctx, topicName, p)
		if err != nil {
			return nil, err
		}
		var off int64
		switch spec.Spec {
		case SpecEarliest:
			off = lp.Log.StartOffset()
		case SpecLatest:
			off = lp.Log.HighWatermark()
		case SpecTimestamp:
			if off, err = offsetForTime(lp.Log, spec.Timestamp); err != nil {
				return nil, err
			}
		case 0:
			off = min(max(spec.Offset, lp.Log.StartOffset()), lp.Log.HighWatermark())
		default:
			return nil, fmt.Errorf("%w: reset spec %d", ErrInvalidRequest, spec.Spec)
		}
		offs = append(offs, topic.PartitionOffset{Topic: topicName, Partition: p, Offset: off})
	}
	if _, err := b.applyMeta(ctx, cluster.CommitOffsetsCmd(group, offs, true)); err != nil {
		return nil, mapClusterErr(err)
	}
	return offs, nil
}
