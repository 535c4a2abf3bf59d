package client

import (
	"errors"
	"fmt"
	"math"
	"testing"
	"time"
)

// The producer's sequences wrap to 0 after math.MaxInt32, as the broker's
// do; these tests put a partition's sequences next to the wrap and check
// the batches' sequences and the handling of the broker's expected
// sequence across it.

// TestSequencesWrap: batches number on across the wrap, and a batch may
// span it.
func TestSequencesWrap(t *testing.T) {
	lim := testLimits()
	ps := newPart(true)
	ps.nextSeq = math.MaxInt32 - 3
	o := outcomes{}
	addSealed(ps, lim, o, 0, 20) // max-3 .. 3, 4 .. 11, 12 .. 15
	buildAll(t, ps)
	var seqs []int32
	for _, b := range ps.queue {
		seq, _ := batchSeq(t, b)
		seqs = append(seqs, seq)
	}
	if fmt.Sprint(seqs) != fmt.Sprint([]int32{math.MaxInt32 - 3, 4, 12}) {
		t.Fatalf("base sequences %v, want [max-3 4 12]", seqs)
	}
}

// TestResumeTrimAcrossWrap is TestResumeTrim across the wrap: the broker
// holds 13 records from sequence max-6 on and expects sequence 6.
func TestResumeTrimAcrossWrap(t *testing.T) {
	lim := testLimits()
	ps := newPart(true)
	ps.nextSeq = math.MaxInt32 - 6
	o := outcomes{}
	addSealed(ps, lim, o, 0, 20) // max-6 .. 1, 2 .. 9, 10 .. 13
	buildAll(t, ps)
	sent := sendAll(ps, lim, t0)
	run(ps.onFail(sent[0], outOfOrder(), 6, t0, lim))
	if len(o) != 13 {
		t.Fatalf("%d records completed, want 13", len(o))
	}
	for i := range 13 {
		if r := o[i]; r.err != nil || !r.res.Duplicate {
			t.Fatalf("record %d: %+v, %v; want a duplicate", i, r.res, r.err)
		}
	}
	buildAll(t, ps)
	again := sendAll(ps, lim, t0)
	if seq, nums := batchSeq(t, again[0]); seq != 6 || fmt.Sprint(nums) != "[13 14 15]" {
		t.Fatalf("trimmed batch: sequence %d, records %v", seq, nums)
	}
}

// TestLostBatchRenumberedAcrossWrap is TestLostBatchRenumbered with the
// lost batch spanning the wrap: the broker expects its first sequence,
// max-3, which is behind the next batch's 4.
func TestLostBatchRenumberedAcrossWrap(t *testing.T) {
	lim := testLimits()
	lim.maxRetries = 0
	ps := newPart(true)
	ps.acked = true
	ps.nextSeq = math.MaxInt32 - 3
	o := outcomes{}
	addSealed(ps, lim, o, 0, 16) // max-3 .. 3, 4 .. 11
	buildAll(t, ps)
	sent := sendAll(ps, lim, t0)
	run(ps.onFail(sent[0], unavailable(), 0, t0, lim))
	run(ps.onFail(sent[1], outOfOrder(), math.MaxInt32-3, t0, lim))
	if len(o) != 8 || !errors.Is(o[0].err, ErrUnavailable) {
		t.Fatalf("the first batch should have failed: %v", o)
	}
	if ps.next(t0.Add(time.Minute), lim) != nil {
		t.Fatal("sent with the old sequence")
	}
	buildAll(t, ps)
	again := sendAll(ps, lim, t0.Add(time.Minute))
	if len(again) != 1 {
		t.Fatalf("sent %d batches after renumbering, want 1", len(again))
	}
	if seq, nums := batchSeq(t, again[0]); seq != math.MaxInt32-3 || nums[0] != 8 {
		t.Fatalf("renumbered batch: sequence %d, records %v; want max-3, from 8", seq, nums)
	}
}

// TestResumeFarAhead: a resumed producer starts at 0 and the broker
// expects a sequence more than half the space ahead (the earlier run
// wrote that much): every queued record is written, none is a gap.
func TestResumeFarAhead(t *testing.T) {
	lim := testLimits()
	ps := newPart(true)
	o := outcomes{}
	addSealed(ps, lim, o, 0, 16)
	buildAll(t, ps)
	sent := sendAll(ps, lim, t0)
	run(ps.onFail(sent[0], outOfOrder(), math.MaxInt32-9, t0, lim))
	if len(o) != 16 || len(ps.queue) != 0 {
		t.Fatalf("%d completed, %d queued; want 16, 0", len(o), len(ps.queue))
	}
	for i := range 16 {
		if !o[i].res.Duplicate || o[i].err != nil {
			t.Fatalf("record %d: %+v %v", i, o[i].res, o[i].err)
		}
	}
}
