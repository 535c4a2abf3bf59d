package cluster

import (
	"math"
	"testing"
)

// seqCheck is one checkSeq call and the answer it must get.
type seqCheck struct {
	name        string
	epoch       int16
	base, count int32
	verdict     seqVerdict
	offset      int64 // for seqDuplicate
	expected    int32 // for seqOutOfOrder
}

func runSeqChecks(t *testing.T, producers map[int64]*producerState, pid int64, checks []seqCheck) {
	t.Helper()
	for _, c := range checks {
		v, off, exp := checkSeq(producers, pid, c.epoch, c.base, c.count)
		switch {
		case v != c.verdict:
			t.Errorf("%s: seq %d+%d: verdict %d, want %d", c.name, c.base, c.count, v, c.verdict)
		case v == seqDuplicate && off != c.offset:
			t.Errorf("%s: seq %d+%d: duplicate at offset %d, want %d", c.name, c.base, c.count, off, c.offset)
		case v == seqOutOfOrder && exp != c.expected:
			t.Errorf("%s: seq %d+%d: expected %d, want %d", c.name, c.base, c.count, exp, c.expected)
		}
	}
}

// TestSeqWrap: sequences wrap to 0 after math.MaxInt32, as Kafka's do, and
// a producer past the wrap keeps its idempotence: the next batch is taken,
// retries of batches on either side of the wrap are duplicates at their
// original offsets, gaps and overlaps are out of order.
func TestSeqWrap(t *testing.T) {
	const max = math.MaxInt32
	t.Run("batch ending at MaxInt32", func(t *testing.T) {
		ps := map[int64]*producerState{}
		recordSeq(ps, 1, 0, max-4, 5, 100) // max-4 .. max
		runSeqChecks(t, ps, 1, []seqCheck{
			{name: "next after the wrap", base: 0, count: 3, verdict: seqAppend},
			{name: "retry", base: max - 4, count: 5, verdict: seqDuplicate, offset: 100},
			{name: "gap after the wrap", base: 1, count: 1, verdict: seqOutOfOrder, expected: 0},
		})
		recordSeq(ps, 1, 0, 0, 3, 105) // 0 .. 2
		if st := ps[1]; st.LastSeq != 2 || st.LastOffset != 107 {
			t.Fatalf("after the wrap: last seq %d, last offset %d; want 2, 107", st.LastSeq, st.LastOffset)
		}
		runSeqChecks(t, ps, 1, []seqCheck{
			{name: "next", base: 3, count: 1, verdict: seqAppend},
			{name: "retry after the wrap", base: 0, count: 3, verdict: seqDuplicate, offset: 105},
			{name: "retry from before the wrap, after it", base: max - 4, count: 5, verdict: seqDuplicate, offset: 100},
			{name: "part of the batch before the wrap", base: max - 1, count: 2, verdict: seqDuplicate, offset: 103},
			{name: "written, across the wrap", base: max, count: 4, verdict: seqDuplicate, offset: -1},
			{name: "overlap across the wrap", base: max, count: 5, verdict: seqOutOfOrder, expected: 3},
		})
	})
	t.Run("batch spanning the wrap", func(t *testing.T) {
		ps := map[int64]*producerState{}
		recordSeq(ps, 1, 0, max-9, 8, 0)   // max-9 .. max-2
		recordSeq(ps, 1, 0, max-1, 5, 100) // max-1, max, 0, 1, 2
		if st := ps[1]; st.LastSeq != 2 || st.LastOffset != 104 {
			t.Fatalf("spanning batch: last seq %d, last offset %d; want 2, 104", st.LastSeq, st.LastOffset)
		}
		runSeqChecks(t, ps, 1, []seqCheck{
			{name: "next", base: 3, count: 2, verdict: seqAppend},
			{name: "retry", base: max - 1, count: 5, verdict: seqDuplicate, offset: 100},
			{name: "its part after the wrap", base: 1, count: 2, verdict: seqDuplicate, offset: 103},
			{name: "its part before the wrap", base: max, count: 1, verdict: seqDuplicate, offset: 101},
			{name: "the batch before", base: max - 9, count: 8, verdict: seqDuplicate, offset: 0},
			{name: "straddles the end", base: max - 1, count: 6, verdict: seqOutOfOrder, expected: 3},
			{name: "gap", base: 7, count: 1, verdict: seqOutOfOrder, expected: 3},
		})
		recordSeq(ps, 1, 0, 3, 2, 105)
		runSeqChecks(t, ps, 1, []seqCheck{
			{name: "after the spanning batch", base: 5, count: 1, verdict: seqAppend},
			{name: "spanning retry later", base: max - 1, count: 5, verdict: seqDuplicate, offset: 100},
		})
	})
	t.Run("old batch no longer remembered", func(t *testing.T) {
		ps := map[int64]*producerState{}
		recordSeq(ps, 1, 0, max-2, 1, 0)
		for i := range int32(recentBatches) { // max-1, max, 0, 1, 2
			recordSeq(ps, 1, 0, int32((int64(max-1)+int64(i))%(1<<31)), 1, int64(1+i))
		}
		runSeqChecks(t, ps, 1, []seqCheck{
			{name: "forgotten, before the wrap", base: max - 2, count: 1, verdict: seqDuplicate, offset: -1},
			{name: "remembered, after the wrap", base: 0, count: 1, verdict: seqDuplicate, offset: 3},
			{name: "next", base: 3, count: 1, verdict: seqAppend},
		})
	})
}

