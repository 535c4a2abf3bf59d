package client

import (
	"errors"
	"fmt"
	"time"

	"github.com/stratalog/strata/api/record"
)

// This file is the producer's per-partition state machine: batching,
// sequence numbers, in-flight limits, retries and the resume rule. It does
// no I/O and takes the time as an argument, so it is tested without a
// network. The Producer calls it with p.mu held.

// completion is the outcome of a run of records of one partition (a
// batch, or the part of one that was trimmed), handed to their callbacks
// outside the producer's lock. One per batch, not per record: the
// callbacks' Results are made as they are called.
type completion struct {
	tp   TopicPartition // Partition -1 when the record never had one
	cbs  []func(Result, error)
	base int64 // offset of the first record; -1 when unknown
	dup  bool
	err  error
}

// call runs the callbacks.
func (c *completion) call() {
	res := Result{Topic: c.tp.Topic, Partition: c.tp.Partition, Offset: -1, Duplicate: c.dup}
	for i, cb := range c.cbs {
		if cb == nil {
			continue
		}
		if c.base >= 0 {
			res.Offset = c.base + int64(i)
		}
		cb(res, c.err)
	}
}

// batch is one sealed batch of a partition.
type batch struct {
	recs []record.Record
	cbs  []func(Result, error)
	// baseSeq is the sequence of recs[0], unwrapped (see wireSeq); -1
	// without idempotence.
	baseSeq int64
	// data is the encoded batch: nil until built, and again after a trim
	// or a renumbering. A retry resends the same bytes.
	data []byte
	// gen counts changes to recs and baseSeq, so that a build made
	// outside the lock is installed only if it is still current.
	gen      int
	attempts int // sends so far
	inflight bool
}

// end returns the sequence after the batch's last record.
func (b *batch) end() int64 { return b.baseSeq + int64(len(b.recs)) }

// The partition keeps its sequences as int64 values that never wrap, so
// that ordering them is plain arithmetic; a batch carries the int32 the
// broker knows, which wraps to 0 after math.MaxInt32 as Kafka's does.
const seqSpace = 1 << 31

// wireSeq returns the sequence a batch carries for the unwrapped s (-1,
// no idempotence, stays -1).
func wireSeq(s int64) int32 {
	if s < 0 {
		return -1
	}
	return int32(s % seqSpace)
}

// unwrapSeq returns the unwrapped sequence of the broker's e nearest to
// near (the head of the queue), but not below 0: an e far ahead of a
// producer that has not wrapped yet is a resumed producer's earlier run
// having written that much, never a gap behind sequence 0.
func unwrapSeq(e int32, near int64) int64 {
	s := near - near%seqSpace + int64(e)
	switch {
	case s-near > seqSpace/2 && s >= seqSpace:
		s -= seqSpace
	case near-s > seqSpace/2:
		s += seqSpace
	}
	return s
}

// partLimits are the producer settings a partition needs.
type partLimits struct {
	batchBytes  int
	linger      time.Duration
	maxInFlight int
	maxRetries  int
	// backoff returns the wait after the n-th consecutive failure (n ≥ 1).
	backoff func(n int) time.Duration
}

// partState is one partition of a producer.
type partState struct {
	tp         TopicPartition
	idempotent bool

	// The open batch, still accepting records.
	recs  []record.Record
	cbs   []func(Result, error)
	bytes int
	since time.Time // when its first record came
	hint  int       // recent batch sizes, to size the next open batch

	queue    []*batch // sealed, unacknowledged, in sequence order
	inflight int      // batches of queue awaiting an answer (a prefix)
	via      *prodStream
	nextSeq  int64

	// retrying: an attempt failed; nothing is sent until every batch in
	// flight has its answer and backoffUntil has passed, then the queue
	// is sent again from its head, in order.
	retrying     bool
	backoffUntil time.Time
	failures     int  // consecutive failed rounds, for the backoff
	acked        bool // a batch was acknowledged in this run
	routeErrs    int  // consecutive failures to find the leader

	// lost is the range of sequences [lostFrom, lostTo) of batches that
	// failed for good, which the broker may or may not have written.
	lost             bool
	lostFrom, lostTo int64
	// renumber: the broker expects renumberTo, inside the lost range, so
	// the lost batches were not written; once nothing is in flight the
	// queue's sequences move down to close the gap.
	renumber   bool
	renumberTo int64
}

