package bench

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// subBits sets the histogram's precision: each power of two is split into
// 2^subBits buckets, so a recorded value is known within 1/2^subBits
// (under 1%) of itself, as in HdrHistogram with 2 significant digits.
const subBits = 7

// numBuckets covers every non-negative int64 (the last bucket ends at
// MaxInt64).
const numBuckets = (64 - subBits) << subBits

// Histogram counts durations in log-linear buckets (HdrHistogram's
// layout): values below 2^subBits ns exactly, larger ones within a
// relative error under 1/2^subBits. Record is safe for concurrent use and
// does not allocate; read the quantiles once recording is over.
type Histogram struct {
	counts [numBuckets]atomic.Uint64
	total  atomic.Uint64
	min    atomic.Int64 // math.MaxInt64 while empty
	max    atomic.Int64
}

// NewHistogram returns an empty histogram.
func NewHistogram() *Histogram {
	h := &Histogram{}
	h.min.Store(math.MaxInt64)
	return h
}

// bucketOf returns the bucket of v ≥ 0.
func bucketOf(v uint64) int {
	if v < 1<<subBits {
		return int(v)
	}
	e := bits.Len64(v) - subBits - 1 // shift that keeps subBits+1 significant bits
	return e<<subBits + int(v>>uint(e))
}

// bucketRange returns the smallest and largest value of bucket i.
func bucketRange(i int) (lo, hi uint64) {
	if i < 1<<subBits {
		return uint64(i), uint64(i)
	}
	e := i>>subBits - 1
	m := uint64(i - e<<subBits) // in [2^subBits, 2^(subBits+1))
	return m << uint(e), (m+1)<<uint(e) - 1
}

// Record adds one duration; negative durations count as 0.
func (h *Histogram) Record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	}
	h.counts[bucketOf(uint64(v))].Add(1)
	h.total.Add(1)
	for cur := h.max.Load(); v > cur && !h.max.CompareAndSwap(cur, v); cur = h.max.Load() {
	}
	for cur := h.min.Load(); v < cur && !h.min.CompareAndSwap(cur, v); cur = h.min.Load() {
	}
}

// Merge adds every count of o to h.
func (h *Histogram) Merge(o *Histogram) {
	for i := range o.counts {
		if c := o.counts[i].Load(); c > 0 {
			h.counts[i].Add(c)
		}
	}
	h.total.Add(o.total.Load())
	if m := o.max.Load(); m > h.max.Load() {
		h.max.Store(m)
	}
	if m := o.min.Load(); m < h.min.Load() {
		h.min.Store(m)
	}
}

// Count returns the number of recorded values.
func (h *Histogram) Count() uint64 { return h.total.Load() }

// Max returns the largest recorded value (0 when empty).
func (h *Histogram) Max() time.Duration { return time.Duration(h.max.Load()) }

// Min returns the smallest recorded value (0 when empty).
func (h *Histogram) Min() time.Duration {
	if h.Count() == 0 {
		return 0
	}
	return time.Duration(h.min.Load())
}

// Quantile returns the value at quantile q in [0, 1]: the value below or
// at which a fraction q of the recorded values lie, within the bucket
// precision (the middle of its bucket, clamped to the recorded min and
// max). It returns 0 when the histogram is empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	n := h.Count()
	if n == 0 {
		return 0
	}
	q = math.Min(math.Max(q, 0), 1)
	rank := uint64(math.Ceil(q * float64(n))) // the rank-th smallest value, 1-based
	if rank == 0 {
		rank = 1
	}
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			lo, hi := bucketRange(i)
			v := int64(lo + (hi-lo)/2)
			v = max(v, int64(h.Min()))
			v = min(v, h.max.Load())
			return time.Duration(v)
		}
	}
	return h.Max()
}
