package client

import (
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/stratalog/strata/api/record"
	stratav1 "github.com/stratalog/strata/api/v1"
)

// The producer's per-partition rules, driven without a network: the tests
// play the broker by calling onAck and onFail.

var t0 = time.Unix(1_700_000_000, 0)

func testLimits() *partLimits {
	return &partLimits{
		batchBytes:  1000, // 8 records of 100 bytes per batch
		linger:      5 * time.Millisecond,
		maxInFlight: 5,
		maxRetries:  2,
		backoff:     func(n int) time.Duration { return time.Duration(n) * 100 * time.Millisecond },
	}
}

// outcomes collects what the callbacks of a test's records received, by
// record number.
type outcomes map[int]struct {
	res Result
	err error
}

func (o outcomes) cb(i int) func(Result, error) {
	return func(r Result, err error) {
		if _, dup := o[i]; dup {
			panic(fmt.Sprintf("record %d completed twice", i))
		}
		o[i] = struct {
			res Result
			err error
		}{r, err}
	}
}

func run(cs []completion) {
	for i := range cs {
		cs[i].call()
	}
}

// addN adds records first..first+n-1 with 100-byte values whose first
// bytes hold the record number.
func addN(ps *partState, lim *partLimits, o outcomes, first, n int) {
	for i := first; i < first+n; i++ {
		v := make([]byte, 100)
		binary.BigEndian.PutUint32(v, uint32(i))
		ps.add(record.Record{Value: v, Timestamp: t0}, o.cb(i), lim, t0)
	}
}

// addSealed is addN followed by a Flush's seal of the open batch.
func addSealed(ps *partState, lim *partLimits, o outcomes, first, n int) {
	addN(ps, lim, o, first, n)
	ps.sealDue(t0, lim, true, false)
}

// buildAll encodes the batches that need it, as the producer's loop does.
func buildAll(t *testing.T, ps *partState) {
	t.Helper()
	for _, b := range ps.unbuilt(nil) {
		data, err := record.AppendBatch(nil, b.recs, record.BatchOptions{ProducerID: 7, BaseSequence: wireSeq(b.baseSeq)})
		if err != nil {
			t.Fatal(err)
		}
		b.data = data
	}
}

// sendAll sends what the partition lets out now.
func sendAll(ps *partState, lim *partLimits, now time.Time) []*batch {
	var sent []*batch
	for b := ps.next(now, lim); b != nil; b = ps.next(now, lim) {
		ps.markSent(b, nil)
		sent = append(sent, b)
	}
	return sent
}

// batchSeq reads a built batch's base sequence and record numbers.
func batchSeq(t *testing.T, b *batch) (int32, []int) {
	t.Helper()
	var nums []int
	if err := record.DecodeBatches(b.data, func(r record.Record) bool {
		nums = append(nums, int(binary.BigEndian.Uint32(r.Value)))
		return true
	}); err != nil {
		t.Fatal(err)
	}
	return int32(binary.BigEndian.Uint32(b.data[53:])), nums
}

func newPart(idempotent bool) *partState {
	return &partState{tp: TopicPartition{"t", 3}, idempotent: idempotent}
}

func unavailable() error { return newError(codes.Unavailable, "leader moved") }

func outOfOrder() error {
	return brokerError(codes.FailedPrecondition, "topic: out of order sequence from producer 7: got 0, expected 9",
		&stratav1.ErrorInfo{Reason: stratav1.ErrorReason_ERROR_REASON_OUT_OF_ORDER_SEQUENCE}, nil)
}

func TestBatchingAndSequences(t *testing.T) {
	lim := testLimits()
	ps := newPart(true)
	o := outcomes{}
	addN(ps, lim, o, 0, 20)
	if len(ps.queue) != 2 || len(ps.queue[0].recs) != 8 || len(ps.queue[1].recs) != 8 || len(ps.recs) != 4 {
		t.Fatalf("batches of %d and %d, %d open; want 8, 8, 4 open", len(ps.queue[0].recs), len(ps.queue[1].recs), len(ps.recs))
	}
	if ps.sealDue(t0.Add(time.Millisecond), lim, false, false) {
		t.Fatal("sealed before the linger passed")
	}
	if !ps.sealDue(t0.Add(lim.linger), lim, false, false) {
		t.Fatal("not sealed after the linger")
	}
	var seqs []int64
	for _, b := range ps.queue {
		seqs = append(seqs, b.baseSeq)
	}
	if fmt.Sprint(seqs) != "[0 8 16]" || ps.nextSeq != 20 {
		t.Fatalf("base sequences %v, next %d; want [0 8 16], 20", seqs, ps.nextSeq)
	}
	buildAll(t, ps)
	seq, nums := batchSeq(t, ps.queue[2])
	if seq != 16 || fmt.Sprint(nums) != "[16 17 18 19]" {
		t.Fatalf("third batch: sequence %d, records %v", seq, nums)
	}
}

