package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stratalog/strata/api/record"
	"github.com/stratalog/strata/cluster"
	"github.com/stratalog/strata/internal/queue"
	"github.com/stratalog/strata/internal/topic"
)

// Dead-letter headers. A dead letter carries the original key, value and
// headers, then these.
const (
	HeaderDLQGroup      = "strata-dlq-group"
	HeaderDLQTopic      = "strata-dlq-topic"
	HeaderDLQPartition  = "strata-dlq-partition"
	HeaderDLQOffset     = "strata-dlq-offset"
	HeaderDLQDeliveries = "strata-dlq-deliveries"
	HeaderDLQReason     = "strata-dlq-reason" // "max-deliveries" or "rejected"
	HeaderDLQError      = "strata-dlq-error"  // the last error text a member gave
	HeaderDLQTimestamp  = "strata-dlq-timestamp"
	// HeaderDLQID is "topic/partition/offset/group": unique per dead
	// letter, for readers that want to check.
	HeaderDLQID = "strata-dlq-id"
	// HeaderRedrivenFrom is set on a redriven record: "dlq-topic/partition/offset".
	HeaderRedrivenFrom = "strata-redriven-from"
)

// testHookDeadLettersWritten, when set, runs between the write of dead
// letters and the command that marks them dead; an error stops there, as a
// crash would.
var testHookDeadLettersWritten atomic.Pointer[func() error]

// testHookDeadLettersWrite, when set, runs before the write of dead
// letters; an error stops there (the dead-letter partition unreachable),
// so a test can let dead marks pile up before the first write.
var testHookDeadLettersWrite atomic.Pointer[func() error]

// maxDeadLetterRun caps the dead letters written in one batch.
const maxDeadLetterRun = 500

// loop expires leases at max deliveries and writes dead letters, for the
// partitions this node leads. It runs every TickInterval and when woken.
func (m *queueManager) loop(stop <-chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	t := time.NewTicker(m.b.cfg.Queue.TickInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		case <-m.kick:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		m.tick(ctx)
		cancel()
	}
}

func (m *queueManager) tick(ctx context.Context) {
	b := m.b
	m.leads.sweep()
	for _, def := range b.QueueGroups() {
		t, err := b.knownTopic(def.Topic)
		if err != nil || t.ID != def.TopicID {
			continue
		}
		for i, a := range t.Partitions {
			dg := b.node.DataGroup(a.DataGroup)
			if dg == nil || !dg.Group.IsLeader() {
				continue
			}
			p := dg.FSM.Partition(cluster.PartKey{TopicID: t.ID, Partition: int32(i)})
			if p == nil || p.Queue(def.Name) == nil {
				continue
			}
			c, ok, err := b.cursor(ctx, def, int32(i))
			if err != nil || !ok {
				continue
			}
			exp := c.lead.ReserveExpired(def.Settings.MaxDeliveries, b.now())
			countQueue(b.m.qc.expiries, def, int(c.lead.TakeLeaseExpiries()))
			if len(exp) > 0 {
				err := c.apply(ctx, b, queue.Cmd{Op: queue.OpDeadMark, Offsets: exp, Reason: queue.ReasonMaxDeliveries})
				c.lead.Release(exp)
				if err != nil {
					b.log.Warn("queue: dead-mark expired records", "group", def.Name, "topic", def.Topic, "partition", i, "err", err)
				}
			}
			if pend := c.lead.PendingDeadLetters(); len(pend) > 0 {
				if err := b.writeDeadLetters(ctx, c, pend); err != nil {
					b.log.Warn("queue: write dead letters (retrying)", "group", def.Name, "topic", def.Topic, "partition", i, "err", err)
				}
				b.queue.changed()
			}
		}
	}
}

