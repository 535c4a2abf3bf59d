package console

import (
	"fmt"
	"slices"

	stratav1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/internal/auth"
	"github.com/stratalog/strata/internal/broker"
)

// Readers are who read a topic: consumer groups with offsets on it and
// queue groups defined on it.
type Readers struct {
	Groups []TopicGroup `json:"groups"`
	Queues []QueueRef   `json:"queue_groups"`
}

// TopicGroup is a consumer group's committed offsets on one topic.
type TopicGroup struct {
	Group      string          `json:"group"`
	LagRecords int64           `json:"lag_records"`
	Offsets    []PartitionOffs `json:"offsets"`
}

// PartitionOffs is a committed offset and the lag behind the end.
type PartitionOffs struct {
	Partition  int32 `json:"partition"`
	Committed  int64 `json:"committed"`
	LagRecords int64 `json:"lag_records"`
}

// QueueRef names a queue group.
type QueueRef struct {
	Topic string `json:"topic"`
	Group string `json:"group"`
}

// readers finds who reads t, from this node's metadata (committed offsets
// are replicated to every node), showing only the groups the caller may
// describe.
func (cl *call) readers(t Topic) Readers {
	r := Readers{Groups: []TopicGroup{}, Queues: []QueueRef{}}
	parts := make([]broker.TopicPartition, len(t.Partitions))
	for i := range t.Partitions {
		parts[i] = broker.TopicPartition{Topic: t.Name, Partition: int32(i)}
	}
	for _, g := range cl.c.b.ListGroups() {
		if !cl.allowed(auth.OpDescribe, auth.ResourceGroup, g.Name) {
			continue
		}
		offs := cl.c.b.FetchOffsets(g.Name, parts)
		tg := TopicGroup{Group: g.Name}
		for _, o := range offs {
			if o.Topic != t.Name || o.Offset < 0 || int(o.Partition) >= len(t.Partitions) {
				continue
			}
			lag := max(t.Partitions[o.Partition].End-max(o.Offset, t.Partitions[o.Partition].Start), 0)
			tg.Offsets = append(tg.Offsets, PartitionOffs{Partition: o.Partition, Committed: o.Offset, LagRecords: lag})
			tg.LagRecords += lag
		}
		if len(tg.Offsets) > 0 {
			r.Groups = append(r.Groups, tg)
		}
	}
	for _, d := range cl.c.b.QueueGroups() {
		if d.Topic == t.Name && cl.allowed(auth.OpDescribe, auth.ResourceQueue, queueResource(d.Topic, d.Name)) {
			r.Queues = append(r.Queues, QueueRef{Topic: d.Topic, Group: d.Name})
		}
	}
	return r
}

// committed returns a group's committed offsets on topic and its live
// members, as its coordinator has them; a group that never committed has
// none.
func (cl *call) committed(group, topic string) (map[int32]int64, int) {
	g, err := cl.group(group)
	out := map[int32]int64{}
	if err != nil {
		return out, 0
	}
	for _, p := range g.Partitions {
		if p.Topic == topic && p.Committed >= 0 {
			out[p.Partition] = p.Committed
		}
	}
	return out, len(g.Members)
}

// resetPlan computes, without changing anything, where a reset would move
// each partition: the targets as each partition's leader finds them.
func (cl *call) resetPlan(group string, req resetRequest, spec broker.ResetSpec) (ResetPlan, error) {
	_, states, err := cl.loadTopic(req.Topic)
	if err != nil {
		return ResetPlan{}, err
	}
	parts, err := pickPartitions(req.Partitions, len(states))
	if err != nil {
		return ResetPlan{}, err
	}
	cur, members := cl.committed(group, req.Topic)
	plan := ResetPlan{Group: group, Topic: req.Topic, DryRun: true, LiveMembers: members, Partitions: []ResetShift{}}
	if members > 0 {
		plan.Warning = fmt.Sprintf("the group has %d live members: a reset is refused until they stop", members)
	}
	for _, p := range parts {
		target, err := cl.target(states[p], spec)
		if err != nil {
			return ResetPlan{}, err
		}
		c, ok := cur[p]
		if !ok {
			c = -1
		}
		plan.Partitions = append(plan.Partitions, ResetShift{Partition: p, Current: c, Target: target, Delta: delta(c, target)})
	}
	return plan, nil
}

// pickPartitions checks the partitions asked for (none: all n).
func pickPartitions(asked []int32, n int) ([]int32, error) {
	if len(asked) == 0 {
		out := make([]int32, n)
		for i := range out {
			out[i] = int32(i)
		}
		return out, nil
	}
	for _, p := range asked {
		if p < 0 || int(p) >= n {
			return nil, fmt.Errorf("%w: partition %d: the topic has %d", ErrBadRequest, p, n)
		}
	}
	return slices.Compact(slices.Sorted(slices.Values(asked))), nil
}

// target is where spec puts a partition, as its leader finds it.
func (cl *call) target(ps partRef, spec broker.ResetSpec) (int64, error) {
	switch spec.Spec {
	case broker.SpecEarliest, broker.SpecLatest:
		return cl.listOffset(ps, spec.Spec, 0)
	case broker.SpecTimestamp:
		return cl.listOffset(ps, spec.Spec, spec.Timestamp)
	}
	lo, err := cl.listOffset(ps, broker.SpecEarliest, 0)
	if err != nil {
		return 0, err
	}
	hi, err := cl.listOffset(ps, broker.SpecLatest, 0)
	if err != nil {
		return 0, err
	}
	return min(max(spec.Offset, lo), hi), nil
}

// listOffset is ListOffsets on the partition's leader.
func (cl *call) listOffset(ps partRef, spec broker.OffsetSpec, tsMs int64) (int64, error) {
	topic := ps.Topic
	return onLeader(cl, ps, func() (int64, error) {
		return cl.c.b.ListOffsets(cl.ctx, topic, ps.Partition, spec, tsMs)
	}, func(s stratav1.StrataClient) (int64, error) {
		resp, err := s.ListOffsets(cl.ctx, &stratav1.ListOffsetsRequest{Topic: topic, Partition: ps.Partition,
			Spec: specProto(broker.ResetSpec{Spec: spec}), TimestampMs: tsMs})
		if err != nil {
			return 0, err
		}
		return resp.Offset, nil
	})
}

// sortedParts returns the partitions of m in order.
func sortedParts[V any](m map[int32]V) []int32 {
	out := make([]int32, 0, len(m))
	for p := range m {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}
