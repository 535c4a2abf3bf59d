package broker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/stratalog/strata/cluster"
	"github.com/stratalog/strata/internal/queue"
)

// SettleRequest names leased records of one queue group to ack, nack,
// reject or extend.
type SettleRequest struct {
	Topic, Group, Member string
	// Offsets lists offsets by partition.
	Offsets map[int32][]int64
	// Delay is, for a nack, how long before redelivery (0: the group's
	// backoff); for an extend, the new lease from now (0: the ack timeout).
	Delay time.Duration
	// Error is the error text a member gives with a nack or a reject; it
	// goes into the dead-letter headers.
	Error string
}

// QueueAck marks records done. An ack is accepted from any member (the
// work is done) for any delivered record that is neither done nor being
// dead-lettered; it returns how many records it settled.
func (b *Broker) QueueAck(ctx context.Context, req SettleRequest) (int, error) {
	return b.settle(ctx, req, func(c queueCursor, s []queue.Settling) error {
		err := c.apply(ctx, b, queue.Cmd{Op: queue.OpAck, Offsets: offsetsOf(s)})
		if err == nil {
			b.m.observeAcks(c.def, s, b.now())
		}
		return err
	}, true)
}

// QueueNack releases records of the member: each becomes available again
// after Delay, or after the group's backoff for its delivery count. A
// record that has had max deliveries goes to the dead-letter topic instead.
func (b *Broker) QueueNack(ctx context.Context, req SettleRequest) (int, error) {
	return b.settle(ctx, req, func(c queueCursor, s []queue.Settling) error {
		var retry, times, dead []int64
		now := b.now()
		for _, r := range s {
			if r.Deliveries >= c.def.Settings.MaxDeliveries {
				dead = append(dead, r.Offset)
				continue
			}
			d := req.Delay
			if d <= 0 {
				d = backoff(c.def.Settings, r.Deliveries)
			}
			retry = append(retry, r.Offset)
			times = append(times, now.Add(d).UnixMilli())
		}
		var errs []error
		if len(retry) > 0 {
			errs = append(errs, c.apply(ctx, b, queue.Cmd{Op: queue.OpNack, Offsets: retry, Times: times, Text: req.Error}))
		}
		if len(dead) > 0 {
			errs = append(errs, c.apply(ctx, b, queue.Cmd{Op: queue.OpDeadMark, Offsets: dead,
				Reason: queue.ReasonMaxDeliveries, Text: req.Error}))
			b.queue.wake()
		}
		if err := errors.Join(errs...); err != nil {
			return err
		}
		countQueue(b.m.qc.nacks, c.def, len(s))
		return nil
	}, false)
}

// QueueReject sends records of the member straight to the dead-letter
// topic with reason "rejected".
func (b *Broker) QueueReject(ctx context.Context, req SettleRequest) (int, error) {
	return b.settle(ctx, req, func(c queueCursor, s []queue.Settling) error {
		defer b.queue.wake()
		err := c.apply(ctx, b, queue.Cmd{Op: queue.OpDeadMark, Offsets: offsetsOf(s),
			Reason: queue.ReasonRejected, Text: req.Error})
		if err == nil {
			countQueue(b.m.qc.rejects, c.def, len(s))
		}
		return err
	}, false)
}

// QueueExtend extends the leases the member holds on records still being
// worked on, to Delay from now (the ack timeout when 0). Leases live in
// the leader's memory only: an extend costs no raft write.
func (b *Broker) QueueExtend(ctx context.Context, req SettleRequest) (int, error) {
	def, err := b.QueueGroup(ctx, req.Topic, req.Group)
	if err != nil {
		return 0, err
	}
	d := req.Delay
	if d <= 0 {
		d = ackTimeout(def)
	}
	n := 0
	for _, p := range slices.Sorted(maps.Keys(req.Offsets)) {
		c, ok, err := b.cursorWait(ctx, def, p, leaderCatchUp)
		if err != nil {
			return n, err
		}
		if !ok {
			return n, fmt.Errorf("%w: %s/%d is loading", ErrNotReady, def.Topic, p)
		}
		now := b.now()
		n += len(c.lead.Extend(req.Member, req.Offsets[p], now, now.Add(d)))
	}
	return n, nil
}

// settle runs op on the records of each partition that Reserve lets
// through, then releases them. Partitions settle concurrently, so that
// their raft commands share log writes and replication rounds.
func (b *Broker) settle(ctx context.Context, req SettleRequest, op func(queueCursor, []queue.Settling) error, anyMember bool) (int, error) {
	def, err := b.QueueGroup(ctx, req.Topic, req.Group)
	if err != nil {
		return 0, err
	}
	parts := slices.Sorted(maps.Keys(req.Offsets))
	if len(parts) == 1 {
		return b.settlePartition(ctx, def, req, parts[0], op, anyMember)
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		n    int
		errs []error
	)
	for _, p := range parts {
		wg.Go(func() {
			k, err := b.settlePartition(ctx, def, req, p, op, anyMember)
			mu.Lock()
			defer mu.Unlock()
			n += k
			if err != nil {
				errs = append(errs, err)
			}
		})
	}
	wg.Wait()
	return n, errors.Join(errs...)
}

// settlePartition settles the records of req on partition p.
func (b *Broker) settlePartition(ctx context.Context, def queue.Def, req SettleRequest, p int32, op func(queueCursor, []queue.Settling) error, anyMember bool) (int, error) {
	c, ok, err := b.cursorWait(ctx, def, p, leaderCatchUp)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, fmt.Errorf("%w: %s/%d is loading", ErrNotReady, def.Topic, p)
	}
	offs := slices.Clone(req.Offsets[p])
	slices.Sort(offs)
	s := c.lead.Reserve(req.Member, slices.Compact(offs), anyMember, b.now())
	if len(s) == 0 {
		return 0, nil
	}
	if err = op(c, s); err != nil {
		// The member keeps its leases: it may try again (or the command
		// may have been applied after all).
		c.lead.Unreserve(offsetsOf(s))
		return 0, err
	}
	c.lead.Release(offsetsOf(s))
	b.queue.changed()
	return len(s), nil
}

// apply applies a queue command to the cursor's partition, filling in the
// key, group and generation.
func (c queueCursor) apply(ctx context.Context, b *Broker, cmd queue.Cmd) error {
	cmd.TopicID, cmd.Partition, cmd.Group, cmd.Gen = c.key.TopicID, c.key.Partition, c.def.Name, c.q.Gen()
	if _, err := c.dg.Group.Apply(ctx, cluster.QueueCmd(&cmd)); err != nil {
		return b.queueErr(c.dg, fmt.Sprintf("%s/%d", c.def.Topic, c.key.Partition), err)
	}
	return nil
}

// backoff is the wait after the given number of deliveries:
// initial·2^(deliveries-1), capped at the max, plus up to a fifth more at
// random so that retries of a burst spread out. It is never shorter than
// the nominal value.
func backoff(s queue.Settings, deliveries int32) time.Duration {
	d := s.BackoffMaxMs
	if n := deliveries - 1; n >= 0 && n < 40 && s.BackoffInitialMs<<n < s.BackoffMaxMs {
		d = s.BackoffInitialMs << n
	}
	return time.Duration(d)*time.Millisecond + time.Duration(rand.Int64N(d/5+1))*time.Millisecond
}

func offsetsOf(s []queue.Settling) []int64 {
	out := make([]int64, len(s))
	for i, r := range s {
		out[i] = r.Offset
	}
	return out
}