// dlqTopic returns the group's dead-letter topic, creating it on first use.
func (b *Broker) dlqTopic(ctx context.Context, def queue.Def) (topic.Topic, error) {
	name := def.Settings.DeadLetterTopic
	// No waits here: this runs in the queue loop, and a topic created
	// through another node meanwhile is ErrNotReady, retried next tick.
	if t, err := b.knownTopic(name); err == nil {
		return t, nil
	}
	src, err := b.knownTopic(def.Topic)
	if err != nil {
		return topic.Topic{}, err
	}
	if err := b.checkPartitionCap(1); err != nil {
		return topic.Topic{}, err
	}
	t, err := b.createTopicOnLeader(ctx, name, topic.Config{Partitions: 1, ReplicationFactor: src.Config.ReplicationFactor})
	if errors.Is(err, topic.ErrTopicExists) {
		return b.knownTopic(name)
	}
	return t, err
}

// writeDeadLetters writes the run of consecutive dead-letter sequence
// numbers that starts at the lowest pending one to the dead-letter topic,
// then marks those records dead.
//
// Idempotence: each source partition writes its dead letters as its own
// idempotent producer (cluster.DLQProducerID), with the sequence numbers
// the dead-mark command gave the records in raft, always in sequence order
// from the lowest not yet marked dead (pend is in sequence order). So the
// dead-letter partition sees each producer's sequence numbers in order,
// and when the leader dies between the write and the dead command, the
// next leader writes the same records with the same sequence numbers and
// the partition recognises them as duplicates: each dead letter is written
// once. produceDeadLetters says how a gap in the numbers is closed.
func (b *Broker) writeDeadLetters(ctx context.Context, c queueCursor, pend []queue.DeadLetter) error {
	if hook := testHookDeadLettersWrite.Load(); hook != nil {
		if err := (*hook)(); err != nil {
			return err
		}
	}
	dt, err := b.dlqTopic(ctx, c.def)
	if err != nil {
		return err
	}
	n := 1
	for n < len(pend) && n < maxDeadLetterRun && pend[n].Seq == pend[n-1].Seq+1 {
		n++
	}
	run := pend[:n]
	offs := make([]int64, n)
	for i, d := range run {
		offs[i] = d.Offset
	}
	slices.Sort(offs)
	src := readRecords(c.part, offs)
	recs := make([]record.Record, n)
	for i, d := range run {
		recs[i] = b.deadLetter(c, d, src)
	}
	for len(recs) > 1 && batchBytes(recs) > int(dt.Config.MaxBatchBytes) {
		recs, run = recs[:len(recs)/2], run[:len(run)/2]
	}
	dp := c.key.Partition % int32(len(dt.Partitions))
	k, err := b.produceDeadLetters(ctx, cluster.DLQProducerID(c.def, c.key.Partition), dt, dp, recs, run[0].Seq)
	if err != nil {
		return err
	}
	run = run[:k]
	if hook := testHookDeadLettersWritten.Load(); hook != nil {
		if err := (*hook)(); err != nil {
			return err
		}
	}
	dead := make([]int64, len(run))
	for i, d := range run {
		dead[i] = d.Offset
	}
	return c.apply(ctx, b, queue.Cmd{Op: queue.OpDead, Offsets: dead})
}

func batchBytes(recs []record.Record) int {
	n := record.BatchHeaderLen
	for i := range recs {
		n += recs[i].MaxEncodedLen()
	}
	return n
}

