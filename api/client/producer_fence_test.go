package client

import (
	"errors"
	"testing"

	"google.golang.org/grpc/codes"

	stratav1 "github.com/stratalog/strata/api/v1"
)

// TestFencedEndsProducer: a fenced answer ends the producer: the records
// it has not sent fail at once (queued batches and the open one, in every
// partition), a batch still in flight fails when its answer comes even if
// that answer is retriable, and nothing is retried.
func TestFencedEndsProducer(t *testing.T) {
	p, ts := testProducer(DefaultProducerConfig(), 2)
	p.log, p.pid, p.epoch = loggerOr(nil), 9, 2
	lim := testLimits()
	o := outcomes{}
	a, b := ts.parts[0], ts.parts[1]
	a.acked, b.acked = true, true
	addSealed(a, lim, o, 0, 16) // two batches
	addN(b, lim, o, 100, 12)    // one sealed batch and an open one
	buildAll(t, a)
	buildAll(t, b)
	sentA, sentB := sendAll(a, lim, t0), sendAll(b, lim, t0)
	if len(sentA) != 2 || len(sentB) != 1 {
		t.Fatalf("sent %d and %d batches", len(sentA), len(sentB))
	}
	fenced := brokerError(codes.FailedPrecondition, "topic: producer epoch is stale: producer 9 epoch 2 is fenced by epoch 3: another producer with this id started",
		&stratav1.ErrorInfo{Reason: stratav1.ErrorReason_ERROR_REASON_PRODUCER_FENCED, ProducerEpoch: 3}, nil)

	p.mu.Lock()
	if !p.failLandedLocked(a, sentA[0], fenced) {
		t.Fatal("fenced answer not handled")
	}
	// The open batch of b fails now; the batches in flight wait.
	if !p.failLandedLocked(a, sentA[1], unavailable()) || !p.failLandedLocked(b, sentB[0], outOfOrder()) {
		t.Fatal("answers after the fence not handled")
	}
	done := p.done
	p.mu.Unlock()
	run(done)
	if len(o) != 28 {
		t.Fatalf("%d records completed, want 28", len(o))
	}
	for i, r := range o {
		var fe *ProducerFencedError
		if !errors.As(r.err, &fe) || fe.ProducerID != 9 || fe.Epoch != 2 || fe.NewerEpoch != 3 || !errors.Is(r.err, ErrProducerFenced) {
			t.Fatalf("record %d: %v, want a ProducerFencedError of producer 9 epoch 2 by epoch 3", i, r.err)
		}
	}
	if len(a.queue)+len(b.queue)+len(b.recs) != 0 || a.inflight+b.inflight != 0 {
		t.Fatalf("left: %d+%d queued, %d open, %d in flight", len(a.queue), len(b.queue), len(b.recs), a.inflight+b.inflight)
	}
}