// TestSeqEpochs: a new epoch of a producer id continues its sequences (a
// resumed producer's replay is recognised), and from its first batch on
// the older epoch is fenced.
func TestSeqEpochs(t *testing.T) {
	ps := map[int64]*producerState{}
	recordSeq(ps, 7, 0, 0, 10, 0) // epoch 0 wrote 0..9
	runSeqChecks(t, ps, 7, []seqCheck{
		{name: "epoch 1 replays epoch 0's batch", epoch: 1, base: 0, count: 10, verdict: seqDuplicate, offset: 0},
		{name: "epoch 0 after epoch 1 was seen", epoch: 0, base: 10, count: 1, verdict: seqFenced},
		{name: "epoch 1 straddles", epoch: 1, base: 5, count: 10, verdict: seqOutOfOrder, expected: 10},
		{name: "epoch 1 continues", epoch: 1, base: 10, count: 1, verdict: seqAppend},
	})
	recordSeq(ps, 7, 1, 10, 1, 10)
	if st := ps[7]; st.Epoch != 1 || st.LastSeq != 10 || len(st.Recent) != 2 {
		t.Fatalf("state %+v: want epoch 1, last seq 10 and both batches remembered", *st)
	}
	if _, _, cur := checkSeq(ps, 7, 0, 11, 1); cur != 1 {
		t.Errorf("fenced batch: current epoch %d, want 1", cur)
	}
	runSeqChecks(t, ps, 8, []seqCheck{
		{name: "unknown producer, any epoch and sequence", epoch: 3, base: 500, count: 1, verdict: seqAppend},
	})
	// A gap is refused within an epoch and, for a client's producer, at a
	// new epoch too: a resumed producer's first batch was refused before
	// raft (retried later) and its second arrives; appending the second
	// would make the retry a duplicate that is never written.
	runSeqChecks(t, ps, 7, []seqCheck{
		{name: "gap in the same epoch", epoch: 1, base: 20, count: 1, verdict: seqOutOfOrder, expected: 11},
		{name: "client's gap opening a new epoch", epoch: 2, base: 20, count: 1, verdict: seqOutOfOrder, expected: 11},
	})
	// The broker's own (dead-letter) producer closes a gap in its numbers
	// by starting a new epoch past it.
	dlq := InternalProducerBit | 7
	recordSeq(ps, dlq, 0, 0, 10, 100)
	runSeqChecks(t, ps, dlq, []seqCheck{
		{name: "internal gap in the same epoch", epoch: 0, base: 20, count: 1, verdict: seqOutOfOrder, expected: 10},
		{name: "internal gap opening a new epoch", epoch: 1, base: 20, count: 1, verdict: seqAppend},
	})
}
