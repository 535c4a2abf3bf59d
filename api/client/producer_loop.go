package client

import (
	"errors"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/stratalog/strata/api/record"
)

// run is the producer's loop: it learns partition counts, seals batches
// whose linger passed, encodes them, finds their leaders and hands them
// to the brokers' streams. It sleeps until a record, an answer or a timer
// needs it.
func (p *Producer) run() {
	defer p.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		p.ensureProducerID()
		p.resolveTopics()
		p.step()
		wait := time.Hour
		if d := p.nextDeadline(); !d.IsZero() {
			wait = max(time.Until(d), 0)
		}
		timer.Reset(wait)
		select {
		case <-p.quit:
			return
		case <-p.wake:
		case <-timer.C:
		}
	}
}

// nextDeadline returns when the loop must run next without being woken.
func (p *Producer) nextDeadline() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	var d time.Time
	earlier := func(t time.Time) {
		if !t.IsZero() && (d.IsZero() || t.Before(d)) {
			d = t
		}
	}
	if !p.pidReady && p.fatal == nil {
		earlier(p.pidRetry)
	}
	busy := p.busyLocked()
	for _, t := range p.topics {
		if t.parts == nil && len(t.waiting) > 0 {
			earlier(t.metaRetryAt)
		}
		for _, ps := range t.parts {
			earlier(ps.deadline(&p.lim, busy))
		}
	}
	return d
}

// busyLocked reports whether half the buffer or more holds records: the
// producer is limited by the brokers (see partState.lingerReady). Caller
// must hold p.mu.
func (p *Producer) busyLocked() bool { return 2*p.buffered >= p.cfg.MaxBufferedRecords }

// resolveTopics learns the partition count of topics that have records
// waiting for it, and routes those records.
func (p *Producer) resolveTopics() {
	now := time.Now()
	p.mu.Lock()
	var names []string
	for name, t := range p.topics {
		if t.parts == nil && len(t.waiting) > 0 && !now.Before(t.metaRetryAt) {
			names = append(names, name)
		}
	}
	p.mu.Unlock()
	for _, name := range names {
		n, err := p.c.PartitionCount(p.ctx, name)
		if p.ctx.Err() != nil {
			return
		}
		if err == nil && n == 0 {
			err = newError(codes.Unavailable, "topic "+name+" has no partitions yet")
		}
		p.mu.Lock()
		t := p.topics[name]
		var out []completion
		switch {
		case err == nil:
			t.parts = make([]*partState, n)
			for i := range t.parts {
				t.parts[i] = &partState{tp: TopicPartition{name, int32(i)}, idempotent: !p.cfg.DisableIdempotence, nextSeq: p.startSeq}
			}
			t.metaErrs = 0
			for _, w := range t.waiting {
				if c, _ := p.routeLocked(t, w.rec, w.cb, w.partition, w.hasPartition, now); c != nil {
					out = append(out, *c)
				}
			}
			t.waiting = nil
		case retriable(err) && t.metaErrs < 2:
			// PartitionCount retried already; one more round covers a
			// metadata leader that was moving.
			t.metaErrs++
			t.metaRetryAt = now.Add(p.lim.backoff(t.metaErrs))
			p.log.Warn("no metadata for topic", "topic", name, "err", err)
		default:
			out = t.failWaiting(err, out)
			t.metaErrs = 0
		}
		p.completeLocked(out)
		p.mu.Unlock()
	}
}

// buildJob is a batch to encode outside the lock.
type buildJob struct {
	b    *batch
	gen  int
	recs []record.Record
	seq  int64
	data []byte
	err  error
	ps   *partState
}

