package broker

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/stratalog/strata/api/record"
	"github.com/stratalog/strata/cluster"
	"github.com/stratalog/strata/internal/queue"
	"github.com/stratalog/strata/internal/topic"
)

// redriveCursor is the name under which a queue group's redrive position
// in its dead-letter topic is stored, as a stream group's committed offset.
// A redrive of every reason keeps one position, and a redrive of one
// reason keeps its own (suffix .max-deliveries or .rejected): a dead letter
// with reason R is redriven when it is at or past both the all-reasons
// position and R's, so no redrive moves it twice.
func redriveCursor(topic, group, reason string) string {
	n := "__redrive." + topic + "." + group
	if reason != "" {
		n += "." + reason
	}
	if len(n) > maxNameLen {
		n = n[:maxNameLen]
	}
	return n
}

// redriveReasons are the reasons a dead letter can carry.
var redriveReasons = []string{
	queue.ReasonName(queue.ReasonMaxDeliveries),
	queue.ReasonName(queue.ReasonRejected),
}

// RedriveQueueGroup moves up to maxN dead letters of a queue group (all
// when maxN <= 0), only those with the given reason when reason is not
// empty, back to the partitions they came from, in dead-letter
// order: each is written again to its source topic with its original key,
// value and headers, plus HeaderRedrivenFrom. The dead-letter topic is an
// ordinary topic and keeps its records; the group's redrive position in it
// (a committed offset under redriveCursor) moves past what was redriven.
// It returns how many records it moved.
//
// Each dead letter is moved once: a partition's redrive runs on the
// dead-letter partition's leader only, one at a time per group and
// partition there, and reads the position from the metadata leader (see
// redrivePartition). Two exceptions remain, both at least once: a crash
// (or a failed commit) between the write and the commit of the new
// position redrives those records again; and a leader of the dead-letter
// partition deposed in the middle of a redrive finishes it while the new
// leader may start one from the same position.
//
// With no dlqParts it redrives every partition of the dead-letter topic,
// each through its leader (this node or another); with dlqParts it
// redrives only those, which this node must lead.
func (b *Broker) RedriveQueueGroup(ctx context.Context, topic, group, reason string, maxN int, dlqParts []int32) (int, error) {
	if reason != "" && !slices.Contains(redriveReasons, reason) {
		return 0, fmt.Errorf("%w: redrive reason %q (want %s)", ErrInvalidRequest, reason, strings.Join(redriveReasons, " or "))
	}
	def, err := b.QueueGroup(ctx, topic, group)
	if err != nil {
		return 0, err
	}
	dt, err := b.knownTopic(def.Settings.DeadLetterTopic)
	if err != nil {
		return 0, nil // nothing was ever dead-lettered
	}
	if maxN <= 0 {
		maxN = int(^uint(0) >> 1)
	}
	parts, forward := dlqParts, false
	if len(parts) == 0 {
		forward = true
		for p := range dt.Partitions {
			parts = append(parts, int32(p))
		}
	}
	moved := 0
	for _, p := range parts {
		if moved >= maxN {
			break
		}
		local := func() (int, error) {
			n, err := b.redrivePartition(ctx, def, dt.Name, p, reason, maxN-moved)
			countQueue(b.m.qc.redrives, def, n) // here, where the records moved
			return n, err
		}
		var n int
		if forward {
			n, err = onLeader(b, local, func(addr string) (int, error) {
				return b.peers.RedrivePartition(ctx, addr, topic, group, reason, p, maxN-moved)
			})
		} else {
			n, err = local()
		}
		moved += n
		if err != nil {
			return moved, err
		}
	}
	return moved, nil
}

// redriveKey names one queue group's redrives of one dead-letter partition.
type redriveKey struct {
	topic, group, dlq string
	partition         int32
}