func TestLingerWaitsWhileBlocked(t *testing.T) {
	lim := testLimits()
	ps := newPart(true)
	o := outcomes{}
	addN(ps, lim, o, 0, 9) // one full batch, one record open
	buildAll(t, ps)
	if sent := sendAll(ps, lim, t0); len(sent) != 1 {
		t.Fatalf("sent %d batches", len(sent))
	}
	// Until the partition's first ack only one batch may fly, so the open
	// batch keeps growing past its linger instead of being sealed small.
	if ps.sealDue(t0.Add(time.Second), lim, false, false) {
		t.Fatal("sealed a batch that cannot be sent")
	}
	if !ps.sealDue(t0.Add(time.Second), lim, true, false) {
		t.Fatal("force (Flush) did not seal")
	}
}

// A busy producer (limited by the brokers) seals a partition's lingering
// batch only once the partition has nothing unacknowledged, so that the
// batch grows with the brokers' answer time; full batches still go out
// pipelined, and an idle producer keeps the plain linger.
func TestLingerWaitsForAnswerWhenBusy(t *testing.T) {
	lim := testLimits()
	ps := newPart(true)
	o := outcomes{}
	addN(ps, lim, o, 0, 1)
	ps.sealDue(t0, lim, true, false)
	buildAll(t, ps)
	first := sendAll(ps, lim, t0)
	run(ps.onAck(first[0], 0, false)) // acked: up to 5 may fly now
	addN(ps, lim, o, 1, 1)
	ps.sealDue(t0, lim, true, false)
	buildAll(t, ps)
	if sent := sendAll(ps, lim, t0); len(sent) != 1 {
		t.Fatalf("sent %d batches", len(sent))
	}
	addN(ps, lim, o, 2, 3) // open, lingering while a batch flies
	late := t0.Add(time.Second)
	if !ps.deadline(lim, true).IsZero() {
		t.Fatal("a busy producer's lingering batch has a deadline while the partition awaits an answer")
	}
	if ps.sealDue(late, lim, false, true) {
		t.Fatal("busy: sealed a lingering batch while the partition awaits an answer")
	}
	if d := ps.deadline(lim, false); !d.Equal(t0.Add(lim.linger)) {
		t.Fatalf("not busy: deadline %v, want the linger's end", d)
	}
	addN(ps, lim, o, 5, 8) // fills a batch: sealed by size, busy or not
	if len(ps.queue) != 2 || len(ps.queue[1].recs) != 8 {
		t.Fatalf("queue %d batches; want the one in flight and a full one", len(ps.queue))
	}
	buildAll(t, ps)
	if sent := sendAll(ps, lim, late); len(sent) != 1 {
		t.Fatalf("the full batch did not go out pipelined: sent %d", len(sent))
	}
	run(ps.onAck(ps.queue[0], 1, false))
	run(ps.onAck(ps.queue[0], 2, false))
	if !ps.sealDue(late, lim, false, true) {
		t.Fatal("busy: not sealed once nothing is unacknowledged")
	}
	if n := len(ps.queue[0].recs); n != 3 {
		t.Fatalf("sealed %d records, want the 3 that lingered", n)
	}
}

func TestInFlightLimitAndAcks(t *testing.T) {
	lim := testLimits()
	ps := newPart(true)
	o := outcomes{}
	addSealed(ps, lim, o, 0, 8*8) // 8 full batches
	buildAll(t, ps)
	sent := sendAll(ps, lim, t0)
	if len(sent) != 1 {
		t.Fatalf("%d batches in flight before the first ack, want 1", len(sent))
	}
	run(ps.onAck(sent[0], 100, false))
	sent = sendAll(ps, lim, t0)
	if len(sent) != 5 {
		t.Fatalf("%d batches in flight after the first ack, want MaxInFlight 5", len(sent))
	}
	for i, b := range sent {
		run(ps.onAck(b, int64(108+8*i), false))
	}
	for i := 0; i < 48; i++ {
		if r := o[i]; r.err != nil || r.res.Offset != int64(100+i) || r.res.Partition != 3 || r.res.Topic != "t" {
			t.Fatalf("record %d: %+v, %v", i, r.res, r.err)
		}
	}
	if _, ok := o[48]; ok {
		t.Fatal("a record completed before its batch was acknowledged")
	}
	sent = sendAll(ps, lim, t0)
	run(ps.onAck(sent[0], -1, true))
	if r := o[48]; !r.res.Duplicate || r.res.Offset != -1 {
		t.Fatalf("duplicate without offset: %+v", r.res)
	}
}

