package client

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Prefetch (QueueConsumerConfig.Prefetch) keeps records leased ahead of
// the application, as a NATS JetStream pull iterator does: without it a
// member's loop is latency-bound (receive, wait for the broker to commit
// the delivery counts, handle, ack, receive again) and the broker idles
// while the member handles a batch.
//
// The rules:
//
//   - Bound. Records received and not yet returned by Receive, plus those
//     asked for by receives in flight, never exceed Prefetch. A background
//     receive starts only when at least half a batch
//     (min(MaxMessages, Prefetch)/2) fits, so that a Receive taking a few
//     records does not cause a stream of tiny requests.
//   - Demand. The background receives start with the first Receive (or
//     Run), not with NewQueueConsumer, and stop when the buffer is full: a
//     member that stops receiving holds at most Prefetch records.
//   - Lease. A prefetched record's lease runs while it waits in the
//     buffer. The consumer learns the group's ack timeout once (one
//     DescribeQueueGroup, at the first Receive) and dates each record's
//     lease end on its own monotonic clock from the moment it sent the
//     receive: the broker starts the lease after the request arrives, so
//     that end is never later than the broker's (no clock skew involved).
//     Receive returns a record only while at least PrefetchMinLease of its
//     lease remains (default half the ack timeout); older records are
//     dropped from the buffer. If the group's ack timeout is lowered while
//     the consumer runs, a record may be returned after its lease ended:
//     it may then be handled twice, as any record whose handler outlives
//     its lease (at least once).
//   - Give back. A dropped record whose lease has still more than a tenth
//     of the ack timeout to run is nacked with a delay of 1 ms, so the
//     group redelivers it at once instead of after its lease; one with
//     less is left to expire (a nack racing the lease's end could release
//     the lease of a fresh delivery of the same record to this member).
//     Close does the same with every record still buffered, after it has
//     stopped the background receives. Records of a receive that Close
//     cuts short (its answer never read) come back when their lease ends.
//   - Delivery counts. The broker counts a delivery when it hands a record
//     out (durably, before answering), and it cannot tell a record handled
//     from one that sat in a client's buffer; no settle operation takes a
//     delivery back. So a prefetched record that is dropped or given back
//     has used one of its deliveries (the nack does not count another):
//     the count stays what it claims, the number of times the broker
//     handed the record out. A record given back on its last allowed
//     delivery goes to the dead-letter topic, as it would when its lease
//     expired; the nack carries no error text, so the dead letter keeps
//     the last error a handler gave. Keep Prefetch to what the application
//     handles well within an ack timeout.
//   - Errors. The first error of a background receive stops the
//     background receives; the first Receive that finds no buffered
//     record returns it, and the receives resume.

// maxPrefetchReceives caps the background receives in flight at once.
const maxPrefetchReceives = 8

// prefetcher keeps up to Prefetch records leased ahead of the application.
// Lock order: prefetcher.mu, then nothing (no request is made under it).
type prefetcher struct {
	q *QueueConsumer

	ctx    context.Context // ends with Close; the background receives use it
	cancel context.CancelFunc
	wg     sync.WaitGroup // the background receives

	mu       sync.Mutex
	started  bool
	buf      []prefetched  // oldest first
	buffered int           // records in buf
	asked    int           // records asked for by receives in flight
	err      error         // first background error not yet returned by Receive
	changed  chan struct{} // closed and replaced when buf, asked or err change
	lease    time.Duration // the group's ack timeout, once started
	minLease time.Duration // what a record must have left to be returned
}

// prefetched is what one background receive got, not yet handed out, and
// the end of the leases on the local monotonic clock.
type prefetched struct {
	msgs     []QueueMessage
	deadline time.Time
}

func newPrefetcher(q *QueueConsumer) *prefetcher {
	p := &prefetcher{q: q, changed: make(chan struct{})}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	return p
}