// recordSize estimates a record's encoded size in a batch.
func recordSize(r *record.Record) int {
	n := 12 + len(r.Key) + len(r.Value)
	for i := range r.Headers {
		n += 4 + len(r.Headers[i].Key) + len(r.Headers[i].Value)
	}
	return n
}

// add puts a record in the open batch. A batch that the record would
// overflow is sealed first, and a batch the record fills is sealed after;
// add reports whether it sealed one.
func (p *partState) add(r record.Record, cb func(Result, error), lim *partLimits, now time.Time) (sealed bool) {
	size := recordSize(&r)
	room := lim.batchBytes - record.BatchHeaderLen
	if len(p.recs) > 0 && p.bytes+size > room {
		p.seal()
		sealed = true
	}
	if len(p.recs) == 0 {
		p.since = now
		if p.recs == nil {
			n := p.hint + p.hint/4 + 8 // headroom: batches vary
			p.recs, p.cbs = make([]record.Record, 0, n), make([]func(Result, error), 0, n)
		}
	}
	p.recs = append(p.recs, r)
	p.cbs = append(p.cbs, cb)
	p.bytes += size
	if p.bytes >= room {
		p.seal()
		sealed = true
	}
	return sealed
}

// seal turns the open batch into a queued batch with the next sequences.
func (p *partState) seal() {
	if len(p.recs) == 0 {
		return
	}
	b := &batch{recs: p.recs, cbs: p.cbs, baseSeq: -1}
	if p.idempotent {
		b.baseSeq = p.nextSeq
		p.nextSeq += int64(len(p.recs))
	}
	p.queue = append(p.queue, b)
	p.hint = max(len(p.recs), p.hint*3/4)
	p.recs, p.cbs, p.bytes = nil, nil, 0
}

// inflightLimit is MaxInFlight, or 1 until the partition has acknowledged
// a batch of this producer: a broker that does not know the producer yet
// accepts any first sequence, so a gap behind a failed first batch would
// go unnoticed.
func (p *partState) inflightLimit(lim *partLimits) int {
	if p.idempotent && !p.acked {
		return 1
	}
	return lim.maxInFlight
}

// canSend reports whether a new batch could go out now.
func (p *partState) canSend(lim *partLimits) bool {
	return !p.retrying && p.inflight < p.inflightLimit(lim)
}

// lingerReady reports whether the open batch may be sealed once its
// linger has passed: the partition can send and, when the producer is
// busy, none of its batches awaits an answer. A busy producer (half its
// buffer or more is full) is limited by the brokers, not by the linger:
// each batch costs a request, a raft entry and an FSM apply whatever its
// size, and with many partitions the linger alone cut batches to a hundred
// records (keyed, 100 partitions). Holding the open batch while the
// partition's previous one is in flight lets it grow with the brokers'
// answer time instead; a batch that fills is still sealed and pipelined.
func (p *partState) lingerReady(lim *partLimits, busy bool) bool {
	return p.canSend(lim) && (!busy || len(p.queue) == 0)
}

// sealDue seals the open batch when its linger has passed and it is
// lingerReady (until then the batch keeps growing), or when force is set
// (Flush). It reports whether it sealed.
func (p *partState) sealDue(now time.Time, lim *partLimits, force, busy bool) bool {
	if len(p.recs) == 0 {
		return false
	}
	if force || (now.Sub(p.since) >= lim.linger && p.lingerReady(lim, busy)) {
		p.seal()
		return true
	}
	return false
}

// deadline returns when the partition next needs the loop (a linger that
// ends, a backoff that ends), or the zero Time. An answer wakes the loop
// for a batch that is not lingerReady.
func (p *partState) deadline(lim *partLimits, busy bool) time.Time {
	var d time.Time
	if len(p.recs) > 0 && p.lingerReady(lim, busy) {
		d = p.since.Add(lim.linger)
	}
	if p.retrying && p.inflight == 0 && (d.IsZero() || p.backoffUntil.Before(d)) {
		d = p.backoffUntil
	}
	return d
}