// step seals due batches, encodes new ones, and dispatches what may be
// sent.
func (p *Producer) step() {
	now := time.Now()
	var jobs []buildJob
	var ready []*partState
	p.mu.Lock()
	if p.fatal != nil {
		p.mu.Unlock()
		return
	}
	force := p.flushing > 0 || p.closed
	busy := p.busyLocked()
	var unbuilt []*batch
	for _, t := range p.topics {
		for i, ps := range t.parts {
			if ps.sealDue(now, &p.lim, force, busy) && i == t.sticky {
				t.sticky = -1
			}
			if !p.pidReady || len(ps.queue) == 0 {
				continue
			}
			ps.resume(now)
			unbuilt = ps.unbuilt(unbuilt[:0])
			for _, b := range unbuilt {
				jobs = append(jobs, buildJob{b: b, gen: b.gen, recs: b.recs, seq: b.baseSeq, ps: ps})
			}
			if len(unbuilt) > 0 || ps.canSend(&p.lim) || (ps.retrying && ps.inflight == 0) {
				ready = append(ready, ps)
			}
		}
	}
	opt := record.BatchOptions{Compression: p.cfg.Compression, ProducerID: p.pid, ProducerEpoch: p.epoch}
	p.mu.Unlock()

	for i := range jobs {
		j := &jobs[i]
		o := opt
		o.BaseSequence = wireSeq(j.seq)
		j.data, j.err = record.AppendBatch(nil, j.recs, o)
	}

	p.mu.Lock()
	var out []completion
	for i := range jobs {
		j := &jobs[i]
		if j.b.gen != j.gen || j.ps.indexOf(j.b) < 0 {
			continue // trimmed, renumbered or completed meanwhile
		}
		if j.err != nil {
			out = append(out, j.ps.fail(j.b, j.err)...)
			continue
		}
		j.b.data = j.data
	}
	p.completeLocked(out)
	p.mu.Unlock()

	if len(ready) > 0 {
		p.dispatch(ready, now)
	}
}

// dispatch sends the sendable batches of the given partitions to their
// leaders' streams.
func (p *Producer) dispatch(parts []*partState, now time.Time) {
	// Find each partition's stream without the lock: this may read
	// metadata or open a stream.
	type route struct {
		ps  *partState
		s   *prodStream
		err error
	}
	routes := make([]route, 0, len(parts))
	for _, ps := range parts {
		p.mu.Lock()
		via := ps.via
		idle := ps.next(now, &p.lim) == nil
		p.mu.Unlock()
		if idle {
			continue
		}
		if via != nil {
			// Batches in flight pin the partition to their stream, so
			// that its answers stay in order.
			routes = append(routes, route{ps: ps, s: via})
			continue
		}
		addr, err := p.c.leader(p.ctx, ps.tp.Topic, ps.tp.Partition)
		var s *prodStream
		if err == nil {
			s, err = p.stream(addr)
		}
		routes = append(routes, route{ps: ps, s: s, err: err})
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	var out []completion
	woken := map[*prodStream]bool{}
	for _, r := range routes {
		ps := r.ps
		if r.err != nil {
			if p.ctx.Err() != nil {
				return
			}
			ps.routeErrs++
			if retriable(r.err) && ps.routeErrs <= p.cfg.MaxRetries {
				// The leader the metadata names may be gone (a refused
				// or unresolvable address): read it again before the
				// retry, or every retry dials the same dead address.
				p.c.invalidate(ps.tp.Topic)
				ps.retryLater(now, &p.lim)
				p.log.Debug("no route to partition", "partition", ps.tp, "err", r.err)
				continue
			}
			ps.routeErrs = 0
			out = append(out, ps.failQueued(r.err)...)
			continue
		}
		if r.s.broken || (ps.via != nil && ps.via != r.s) {
			continue // the loop comes back when the stream's answers are in
		}
		ps.routeErrs = 0
		for b := ps.next(now, &p.lim); b != nil; b = ps.next(now, &p.lim) {
			p.corr++
			ps.markSent(b, r.s)
			r.s.enqueueLocked(p.corr, ps, b)
		}
		woken[r.s] = true
	}
	p.completeLocked(out)
	for s := range woken {
		s.signal()
	}
}

// errStreamBroken wraps a stream failure as a retriable error for the
// batches that were in flight on it.
func errStreamBroken(addr string, err error) error {
	mapped := mapError(err, nil)
	if retriable(mapped) {
		return mapped
	}
	var e *Error
	msg := "produce stream to " + addr + " broke: " + err.Error()
	if errors.As(mapped, &e) {
		msg = "produce stream to " + addr + " broke: " + e.Code.String() + ": " + e.Message
	}
	return newError(codes.Unavailable, msg)
}
