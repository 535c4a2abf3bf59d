package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stratalog/strata/api/record"
	"github.com/stratalog/strata/cluster"
	"github.com/stratalog/strata/internal/queue"
	"github.com/stratalog/strata/internal/topic"
)

// QueueMessage is a record leased to a queue-group member.
type QueueMessage struct {
	Partition  int32
	Offset     int64
	Key        []byte
	Value      []byte
	Headers    []record.Header
	Timestamp  time.Time
	Deliveries int32 // this delivery included
	// LeaseUntil is when the lease ends unless extended (wall clock, for
	// the member's information; the broker uses its monotonic clock).
	LeaseUntil time.Time
}

// ReceiveRequest asks for records of a queue group.
type ReceiveRequest struct {
	Topic, Group, Member string
	// Partition is the partition to receive from, or -1 for any partition
	// this node leads.
	Partition int32
	// AlsoLed, with a Partition, also serves every other partition this
	// node leads; the Partition named must be led here (else NotLeader),
	// so that a client routing by stale metadata hears of it.
	AlsoLed bool
	Max     int
	// Wait is how long to long-poll when nothing is available.
	Wait time.Duration
}

// maxReceive caps the records of one receive.
const maxReceive = 10000

// QueueReceive leases up to Max records of the group to Member. Each
// record's delivery count is incremented through raft before it is
// returned, so a restart or failover never forgets a delivery. When none
// is available it waits up to Wait for a record to be produced, released or
// due, without polling. A partition whose new leader is still applying
// what its predecessor committed leases nothing until it has: the receive
// waits for that as for a record.
func (b *Broker) QueueReceive(ctx context.Context, req ReceiveRequest) ([]QueueMessage, error) {
	def, err := b.QueueGroup(ctx, req.Topic, req.Group)
	if err != nil {
		return nil, err
	}
	if req.Member == "" {
		return nil, fmt.Errorf("%w: a receive needs a member id", ErrInvalidRequest)
	}
	req.Max = min(max(req.Max, 1), maxReceive)
	parts, err := b.queueParts(ctx, def, req.Partition, req.AlsoLed)
	if err != nil {
		return nil, err
	}
	deadline := b.now().Add(min(max(req.Wait, 0), b.cfg.Queue.MaxWait))
	for {
		notify := b.queue.waitCh()
		var out []QueueMessage
		var due time.Time
		var catching []*cluster.Group
		start := int(atomic.AddUint32(&b.queue.rr, 1))
		for i := range parts {
			if len(out) >= req.Max {
				break
			}
			p := parts[(start+i)%len(parts)]
			msgs, d, err := b.receivePartition(ctx, def, p, req.Member, req.Max-len(out))
			if err != nil {
				if len(out) > 0 {
					return out, nil
				}
				if g := b.catchingUp(def.Topic, p); g != nil && errors.Is(err, ErrNotReady) {
					catching = append(catching, g)
					continue
				}
				if len(parts) == 1 || !errors.Is(err, ErrNotReady) {
					return nil, err
				}
			}
			out = append(out, msgs...)
			if !d.IsZero() && (due.IsZero() || d.Before(due)) {
				due = d
			}
		}
		if len(out) > 0 || !b.now().Before(deadline) {
			return out, nil
		}
		waitFrom := time.Now()
		err := b.waitQueue(ctx, def, parts, catching, notify, due, deadline)
		addWait(ctx, time.Since(waitFrom))
		if err != nil {
			return nil, err
		}
	}
}

// catchingUp returns the data group of a partition of topic when this
// node leads it but has not yet applied what earlier leaders committed,
// else nil.
func (b *Broker) catchingUp(topic string, partition int32) *cluster.Group {
	t, err := b.knownTopic(topic)
	if err != nil || int(partition) >= len(t.Partitions) {
		return nil
	}
	if dg := b.node.DataGroup(t.Partitions[partition].DataGroup); dg != nil && dg.Group.CatchingUp() {
		return dg.Group
	}
	return nil
}