// redriveTurn waits until no other redrive of k runs on this node and
// returns the function that ends this one's turn. It is a channel, not a
// mutex, because a turn lasts across raft and network calls and a waiter
// must be able to give up with its context.
func (m *queueManager) redriveTurn(ctx context.Context, k redriveKey) (func(), error) {
	v, _ := m.redrives.LoadOrStore(k, make(chan struct{}, 1))
	turn := v.(chan struct{})
	select {
	case turn <- struct{}{}:
		return func() { <-turn }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// redrivePartition redrives up to maxN dead letters of def from partition
// p of the dead-letter topic dlq, which this node must lead.
//
// Why a redrive moves each dead letter once: every redrive of the
// partition runs here, one at a time (redriveTurn); a barrier on the
// partition's data group first proves this node still leads it (a deposed
// leader cannot commit one) and brings its replica up to date; and the
// positions are read from the metadata leader after a barrier there, so a
// position the previous redrive committed, through any node, is seen even
// when this node's metadata lags.
func (b *Broker) redrivePartition(ctx context.Context, def queue.Def, dlq string, p int32, reason string, maxN int) (int, error) {
	_, dg, k, err := b.partition(ctx, dlq, p)
	if err != nil {
		return 0, err
	}
	what := fmt.Sprintf("%s/%d", dlq, p)
	if !dg.Group.IsLeader() {
		return 0, b.notLeader(dg.Group, what)
	}
	done, err := b.queue.redriveTurn(ctx, redriveKey{topic: def.Topic, group: def.Name, dlq: dlq, partition: p})
	if err != nil {
		return 0, err
	}
	defer done()
	if err := dg.Group.Barrier(ctx); err != nil {
		return 0, b.queueErr(dg, what, err)
	}
	lp := dg.FSM.Partition(k)
	if lp == nil || lp.Failed() {
		return 0, fmt.Errorf("%w: %s", ErrNotReady, what)
	}
	all, from, err := b.redrivePositions(ctx, def, dlq, p, reason)
	if err != nil {
		return 0, err
	}
	pos := max(all, lp.Log.StartOffset())
	out, n, pos, err := collectRedrive(lp, def, dlq, p, reason, from, pos, maxN)
	if err != nil {
		return 0, err
	}
	if err := b.produceRecords(ctx, def.Topic, out); err != nil {
		return 0, err
	}
	cur := redriveCursor(def.Topic, def.Name, reason)
	if err := b.commitOnLeader(ctx, cur, []topic.PartitionOffset{{Topic: dlq, Partition: p, Offset: pos}}); err != nil {
		return 0, err
	}
	return n, nil
}

// OffsetReader is implemented by a Peers that can read a group's committed
// offsets on another node. A redrive needs it on a node that does not lead
// the metadata group: without it, it answers NotLeader (with the metadata
// leader) rather than trust its own view of the positions.
type OffsetReader interface {
	// ReadOffsets runs Broker.ReadOffsets on the node at addr, which must
	// lead the metadata group.
	ReadOffsets(ctx context.Context, addr, group string, parts []TopicPartition) ([]topic.PartitionOffset, error)
}

// readOffsetsOnLeader reads a group's committed offsets as the metadata
// leader has them after a barrier, here or on the leader.
func (b *Broker) readOffsetsOnLeader(ctx context.Context, group string, parts []TopicPartition) ([]topic.PartitionOffset, error) {
	return onLeader(b,
		func() ([]topic.PartitionOffset, error) { return b.ReadOffsets(ctx, group, parts) },
		func(addr string) ([]topic.PartitionOffset, error) {
			r, ok := b.peers.(OffsetReader)
			if !ok {
				return nil, b.notLeader(b.node.Meta, "metadata (redrive positions)")
			}
			return r.ReadOffsets(ctx, addr, group, parts)
		})
}

// redrivePositions reads, from the metadata leader, the position of the
// redrive of reason (all reasons when empty) and, for each reason R, the
// first offset a dead letter with reason R may have to be redriven from
// (the later of the all-reasons position and R's).
func (b *Broker) redrivePositions(ctx context.Context, def queue.Def, dlq string, p int32, reason string) (int64, map[string]int64, error) {
	read := func(r string) (int64, error) {
		tp := []TopicPartition{{Topic: dlq, Partition: p}}
		g := redriveCursor(def.Topic, def.Name, r)
		offs, err := b.readOffsetsOnLeader(ctx, g, tp)
		if err != nil {
			return 0, err
		}
		if len(offs) != 1 {
			return 0, fmt.Errorf("%w: %d offsets for %s of %s/%d, want 1", ErrNotReady, len(offs), g, dlq, p)
		}
		return offs[0].Offset, nil
	}
	all, err := read("")
	if err != nil {
		return 0, nil, err
	}
	from := map[string]int64{}
	for _, r := range redriveReasons {
		off, err := read(r)
		if err != nil {
			return 0, nil, err
		}
		from[r] = max(all, off)
	}
	if reason == "" {
		return all, from, nil
	}
	return from[reason], from, nil
}

// collectRedrive reads the dead letters of def from pos on (up to maxN of
// them, with the given reason when not empty, each at or past from[its
// reason]) and returns them by source partition, with their count and the
// offset the position moves to.
func collectRedrive(lp *cluster.Partition, def queue.Def, dlq string, p int32, reason string, from map[string]int64, pos int64, maxN int) (map[int32][]record.Record, int, int64, error) {
	out := map[int32][]record.Record{}
	n := 0
	for hwm := lp.Log.HighWatermark(); pos < hwm && n < maxN; {
		data, err := lp.Log.Read(pos, 1<<20)
		if err != nil {
			return nil, 0, 0, err
		}
		next, err := record.DecodeBatchesFrom(data, pos, func(r record.Record) bool {
			pos = r.Offset + 1
			rr, sp, why, ok := redriveTarget(r, def, dlq, p)
			if ok && (reason == "" || why == reason) && r.Offset >= from[why] {
				out[sp] = append(out[sp], rr)
				n++
			}
			return n < maxN
		})
		if err != nil {
			return nil, 0, 0, err
		}
		pos = max(pos, next)
	}
	return out, n, pos, nil
}

// redriveTarget turns a dead letter of def into the record to write back
// and returns it with its source partition and its dead-letter reason; ok
// is false for records of other groups or topics.
func redriveTarget(r record.Record, def queue.Def, dlq string, p int32) (record.Record, int32, string, bool) {
	var group, topic, reason string
	part := int64(-1)
	var kept []record.Header
	for _, h := range r.Headers {
		switch h.Key {
		case HeaderDLQGroup:
			group = string(h.Value)
		case HeaderDLQTopic:
			topic = string(h.Value)
		case HeaderDLQPartition:
			part, _ = strconv.ParseInt(string(h.Value), 10, 32)
		case HeaderDLQReason:
			reason = string(h.Value)
		}
		if !strings.HasPrefix(h.Key, "strata-dlq-") && h.Key != HeaderRedrivenFrom {
			kept = append(kept, h)
		}
	}
	if group != def.Name || topic != def.Topic || part < 0 {
		return r, 0, "", false
	}
	from := fmt.Sprintf("%s/%d/%d", dlq, p, r.Offset)
	r.Headers = append(kept, record.Header{Key: HeaderRedrivenFrom, Value: []byte(from)})
	return r, int32(part), reason, true
}

// produceRecords writes records to partitions of a topic through the
// normal produce path, in batches that fit the topic.
func (b *Broker) produceRecords(ctx context.Context, topic string, byPart map[int32][]record.Record) error {
	t, err := b.knownTopic(topic)
	if err != nil {
		return err
	}
	for _, p := range slices.Sorted(maps.Keys(byPart)) {
		recs := byPart[p]
		if int(p) >= len(t.Partitions) {
			p = p % int32(len(t.Partitions))
		}
		for len(recs) > 0 {
			n := len(recs)
			for n > 1 && batchBytes(recs[:n]) > int(t.Config.MaxBatchBytes) {
				n /= 2
			}
			now := b.now()
			for i := range recs[:n] {
				recs[i].Timestamp = now
			}
			batch, err := record.AppendBatch(nil, recs[:n], record.BatchOptions{})
			if err != nil {
				return err
			}
			if _, err := b.produceOnLeader(ctx, topic, p, batch); err != nil {
				return err
			}
			recs = recs[n:]
		}
	}
	return nil
}