// TestRetryResendsSameBytesInOrder: the head fails, the batches behind it
// run into the gap; after the backoff the queue goes again from the head,
// in order, with the same bytes.
func TestRetryResendsSameBytesInOrder(t *testing.T) {
	lim := testLimits()
	ps := newPart(true)
	ps.acked = true
	o := outcomes{}
	addSealed(ps, lim, o, 0, 24)
	buildAll(t, ps)
	first := sendAll(ps, lim, t0)
	if len(first) != 3 {
		t.Fatalf("sent %d", len(first))
	}
	bytes0 := &first[0].data[0]
	run(ps.onFail(first[0], unavailable(), 0, t0, lim))
	if ps.next(t0, lim) != nil {
		t.Fatal("sent while batches were still in flight")
	}
	run(ps.onFail(first[1], outOfOrder(), 0, t0, lim)) // expected 0: the head's sequence
	run(ps.onFail(first[2], outOfOrder(), 0, t0, lim))
	if len(o) != 0 {
		t.Fatalf("records completed: %v", o)
	}
	if ps.next(t0.Add(50*time.Millisecond), lim) != nil {
		t.Fatal("resent before the backoff passed")
	}
	again := sendAll(ps, lim, t0.Add(100*time.Millisecond))
	if len(again) != 3 || again[0] != first[0] || again[1] != first[1] || again[2] != first[2] {
		t.Fatal("the retry is not the same batches in the same order")
	}
	if &again[0].data[0] != bytes0 {
		t.Fatal("the retry re-encoded the batch")
	}
	for i, b := range again {
		run(ps.onAck(b, int64(8*i), false))
	}
	if len(o) != 24 {
		t.Fatalf("%d records completed, want 24", len(o))
	}
}

func TestRetriesExhausted(t *testing.T) {
	lim := testLimits()
	ps := newPart(false)
	o := outcomes{}
	addSealed(ps, lim, o, 0, 8)
	buildAll(t, ps)
	now := t0
	for attempt := 1; attempt <= lim.maxRetries+1; attempt++ {
		sent := sendAll(ps, lim, now)
		if len(sent) != 1 {
			t.Fatalf("attempt %d: sent %d", attempt, len(sent))
		}
		run(ps.onFail(sent[0], unavailable(), 0, now, lim))
		now = now.Add(time.Minute)
	}
	if len(o) != 8 {
		t.Fatalf("%d records failed, want 8", len(o))
	}
	for i := range 8 {
		if !errors.Is(o[i].err, ErrUnavailable) {
			t.Fatalf("record %d: %v", i, o[i].err)
		}
	}
	if len(ps.queue) != 0 {
		t.Fatal("failed batch still queued")
	}
}

func TestNonRetriableFailsAtOnce(t *testing.T) {
	lim := testLimits()
	ps := newPart(true)
	o := outcomes{}
	addSealed(ps, lim, o, 0, 8)
	buildAll(t, ps)
	sent := sendAll(ps, lim, t0)
	run(ps.onFail(sent[0], newError(codes.ResourceExhausted, "batch too large"), 0, t0, lim))
	if len(o) != 8 || !errors.Is(o[0].err, ErrTooLarge) {
		t.Fatalf("outcomes %v", o)
	}
}