// queueParts returns the partitions a receive serves.
func (b *Broker) queueParts(ctx context.Context, def queue.Def, partition int32, alsoLed bool) ([]int32, error) {
	t, err := b.knownTopic(def.Topic) // the queue group's: known
	if err != nil {
		return nil, err
	}
	if partition >= 0 {
		if int(partition) >= len(t.Partitions) {
			return nil, fmt.Errorf("%w: %q has %d partitions, asked for %d", topic.ErrUnknownPartition, def.Topic, len(t.Partitions), partition)
		}
		if !alsoLed {
			return []int32{partition}, nil
		}
		_, dg, _, err := b.partition(ctx, def.Topic, partition)
		if err != nil {
			return nil, err
		}
		if !dg.Group.IsLeader() {
			return nil, b.notLeader(dg.Group, fmt.Sprintf("%s/%d", def.Topic, partition))
		}
	}
	out := []int32{}
	if partition >= 0 {
		out = append(out, partition) // first, so a full receive serves it
	}
	for i, a := range t.Partitions {
		if int32(i) == partition {
			continue
		}
		if dg := b.node.DataGroup(a.DataGroup); dg != nil && dg.Group.IsLeader() {
			out = append(out, int32(i))
		}
	}
	if len(out) == 0 {
		_, dg, _, err := b.partition(ctx, def.Topic, 0)
		if err != nil {
			return nil, err
		}
		return nil, b.notLeader(dg.Group, def.Topic+"/0")
	}
	return out, nil
}

// waitQueue sleeps until records may be available: a release or reset
// (notify), a write to one of the partitions, a catching-up leader of one
// of them becoming ready (or losing leadership), the next due time, or the
// deadline.
func (b *Broker) waitQueue(ctx context.Context, def queue.Def, parts []int32, catching []*cluster.Group, notify <-chan struct{}, due, deadline time.Time) error {
	until := deadline
	if !due.IsZero() && due.Before(until) {
		until = due
	}
	wctx, cancel := context.WithTimeout(ctx, until.Sub(b.now())) // not WithDeadline: until is on b.now's clock
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel (deferred below, so it runs first)
	defer cancel()
	wrote := make(chan struct{}, len(parts)+len(catching))
	for _, g := range catching {
		ch := g.ReadyChanged() // before the check: no change is missed
		if !g.CatchingUp() {
			return ctx.Err() // ready meanwhile: receive again
		}
		noteCatchUp()
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-ch:
				wrote <- struct{}{}
			case <-wctx.Done():
			}
		}()
	}
	for _, p := range parts {
		lp, err := b.localPartition(ctx, def.Topic, p)
		if err != nil {
			continue
		}
		wg.Add(1)
		go func(lg interface {
			Wait(context.Context, int64) error
			HighWatermark() int64
		}) {
			defer wg.Done()
			if lg.Wait(wctx, lg.HighWatermark()) == nil {
				wrote <- struct{}{}
			}
		}(lp.Log)
	}
	select {
	case <-notify:
	case <-wrote:
	case <-wctx.Done():
	}
	return ctx.Err()
}