// unbuilt returns the batches that need encoding.
func (p *partState) unbuilt(dst []*batch) []*batch {
	for _, b := range p.queue {
		if b.data == nil && !b.inflight {
			dst = append(dst, b)
		}
	}
	return dst
}

// resume ends a retry round once nothing is in flight and the backoff
// has passed, applying a pending renumbering (which leaves batches to
// encode again). It reports whether the partition may send.
func (p *partState) resume(now time.Time) bool {
	if p.retrying {
		if p.inflight > 0 || now.Before(p.backoffUntil) {
			return false
		}
		p.retrying = false
		if p.renumber {
			p.applyRenumber()
		}
	}
	return true
}

// next returns the batch to send now, or nil. Batches go in sequence
// order; after a failure the whole queue goes again from its head.
func (p *partState) next(now time.Time, lim *partLimits) *batch {
	if !p.resume(now) || p.inflight >= p.inflightLimit(lim) {
		return nil
	}
	for _, b := range p.queue {
		if b.inflight {
			continue
		}
		if b.data == nil {
			return nil // it must go first, and is not encoded yet
		}
		return b
	}
	return nil
}

// markSent records that b went out on stream s.
func (p *partState) markSent(b *batch, s *prodStream) {
	b.inflight = true
	b.attempts++
	p.inflight++
	p.via = s
}

// landed records that b's attempt ended, one way or the other.
func (p *partState) landed(b *batch) {
	if b.inflight {
		b.inflight = false
		p.inflight--
	}
	if p.inflight == 0 {
		p.via = nil
	}
}

func (p *partState) indexOf(b *batch) int {
	for i, x := range p.queue {
		if x == b {
			return i
		}
	}
	return -1
}

func (p *partState) remove(i int) {
	copy(p.queue[i:], p.queue[i+1:])
	p.queue[len(p.queue)-1] = nil
	p.queue = p.queue[:len(p.queue)-1]
}

// onAck completes b: the broker wrote it at base (or had written it, when
// dup; base is then -1 if the broker no longer knows where).
func (p *partState) onAck(b *batch, base int64, dup bool) []completion {
	p.landed(b)
	i := p.indexOf(b)
	if i < 0 {
		return nil
	}
	p.remove(i)
	p.acked = true
	p.failures = 0
	if p.lost && b.baseSeq >= p.lostTo {
		// The broker took sequences after the lost range, so it holds
		// the lost batches after all.
		p.lost = false
	}
	return []completion{{tp: p.tp, cbs: b.cbs, base: base, dup: dup}}
}

// onFail handles a failed attempt of b. expected is the broker's
// expected_sequence (wrapped) when err is an out-of-order sequence.
func (p *partState) onFail(b *batch, err error, expected int32, now time.Time, lim *partLimits) []completion {
	p.landed(b)
	if p.indexOf(b) < 0 {
		return nil
	}
	switch {
	case p.idempotent && errors.Is(err, ErrOutOfOrderSequence):
		return p.outOfOrder(b, err, expected, now, lim)
	case retriable(err) && b.attempts <= lim.maxRetries:
		p.retryLater(now, lim)
		return nil
	}
	return p.fail(b, err)
}

// retryLater stops sending until the in-flight batches have answered and
// the backoff has passed. Batches failing together count as one round.
func (p *partState) retryLater(now time.Time, lim *partLimits) {
	if p.retrying {
		return
	}
	p.retrying = true
	p.failures++
	p.backoffUntil = now.Add(lim.backoff(p.failures))
}