// TestResumeTrim is the resume rule: a producer that restarted with its
// old id numbers from 0 again; the broker has records up to sequence 11
// and answers the straddling batch with expected_sequence 12. Records
// 0..11 complete as duplicates and the rest go again as a batch starting
// at sequence 12.
func TestResumeTrim(t *testing.T) {
	lim := testLimits()
	ps := newPart(true)
	o := outcomes{}
	addN(ps, lim, o, 0, 20)
	ps.sealDue(t0, lim, true, false) // batches 0-7, 8-15, 16-19
	buildAll(t, ps)

	sent := sendAll(ps, lim, t0)
	run(ps.onAck(sent[0], -1, true)) // 0..7: an old duplicate
	sent = sendAll(ps, lim, t0)
	if len(sent) != 2 {
		t.Fatalf("sent %d", len(sent))
	}
	run(ps.onFail(sent[0], outOfOrder(), 12, t0, lim)) // 8..15 straddles 12
	run(ps.onFail(sent[1], outOfOrder(), 12, t0, lim)) // 16..19 is ahead
	for i := 0; i < 12; i++ {
		if r := o[i]; r.err != nil || !r.res.Duplicate || r.res.Offset != -1 {
			t.Fatalf("record %d: %+v, %v; want a duplicate", i, r.res, r.err)
		}
	}
	if len(o) != 12 {
		t.Fatalf("%d records completed, want 12", len(o))
	}
	if ps.next(t0, lim) != nil {
		t.Fatal("sent the trimmed batch before re-encoding it")
	}
	buildAll(t, ps)
	again := sendAll(ps, lim, t0)
	if len(again) != 2 {
		t.Fatalf("resent %d batches", len(again))
	}
	seq, nums := batchSeq(t, again[0])
	if seq != 12 || fmt.Sprint(nums) != "[12 13 14 15]" {
		t.Fatalf("trimmed batch: sequence %d, records %v", seq, nums)
	}
	seq, nums = batchSeq(t, again[1])
	if seq != 16 || fmt.Sprint(nums) != "[16 17 18 19]" {
		t.Fatalf("next batch: sequence %d, records %v", seq, nums)
	}
	run(ps.onAck(again[0], 500, false))
	run(ps.onAck(again[1], 504, false))
	for i := 12; i < 20; i++ {
		if r := o[i]; r.err != nil || r.res.Duplicate || r.res.Offset != int64(500+i-12) {
			t.Fatalf("record %d: %+v, %v", i, r.res, r.err)
		}
	}
}

// TestResumeWholeBatchesWritten: the broker expects a sequence past every
// queued batch; all of them are duplicates.
func TestResumeWholeBatchesWritten(t *testing.T) {
	lim := testLimits()
	ps := newPart(true)
	o := outcomes{}
	addSealed(ps, lim, o, 0, 16)
	buildAll(t, ps)
	sent := sendAll(ps, lim, t0)
	run(ps.onFail(sent[0], outOfOrder(), 1000, t0, lim))
	if len(o) != 16 || len(ps.queue) != 0 {
		t.Fatalf("%d completed, %d queued; want 16, 0", len(o), len(ps.queue))
	}
	for i := range 16 {
		if !o[i].res.Duplicate || o[i].err != nil {
			t.Fatalf("record %d: %+v %v", i, o[i].res, o[i].err)
		}
	}
}

// TestLostBatchRenumbered: a batch fails for good; whether the broker
// wrote it is unknown. The broker answers the next batch with an expected
// sequence inside the lost range, so it was not written: the queue moves
// down to close the gap, and the next attempt goes through.
func TestLostBatchRenumbered(t *testing.T) {
	lim := testLimits()
	lim.maxRetries = 0
	ps := newPart(true)
	ps.acked = true
	o := outcomes{}
	addSealed(ps, lim, o, 0, 16) // 0-7, 8-15
	buildAll(t, ps)
	sent := sendAll(ps, lim, t0)
	run(ps.onFail(sent[0], unavailable(), 0, t0, lim)) // retries spent: fails
	run(ps.onFail(sent[1], outOfOrder(), 0, t0, lim))  // broker expects 0
	if len(o) != 8 || !errors.Is(o[0].err, ErrUnavailable) {
		t.Fatalf("the first batch should have failed: %v", o)
	}
	if !ps.renumber || ps.renumberTo != 0 {
		t.Fatalf("renumber %v to %d", ps.renumber, ps.renumberTo)
	}
	if ps.next(t0.Add(time.Minute), lim) != nil {
		t.Fatal("sent with the old sequence")
	}
	if ps.nextSeq != 8 {
		t.Fatalf("next sequence %d after renumbering, want 8", ps.nextSeq)
	}
	buildAll(t, ps)
	again := sendAll(ps, lim, t0.Add(time.Minute))
	seq, nums := batchSeq(t, again[0])
	if seq != 0 || fmt.Sprint(nums) != "[8 9 10 11 12 13 14 15]" {
		t.Fatalf("renumbered batch: sequence %d, records %v", seq, nums)
	}
}