// receivePartition leases up to max records of one partition. It returns
// when the next record may become due when it leased nothing.
func (b *Broker) receivePartition(ctx context.Context, def queue.Def, partition int32, member string, maxN int) ([]QueueMessage, time.Time, error) {
	c, ok, err := b.cursor(ctx, def, partition)
	if err != nil || !ok {
		return nil, b.now().Add(50 * time.Millisecond), err
	}
	next, room := c.lead.ReadNext(b.cfg.Queue.MaxWindow)
	if start := c.part.Log.StartOffset(); next < start {
		return nil, time.Time{}, b.skipRetained(ctx, c, next, start)
	}
	var fresh []queue.RecInfo
	var ra *readAhead
	if want := min(room, maxN); want > 0 {
		ra = readAheadFrom(c.part, c.lead, next, want)
		recs := ra.recs[:min(want, len(ra.recs))]
		fresh = make([]queue.RecInfo, len(recs))
		for i := range recs {
			fresh[i] = b.queue.recInfo(&recs[i])
		}
	}
	now := b.now()
	pick := c.lead.Pick(queue.PickParams{
		Now: now, Member: member, Max: maxN, MaxLeased: int(def.Settings.MaxLeased), MaxWindow: b.cfg.Queue.MaxWindow,
		KeyOrdering: def.Settings.Ordering == queue.OrderingKey, AckTimeout: ackTimeout(def),
		MaxDeliveries: def.Settings.MaxDeliveries, Term: c.term,
	}, fresh)
	countQueue(b.m.qc.expiries, def, int(c.lead.TakeLeaseExpiries()))
	if pick.Expired {
		b.queue.wake()
	}
	if len(pick.Offsets) == 0 {
		return nil, pick.NextDue, nil
	}
	inMemory := b.queue.countsInMemory // a failpoint: false but in a test
	cmd := queue.Cmd{Op: queue.OpDeliver, TopicID: c.key.TopicID, Partition: c.key.Partition, Group: def.Name, Gen: pick.Gen, Offsets: pick.Offsets}
	if inMemory {
		cmd.Flags = queue.FlagNoCount
	}
	_, err = c.dg.Group.Apply(ctx, cluster.QueueCmd(&cmd))
	now = b.now()
	counts := c.lead.Delivered(pick.Offsets, err == nil, inMemory, now, ackTimeout(def))
	if err != nil {
		b.queue.changed()
		if errors.Is(err, queue.ErrReset) {
			return nil, time.Time{}, nil // a reset won the race: receive again
		}
		return nil, time.Time{}, b.queueErr(c.dg, fmt.Sprintf("%s/%d", def.Topic, partition), err)
	}
	// Records handed out before (redeliveries) are read again; new ones
	// are in the read-ahead.
	var missing []int64
	for _, off := range pick.Offsets {
		if _, ok := ra.find(off); !ok {
			missing = append(missing, off)
		}
	}
	var again map[int64]record.Record
	if len(missing) > 0 {
		slices.Sort(missing)
		again = readRecords(c.part, missing)
	}
	out := make([]QueueMessage, 0, len(pick.Offsets))
	until := now.Add(ackTimeout(def))
	for i, off := range pick.Offsets {
		r, ok := ra.find(off)
		if !ok {
			r, ok = again[off]
		}
		if !ok || counts[i] == 0 {
			continue // gone (retention) or reset meanwhile
		}
		out = append(out, QueueMessage{Partition: partition, Offset: off, Key: r.Key, Value: r.Value,
			Headers: r.Headers, Timestamp: r.Timestamp, Deliveries: counts[i], LeaseUntil: until})
	}
	return out, time.Time{}, nil
}

// skipRetained moves a queue group past records that retention deleted
// before the group read them (next, the first offset it has not read, is
// below the log start): every record of its window is below the log start
// too, so nothing still readable is dropped. Without it the group would
// wait forever for records that no longer exist. The skipped records are
// counted in strata_queue_retention_skipped_records_total.
func (b *Broker) skipRetained(ctx context.Context, c queueCursor, next, start int64) error {
	cmd := queue.Cmd{Op: queue.OpReset, TopicID: c.key.TopicID, Partition: c.key.Partition, Group: c.def.Name, Gen: c.q.Gen() + 1, Arg: start}
	if _, err := c.dg.Group.Apply(ctx, cluster.QueueCmd(&cmd)); err != nil {
		if errors.Is(err, queue.ErrBusy) || errors.Is(err, queue.ErrReset) {
			return nil // dead letters being written, or a reset: next receive
		}
		return b.queueErr(c.dg, fmt.Sprintf("%s/%d", c.def.Topic, c.key.Partition), err)
	}
	b.m.queueSkipped.WithLabelValues(c.def.Name, c.def.Topic).Add(float64(start - next))
	b.log.Warn("queue: retention deleted records the group had not read; skipped them",
		"group", c.def.Name, "topic", c.def.Topic, "partition", c.key.Partition, "from", next, "to", start)
	b.queue.changed()
	return nil
}
