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
	cluster.ReasonName(cluster.ReasonMaxDeliveries),
	cluster.ReasonName(cluster.ReasonRejected),
}

// RedriveQueueGroup moves up to maxN dead letters of a queue group (all
// when maxN <= 0), only those with the given reason when reason is not
// empty, back to the partitions they came from, in dead-letter
// order: each is written again to its source topic with its original key,
// value and headers, plus HeaderRedrivenFrom. The dead-letter topic is an
// ordinary topic and keeps its records; the group's redrive position in it
// (a committed offset under redriveCursor) moves past what was redriven.
// A crash between the write and the commit redrives those records again
// (at least once). It returns how many records it moved.
//
// With no dlqParts it redrives every partition of the dead-letter topic,
// each on a node that holds it (this one, else its leader); with dlqParts
// it redrives only those, which this node must hold.
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
		local := func() (int, error) { return b.redrivePartition(ctx, def, dt.Name, p, reason, maxN-moved) }
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

// redrivePartition redrives up to maxN dead letters of def from partition
// p of the dead-letter topic dlq, read from this node's replica.
func (b *Broker) redrivePartition(ctx context.Context, def cluster.QueueDef, dlq string, p int32, reason string, maxN int) (int, error) {
	lp, err := b.localPartition(ctx, dlq, p)
	if err != nil {
		return 0, err
	}
	topic, group := def.Topic, def.Name
	// from[R]: the first offset a dead letter with reason R may have to
	// be redriven (the later of the all-reasons and R's positions).
	all := b.node.MetaFSM.CommittedOffset(redriveCursor(topic, group, ""), dlq, p)
	from := map[string]int64{}
	for _, r := range redriveReasons {
		from[r] = max(all, b.node.MetaFSM.CommittedOffset(redriveCursor(topic, group, r), dlq, p))
	}
	cur := redriveCursor(topic, group, reason)
	pos := max(b.node.MetaFSM.CommittedOffset(cur, dlq, p), lp.Log.StartOffset())
	out := map[int32][]record.Record{}
	n := 0
	for hwm := lp.Log.HighWatermark(); pos < hwm && n < maxN; {
		data, err := lp.Log.Read(pos, 1<<20)
		if err != nil {
			return 0, err
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
			return 0, err
		}
		pos = max(pos, next)
	}
	if err := b.produceRecords(ctx, topic, out); err != nil {
		return 0, err
	}
	if err := b.commitOnLeader(ctx, cur, []cluster.TopicOffset{{Topic: dlq, Partition: p, Offset: pos}}); err != nil {
		return 0, err
	}
	return n, nil
}

// redriveTarget turns a dead letter of def into the record to write back
// and returns it with its source partition and its dead-letter reason; ok
// is false for records of other groups or topics.
func redriveTarget(r record.Record, def cluster.QueueDef, dlq string, p int32) (record.Record, int32, string, bool) {
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