// deadLetter builds the dead letter of a source record.
func (b *Broker) deadLetter(c queueCursor, d queue.DeadLetter, src map[int64]record.Record) record.Record {
	r, ok := src[d.Offset]
	errText := d.LastError
	if errText == "" && d.Reason == queue.ReasonMaxDeliveries {
		errText = "ack timeout"
	}
	if !ok {
		errText = "record no longer in the log: " + errText
	}
	part := strconv.Itoa(int(c.key.Partition))
	off := strconv.FormatInt(d.Offset, 10)
	out := record.Record{Key: r.Key, Value: r.Value, Timestamp: b.now()}
	out.Headers = append(slices.Clip(r.Headers),
		record.Header{Key: HeaderDLQGroup, Value: []byte(c.def.Name)},
		record.Header{Key: HeaderDLQTopic, Value: []byte(c.def.Topic)},
		record.Header{Key: HeaderDLQPartition, Value: []byte(part)},
		record.Header{Key: HeaderDLQOffset, Value: []byte(off)},
		record.Header{Key: HeaderDLQDeliveries, Value: []byte(strconv.Itoa(int(d.Deliveries)))},
		record.Header{Key: HeaderDLQReason, Value: []byte(queue.ReasonName(d.Reason))},
		record.Header{Key: HeaderDLQError, Value: []byte(errText)},
		record.Header{Key: HeaderDLQTimestamp, Value: []byte(strconv.FormatInt(r.Timestamp.UnixMilli(), 10))},
		record.Header{Key: HeaderDLQID, Value: []byte(c.def.Topic + "/" + part + "/" + off + "/" + c.def.Name)},
	)
	return out
}

// ResetQueueGroup moves a queue group, on every partition of its topic, to
// the earliest offset, the latest, a given offset (clamped into the log) or
// the first record at or after a time: records from there on are
// delivered again (replay), and earlier ones are done. Leases of records
// delivered before the reset are dropped; acks for them are ignored.
//
// With no parts each partition is reset through its leader, here or on
// another node; with parts only those are, and this node must lead them.
func (b *Broker) ResetQueueGroup(ctx context.Context, topicName, group string, spec ResetSpec, parts []int32) ([]topic.PartitionOffset, error) {
	def, err := b.QueueGroup(ctx, topicName, group)
	if err != nil {
		return nil, err
	}
	t, err := b.knownTopic(topicName) // the queue group's: known
	if err != nil {
		return nil, err
	}
	forward := len(parts) == 0
	if forward {
		for p := range t.Partitions {
			parts = append(parts, int32(p))
		}
	}
	var out []topic.PartitionOffset
	for _, p := range parts {
		local := func() (int64, error) { return b.resetPartition(ctx, def, p, spec) }
		var off int64
		if forward {
			off, err = onLeader(b, local, func(addr string) (int64, error) {
				return b.peers.ResetQueuePartition(ctx, addr, topicName, group, p, spec)
			})
		} else {
			off, err = local()
		}
		if err != nil {
			return out, err
		}
		out = append(out, topic.PartitionOffset{Topic: topicName, Partition: p, Offset: off})
	}
	b.queue.changed()
	return out, nil
}

// resetPartition resets def on one partition this node leads and returns
// the offset it moved to.
func (b *Broker) resetPartition(ctx context.Context, def queue.Def, p int32, spec ResetSpec) (int64, error) {
	c, ok, err := b.cursor(ctx, def, p)
	if err != nil {
		return 0, err
	}
	what := fmt.Sprintf("%s/%d", def.Topic, p)
	if !ok {
		return 0, fmt.Errorf("%w: %s is loading", ErrNotReady, what)
	}
	lg := c.part.Log
	var off int64
	switch spec.Spec {
	case SpecEarliest:
		off = lg.StartOffset()
	case SpecLatest:
		off = lg.HighWatermark()
	case SpecTimestamp:
		if off, err = offsetForTime(lg, spec.Timestamp); err != nil {
			return 0, err
		}
	case 0:
		off = min(max(spec.Offset, lg.StartOffset()), lg.HighWatermark())
	default:
		return 0, fmt.Errorf("%w: reset spec %d", ErrInvalidRequest, spec.Spec)
	}
	cmd := queue.Cmd{Op: queue.OpReset, TopicID: c.key.TopicID, Partition: c.key.Partition, Group: def.Name, Gen: c.q.Gen() + 1, Arg: off}
	if _, err := c.dg.Group.Apply(ctx, cluster.QueueCmd(&cmd)); err != nil {
		return 0, b.queueErr(c.dg, what, err)
	}
	return off, nil
}
