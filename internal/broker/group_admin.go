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
	Topic     string
	Partition int32
	Committed int64 // -1 when nothing is committed
	EndOffset int64
	// LagRecords counts the records from the committed offset (or the log
	// start) to the end.
	LagRecords int64
	// LagSeconds is the age of the oldest record not yet consumed (0 when
	// the group is caught up).
	LagSeconds float64
	MemberID   string
	// Unknown says the partition's leader could not be asked (none is
	// known, or it did not answer in time): EndOffset, LagRecords and
	// LagSeconds are then -1.
	Unknown bool
}

// setUnknown marks pl's numbers unknown.
func (pl *PartitionLag) setUnknown() {
	pl.Unknown, pl.EndOffset, pl.LagRecords, pl.LagSeconds = true, -1, -1, -1
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
// partition of the topics it consumes or has committed offsets for, each
// partition measured on its leader (describe_leaders.go). A node that
// does not lead the metadata (and so holds no members) waits (lookupMeta)
// for the committed offsets of a group it does not know yet.
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
	asks := map[string][]int{} // indexes into d.Partitions, by leader address
	for _, tn := range slices.Sorted(maps.Keys(topics)) {
		t, err := b.knownTopic(tn)
		if err != nil {
			continue
		}
		for i, a := range t.Partitions {
			p := int32(i)
			pl := PartitionLag{Topic: tn, Partition: p, Committed: -1, MemberID: owner[TopicPartition{tn, p}]}
			if off, ok := committed[tn][p]; ok {
				pl.Committed = off
			}
			switch id, addr := b.groupLeader(a.DataGroup); {
			case id == b.NodeID():
				if !b.measureLag(t, &pl, now) {
					pl.setUnknown()
				}
			case addr != "" && b.peers != nil:
				asks[addr] = append(asks[addr], len(d.Partitions))
			default:
				pl.setUnknown()
			}
			d.Partitions = append(d.Partitions, pl)
		}
	}
	b.lagsFromLeaders(ctx, name, d.Partitions, asks)
	return d, nil
}

// lagsFromLeaders fills in the lag of the partitions of parts that other
// nodes lead: asks holds their indexes by leader address. Those a leader
// does not answer for are marked unknown.
func (b *Broker) lagsFromLeaders(ctx context.Context, group string, parts []PartitionLag, asks map[string][]int) {
	answers := askLeaders(ctx, b, asks, func(ctx context.Context, addr string, idx []int) ([]PartitionLag, error) {
		req := make([]PartitionLag, len(idx))
		for j, i := range idx {
			req[j] = parts[i]
		}
		return b.peers.PartitionLags(ctx, addr, group, req)
	})
	for addr, idx := range asks {
		got := map[TopicPartition]PartitionLag{}
		for _, pl := range answers[addr] {
			got[TopicPartition{pl.Topic, pl.Partition}] = pl
		}
		for _, i := range idx {
			p := &parts[i]
			a, ok := got[TopicPartition{p.Topic, p.Partition}]
			if !ok || a.Unknown {
				p.setUnknown()
				continue
			}
			p.EndOffset, p.LagRecords, p.LagSeconds = a.EndOffset, a.LagRecords, a.LagSeconds
		}
	}
}

// LedPartitionLags measures the lag of each of parts whose data group
// this node leads, from its Committed offset (-1: from the log start),
// and returns those: what another node's DescribeGroup asks the leaders
// (Peers.PartitionLags). The partitions it does not lead are left out.
func (b *Broker) LedPartitionLags(parts []PartitionLag) []PartitionLag {
	now := time.Now()
	var out []PartitionLag
	for _, pl := range parts {
		t, err := b.knownTopic(pl.Topic)
		if err != nil || pl.Partition < 0 || int(pl.Partition) >= len(t.Partitions) {
			continue
		}
		if dg := b.node.DataGroup(t.Partitions[pl.Partition].DataGroup); dg == nil || !dg.Group.IsLeader() {
			continue
		}
		if b.measureLag(t, &pl, now) {
			out = append(out, pl)
		}
	}
	return out
}

// measureLag sets pl's end offset and lag from this node's replica of the
// partition, and reports whether it holds one.
func (b *Broker) measureLag(t topic.Topic, pl *PartitionLag, now time.Time) bool {
	dg := b.node.DataGroup(t.Partitions[pl.Partition].DataGroup)
	if dg == nil {
		return false
	}
	p := dg.FSM.Partition(cluster.PartKey{TopicID: t.ID, Partition: pl.Partition})
	if p == nil || p.Failed() {
		return false
	}
	start, end := p.Log.StartOffset(), p.Log.HighWatermark()
	from := start
	if pl.Committed >= 0 {
		from = max(pl.Committed, start)
	}
	pl.EndOffset, pl.LagRecords, pl.LagSeconds = end, max(end-from, 0), 0
	if pl.LagRecords > 0 {
		if ts, ok := recordTimeAt(p.Log, from); ok {
			pl.LagSeconds = max(now.Sub(ts).Seconds(), 0)
		}
	}
	return true
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