// outOfOrder applies the broker's expected sequence E to the queue.
//
//   - E above the head's base sequence: the records below E are written
//     (by an earlier attempt, or by an earlier run of a resumed producer).
//     They complete as duplicates, a batch straddling E is trimmed to
//     start at E, and the queue is sent again from its new head.
//   - E equal to the head's base, refused for a batch behind the head:
//     the head failed and this batch ran into the gap; resend from the
//     head (the head's own failure set the backoff).
//   - E inside the lost range, which ends at the head: the lost batches
//     were not written; renumber the queue down to E and resend.
//   - Anything else (the broker expects what it refused, or forgot
//     records it acknowledged): retry with backoff; once b's retries are
//     spent, fail b and accept the broker's E as the lost range's start,
//     so that the batches behind it get renumbered and go through.
//
// E wraps as the sequences do; it is taken as the unwrapped sequence
// nearest the head's (unwrapSeq).
func (p *partState) outOfOrder(b *batch, err error, wire int32, now time.Time, lim *partLimits) []completion {
	h := p.queue[0]
	e := unwrapSeq(wire, h.baseSeq)
	switch {
	case e > h.baseSeq || (e == h.baseSeq && b != h):
		out := p.dropWritten(e)
		p.retrying = true
		return out
	case e < h.baseSeq && p.lost && e >= p.lostFrom && p.lostTo == h.baseSeq:
		p.renumber, p.renumberTo = true, e
		p.retrying = true
		return nil
	case b.attempts <= lim.maxRetries:
		p.retryLater(now, lim)
		return nil
	}
	out := p.fail(b, err)
	if e < p.lostFrom {
		p.lostFrom = e
	}
	p.retrying = true
	return out
}

// dropWritten completes the records with a sequence below e as duplicates
// (their offsets unknown) and trims the batch that straddles e.
func (p *partState) dropWritten(e int64) []completion {
	var out []completion
	for len(p.queue) > 0 {
		x := p.queue[0]
		if x.inflight || x.baseSeq >= e {
			break
		}
		n := int(min(e-x.baseSeq, int64(len(x.recs))))
		out = append(out, completion{tp: p.tp, cbs: x.cbs[:n:n], base: -1, dup: true})
		if n == len(x.recs) {
			p.remove(0)
			continue
		}
		x.recs, x.cbs = x.recs[n:], x.cbs[n:]
		x.baseSeq = e
		x.data = nil
		x.gen++
		break
	}
	if p.lost && e >= p.lostTo {
		p.lost = false
	}
	return out
}

// applyRenumber moves every queued sequence down so that the head starts
// at renumberTo, closing the gap the lost batches left.
func (p *partState) applyRenumber() {
	shift := p.lostTo - p.renumberTo
	for _, b := range p.queue {
		b.baseSeq -= shift
		b.data = nil
		b.gen++
	}
	p.nextSeq -= shift
	p.lost, p.renumber = false, false
}

// fail completes b's records with err and remembers its sequences as lost.
func (p *partState) fail(b *batch, err error) []completion {
	i := p.indexOf(b)
	if i < 0 {
		return nil
	}
	p.remove(i)
	if p.idempotent {
		if !p.lost {
			p.lost, p.lostFrom, p.lostTo = true, b.baseSeq, b.end()
		} else {
			p.lostFrom, p.lostTo = min(p.lostFrom, b.baseSeq), max(p.lostTo, b.end())
		}
	}
	err = fmt.Errorf("client: produce to %s: %w", p.tp, err)
	return p.errs(b.cbs, err, nil)
}

// failQueued fails the batches that are not in flight: the partition has
// no leader to send them to, or the topic is gone.
func (p *partState) failQueued(err error) []completion {
	var out []completion
	for i := 0; i < len(p.queue); {
		if b := p.queue[i]; !b.inflight {
			out = append(out, p.fail(b, err)...)
			continue
		}
		i++
	}
	return out
}

// failUnsent fails every record of the partition that is not in flight,
// open batch included; the producer was fenced. The batches in flight fail
// as their answers come.
func (p *partState) failUnsent(err error) []completion {
	out := p.failQueued(err)
	out = p.errs(p.cbs, err, out)
	p.recs, p.cbs, p.bytes = nil, nil, 0
	return out
}

// failAll fails every record of the partition, open batch included; the
// producer is closing.
func (p *partState) failAll(err error) []completion {
	var out []completion
	for _, b := range p.queue {
		out = p.errs(b.cbs, err, out)
	}
	out = p.errs(p.cbs, err, out)
	p.queue, p.recs, p.cbs, p.bytes, p.inflight, p.via = nil, nil, nil, 0, 0, nil
	return out
}

func (p *partState) errs(cbs []func(Result, error), err error, out []completion) []completion {
	if len(cbs) == 0 {
		return out
	}
	return append(out, completion{tp: p.tp, cbs: cbs, base: -1, err: err})
}