// notifyLocked wakes whoever waits for a change. Caller must hold p.mu.
func (p *prefetcher) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// start learns the group's ack timeout and starts the background receives,
// once.
func (p *prefetcher) start(ctx context.Context) error {
	p.mu.Lock()
	started := p.started
	p.mu.Unlock()
	if started {
		return nil
	}
	d, err := NewAdmin(p.q.c).DescribeQueueGroup(ctx, p.q.cfg.Topic, p.q.cfg.Group)
	if err != nil {
		return fmt.Errorf("client: prefetch: %w", err)
	}
	if d.Settings.AckTimeout <= 0 {
		return fmt.Errorf("client: prefetch: queue group %q reports ack timeout %v", p.q.cfg.Group, d.Settings.AckTimeout)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.started {
		return nil // a concurrent Receive was first
	}
	if p.ctx.Err() != nil {
		return ErrClosed
	}
	p.started, p.lease = true, d.Settings.AckTimeout
	p.minLease = p.q.cfg.PrefetchMinLease
	if p.minLease <= 0 || p.minLease >= p.lease {
		p.minLease = p.lease / 2
	}
	n := min(max(p.q.cfg.Prefetch/p.q.cfg.MaxMessages, 1), maxPrefetchReceives)
	for range n {
		p.wg.Add(1)
		go p.loop()
	}
	return nil
}

// loop is one background receive after another, while there is room.
func (p *prefetcher) loop() {
	defer p.wg.Done()
	for {
		n, ok := p.reserve()
		if !ok {
			return
		}
		sent := time.Now()
		msgs, err := p.q.receive(p.ctx, n, p.q.cfg.MaxWait)
		p.add(n, msgs, sent, err)
	}
}

// reserve waits until a receive of at least half a batch fits and no error
// is pending, and reserves room for it; false when closing.
func (p *prefetcher) reserve() (int, bool) {
	batch := min(p.q.cfg.MaxMessages, p.q.cfg.Prefetch)
	least := max(batch/2, 1)
	for p.ctx.Err() == nil {
		p.mu.Lock()
		room := p.q.cfg.Prefetch - p.buffered - p.asked
		if p.err == nil && room >= least {
			n := min(room, batch)
			p.asked += n
			p.mu.Unlock()
			return n, true
		}
		ch := p.changed
		p.mu.Unlock()
		select {
		case <-ch:
		case <-p.ctx.Done():
		}
	}
	return 0, false
}

// add buffers what a background receive of n records got. Records that
// arrive while Close cuts the receive short are buffered too: Close gives
// them back after the receives have stopped.
func (p *prefetcher) add(n int, msgs []QueueMessage, sent time.Time, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.asked -= n
	if len(msgs) > 0 {
		p.buf = append(p.buf, prefetched{msgs: msgs, deadline: sent.Add(p.lease)})
		p.buffered += len(msgs)
	}
	if err != nil && p.err == nil && p.ctx.Err() == nil {
		p.err = err
	}
	p.notifyLocked()
}

// receive returns up to max buffered records, waiting up to wait (not at
// all when wait < 0) for some, or the pending background error.
func (p *prefetcher) receive(ctx context.Context, max int, wait time.Duration) ([]QueueMessage, error) {
	if err := p.start(ctx); err != nil {
		return nil, err
	}
	var expired <-chan time.Time // nil when wait < 0: the loop returns first
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		expired = t.C
	}
	for {
		p.mu.Lock()
		out, stale := p.takeLocked(max, time.Now())
		var err error
		if len(out) == 0 && p.err != nil {
			err, p.err = p.err, nil
		}
		if len(out) > 0 || len(stale) > 0 || err != nil {
			p.notifyLocked() // room for the background receives
		}
		ch := p.changed
		p.mu.Unlock()
		if len(stale) > 0 {
			p.q.settleAsync("nack", stale, time.Millisecond, false)
		}
		if len(out) > 0 || err != nil || wait < 0 {
			return out, err
		}
		select {
		case <-ch:
		case <-expired:
			return nil, nil
		case <-ctx.Done():
			return nil, fmt.Errorf("client: receive from queue group %q: %w", p.q.cfg.Group, ctx.Err())
		case <-p.ctx.Done():
			return nil, ErrClosed
		}
	}
}

// takeLocked removes up to max records that still have PrefetchMinLease of
// their lease from the front of the buffer, dropping the older ones met on
// the way; it returns the records to hand out and those of the dropped
// ones to give back (see the rules above). Records of one receive are
// handed out without a copy when they are all Receive returns. Caller must
// hold p.mu.
func (p *prefetcher) takeLocked(max int, now time.Time) (out, giveBack []QueueMessage) {
	for len(p.buf) > 0 && len(out) < max {
		b := &p.buf[0]
		left := b.deadline.Sub(now)
		k := len(b.msgs)
		switch {
		case left >= p.minLease:
			k = min(k, max-len(out))
			if out == nil {
				out = b.msgs[:k:k]
			} else {
				out = append(out, b.msgs[:k]...)
			}
		case left > p.lease/10:
			giveBack = append(giveBack, b.msgs...)
		}
		p.buffered -= k
		if b.msgs = b.msgs[k:]; len(b.msgs) == 0 {
			p.buf[0] = prefetched{}
			p.buf = p.buf[1:]
		}
	}
	return out, giveBack
}

// close stops the background receives, waits for them, and gives the
// buffered records back to the group (a nack with a delay of 1 ms); it
// returns the error of that nack. Records it gives back are delivered
// again at once, to any member, their delivery counted once more only
// when the broker hands them out again.
func (p *prefetcher) close() error {
	p.mu.Lock()
	p.cancel() // under p.mu: start adds to p.wg only before this
	p.mu.Unlock()
	p.wg.Wait()
	p.mu.Lock()
	var giveBack []QueueMessage
	now := time.Now()
	for _, b := range p.buf {
		if b.deadline.Sub(now) > p.lease/10 {
			giveBack = append(giveBack, b.msgs...)
		}
	}
	p.buf, p.buffered = nil, 0
	p.notifyLocked()
	p.mu.Unlock()
	if len(giveBack) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := p.q.settleAll(ctx, "nack", giveBack, time.Millisecond, ""); err != nil {
		return fmt.Errorf("client: give back %d prefetched records (they return after their lease): %w", len(giveBack), err)
	}
	return nil
}