// TestLostBatchWrittenAfterAll: the lost batch had been written; the next
// one is accepted and the lost range is forgotten.
func TestLostBatchWrittenAfterAll(t *testing.T) {
	lim := testLimits()
	lim.maxRetries = 0
	ps := newPart(true)
	ps.acked = true
	o := outcomes{}
	addSealed(ps, lim, o, 0, 16)
	buildAll(t, ps)
	sent := sendAll(ps, lim, t0)
	run(ps.onFail(sent[0], unavailable(), 0, t0, lim))
	run(ps.onAck(sent[1], 40, false))
	if ps.lost {
		t.Fatal("lost range kept after the broker took the sequences behind it")
	}
}

// TestBrokerForgotSequences: the broker expects a sequence below anything
// unacknowledged and outside the lost range. The producer retries, then
// fails the batch and takes the broker's number, so later batches pass.
func TestBrokerForgotSequences(t *testing.T) {
	lim := testLimits()
	lim.maxRetries = 1
	ps := newPart(true)
	ps.acked = true
	ps.nextSeq = 100
	o := outcomes{}
	addSealed(ps, lim, o, 0, 16) // sequences 100-107, 108-115
	buildAll(t, ps)
	now := t0
	for attempt := 0; attempt < 2; attempt++ {
		sent := sendAll(ps, lim, now)
		for _, b := range sent {
			run(ps.onFail(b, outOfOrder(), 50, now, lim))
		}
		now = now.Add(time.Minute)
	}
	if len(o) != 8 || !errors.Is(o[0].err, ErrOutOfOrderSequence) {
		t.Fatalf("want the head's 8 records failed with ErrOutOfOrderSequence: %v", o)
	}
	// The batch behind the failed head ran into the same answer, now
	// inside the lost range: the queue is renumbered from 50.
	if !ps.renumber || ps.renumberTo != 50 {
		t.Fatalf("renumber %v to %d, want to 50", ps.renumber, ps.renumberTo)
	}
	if ps.next(now, lim) != nil {
		t.Fatal("sent before re-encoding")
	}
	if ps.queue[0].baseSeq != 50 || ps.nextSeq != 58 {
		t.Fatalf("after renumbering: head %d, next %d; want 50, 58", ps.queue[0].baseSeq, ps.nextSeq)
	}
	buildAll(t, ps)
	if seq, nums := batchSeq(t, sendAll(ps, lim, now)[0]); seq != 50 || nums[0] != 8 {
		t.Fatalf("renumbered batch: sequence %d, records %v", seq, nums)
	}
}

func TestFailAll(t *testing.T) {
	lim := testLimits()
	ps := newPart(true)
	o := outcomes{}
	addSealed(ps, lim, o, 0, 20)
	buildAll(t, ps)
	sendAll(ps, lim, t0)
	run(ps.failAll(ErrClosed))
	if len(o) != 20 {
		t.Fatalf("%d of 20 records completed", len(o))
	}
	for i, r := range o {
		if !errors.Is(r.err, ErrClosed) {
			t.Fatalf("record %d: %v", i, r.err)
		}
	}
}

func TestNotIdempotent(t *testing.T) {
	lim := testLimits()
	ps := newPart(false)
	o := outcomes{}
	addSealed(ps, lim, o, 0, 16)
	for _, b := range ps.queue {
		if b.baseSeq != -1 {
			t.Fatalf("base sequence %d without idempotence", b.baseSeq)
		}
	}
	buildAll(t, ps)
	if sent := sendAll(ps, lim, t0); len(sent) != 2 {
		t.Fatalf("without idempotence the in-flight limit applies at once: sent %d", len(sent))
	}
}

func TestDeadline(t *testing.T) {
	lim := testLimits()
	ps := newPart(true)
	if !ps.deadline(lim, false).IsZero() {
		t.Fatal("an empty partition has a deadline")
	}
	o := outcomes{}
	addN(ps, lim, o, 0, 1)
	if d := ps.deadline(lim, false); !d.Equal(t0.Add(lim.linger)) {
		t.Fatalf("deadline %v, want the linger's end", d)
	}
	ps.sealDue(t0, lim, true, false)
	buildAll(t, ps)
	sent := sendAll(ps, lim, t0)
	run(ps.onFail(sent[0], unavailable(), 0, t0, lim))
	if d := ps.deadline(lim, false); !d.Equal(t0.Add(100 * time.Millisecond)) {
		t.Fatalf("deadline %v, want the backoff's end", d)
	}
}
