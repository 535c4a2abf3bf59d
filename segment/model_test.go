package segment

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// model is the expected state of a log: its batches in order.
type model struct {
	batches [][]byte
	start   int64 // base offset of batches[0], or next when empty
	next    int64
}

func (m *model) header(i int) BatchHeader { h, _ := ParseBatchHeader(m.batches[i]); return h }

func (m *model) size() int64 {
	var n int64
	for _, b := range m.batches {
		n += int64(len(b))
	}
	return n
}

// find returns the index of the batch holding offset.
func (m *model) find(offset int64) int {
	for i := range m.batches {
		if h := m.header(i); offset >= h.BaseOffset && offset <= h.LastOffset() {
			return i
		}
	}
	return -1
}

// read is what Read(offset, maxBytes) must return.
func (m *model) read(offset int64, maxBytes int) ([]byte, error) {
	if offset < m.start || offset > m.next {
		return nil, ErrOffsetOutOfRange
	}
	var out []byte
	for i := m.find(offset); i >= 0 && i < len(m.batches); i++ {
		if len(out) > 0 && len(out)+len(m.batches[i]) > maxBytes {
			break
		}
		out = append(out, m.batches[i]...)
	}
	return out, nil
}

func (m *model) offsetForTime(ts int64) int64 {
	for i := range m.batches {
		if h := m.header(i); h.MaxTimestamp >= ts {
			return h.BaseOffset
		}
	}
	return m.next
}

// dropBefore removes the batches below offset (retention).
func (m *model) dropBefore(offset int64) {
	for len(m.batches) > 0 && m.header(0).BaseOffset < offset {
		m.batches = m.batches[1:]
	}
	m.start = offset
}

type modelRun struct {
	t     *testing.T
	rng   *rand.Rand
	cfg   Config
	clock *fakeClock
	dir   string
	l     *Log
	m     model
	ts    int64 // timestamp base, moves forward with jitter
	stats map[string]int
}

func TestModel(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		seed   uint64
		steps  int
		policy FsyncPolicy
		age    time.Duration
	}{
		{1, 3000, FsyncNever, 0},
		{2, 3000, FsyncNever, time.Hour},
		{3, 3000, FsyncInterval, 0},
		{4, 3000, FsyncNever, 10 * time.Minute},
		{5, 500, FsyncAlways, time.Hour},
	} {
		t.Run(fmt.Sprintf("seed=%d/%s", tc.seed, tc.policy), func(t *testing.T) {
			runModel(t, tc.seed, tc.steps, tc.policy, tc.age)
		})
	}
}

func runModel(t *testing.T, seed uint64, steps int, policy FsyncPolicy, age time.Duration) {
	rng := rand.New(rand.NewPCG(seed, seed*7919))
	pick := func(vs ...int) int { return vs[rng.IntN(len(vs))] }
	r := &modelRun{t: t, rng: rng, clock: newFakeClock(), dir: t.TempDir(), stats: map[string]int{}}
	r.cfg = testConfig(t)
	r.cfg.Fsync = policy
	r.cfg.FsyncInterval = time.Millisecond
	r.cfg.MaxSegmentBytes = int64(pick(minSegmentBytes, 4096, 16384))
	r.cfg.IndexIntervalBytes = pick(1, 100, 1000)
	r.cfg.MaxIndexBytes = pick(minIndexBytes, 4096)
	r.cfg.MaxBatchBytes = 16 << 10
	r.cfg.MaxSegmentAge = age
	r.cfg.Now = r.clock.Now
	r.ts = r.clock.Now().UnixMilli()
	t.Logf("config: segment %d, interval %d, index %d, age %v", r.cfg.MaxSegmentBytes,
		r.cfg.IndexIntervalBytes, r.cfg.MaxIndexBytes, r.cfg.MaxSegmentAge)
	r.reopen(false)
	defer func() { r.l.Close() }()
	defer func() { t.Logf("stats: %v", r.stats) }()
	for step := 0; step < steps; step++ {
		switch n := rng.IntN(100); {
		case n < 40:
			r.append()
		case n < 62:
			r.read()
		case n < 72:
			r.offsetForTime()
		case n < 77:
			r.truncate()
		case n < 81:
			r.retention()
		case n < 83:
			r.reopen(rng.IntN(2) == 0)
		case n < 85:
			if err := r.l.Sync(); err != nil {
				t.Fatalf("Sync: %v", err)
			}
		case n < 90:
			r.appendInvalid()
		default:
			r.clock.Advance(time.Duration(rng.IntN(20)) * time.Minute)
		}
		r.check(step%50 == 0)
		if t.Failed() {
			t.Fatalf("failed at step %d", step)
		}
	}
}

func (r *modelRun) reopen(crashIt bool) {
	if r.l != nil {
		if crashIt {
			crash(r.l)
		} else if err := r.l.Close(); err != nil {
			r.t.Fatalf("Close: %v", err)
		}
	}
	l, err := Open(r.dir, r.cfg)
	if err != nil {
		r.t.Fatalf("Open (crashed %v): %v", crashIt, err)
	}
	r.l = l
	r.stats[fmt.Sprintf("reopen crashed=%v", crashIt)]++
	if n := len(l.Segments()); n > r.stats["max segments"] {
		r.stats["max segments"] = n
	}
}

func (r *modelRun) append() {
	records := 1 + r.rng.IntN(8)
	if r.rng.IntN(10) == 0 {
		records = 1 + r.rng.IntN(60)
	}
	valueSize := r.rng.IntN(120)
	if r.rng.IntN(20) == 0 {
		valueSize = r.rng.IntN(1500)
	}
	valueSize = min(valueSize, (r.cfg.MaxBatchBytes-BatchHeaderSize)/records-16)
	r.ts += int64(r.rng.IntN(1000)) - 200 // mostly increasing
	ts := max(r.ts, 0)
	b := makeBatch(spec{records: records, valueSize: valueSize, firstTs: ts, maxTs: ts + int64(r.rng.IntN(50)), fill: byte(r.rng.Uint32())})
	base, err := r.l.Append(b)
	if err != nil {
		r.t.Fatalf("Append: %v", err)
	}
	stored(b, base)
	if base != r.m.next {
		r.t.Fatalf("Append: base %d, want %d", base, r.m.next)
	}
	r.m.batches = append(r.m.batches, b)
	r.m.next += int64(records)
}

func (r *modelRun) appendInvalid() {
	cases := badBatches()
	tc := cases[r.rng.IntN(len(cases))]
	if tc.max != 0 {
		tc.batch = makeBatch(spec{records: 1, valueSize: r.cfg.MaxBatchBytes})
		tc.want = ErrBatchTooLarge
	}
	if _, err := r.l.Append(tc.batch); !errors.Is(err, tc.want) {
		r.t.Fatalf("Append(%s) = %v, want %v", tc.name, err, tc.want)
	}
}

func (r *modelRun) read() {
	offset := r.m.start - 2 + r.rng.Int64N(r.m.next-r.m.start+5)
	maxBytes := []int{0, 1, r.rng.IntN(3000), r.rng.IntN(40000)}[r.rng.IntN(4)]
	got, err := r.l.ReadAppend(nil, offset, maxBytes)
	want, werr := r.m.read(offset, maxBytes)
	if !errors.Is(err, werr) || (werr == nil && err != nil) {
		r.t.Fatalf("Read(%d, %d) = %v, want %v (log [%d, %d))", offset, maxBytes, err, werr, r.m.start, r.m.next)
	}
	if !bytes.Equal(got, want) {
		r.t.Fatalf("Read(%d, %d): %d bytes, want %d", offset, maxBytes, len(got), len(want))
	}
}

func (r *modelRun) offsetForTime() {
	ts := r.ts - 3000 + r.rng.Int64N(4000)
	if r.rng.IntN(10) == 0 {
		ts = r.clock.Now().UnixMilli() - r.rng.Int64N(int64(time.Hour/time.Millisecond))
	}
	got, err := r.l.OffsetForTime(ts)
	if want := r.m.offsetForTime(ts); err != nil || got != want {
		r.t.Fatalf("OffsetForTime(%d) = %d, %v; want %d", ts, got, err, want)
	}
}

func (r *modelRun) truncate() {
	m := &r.m
	var offset int64
	var want error
	switch {
	case len(m.batches) > 0 && r.rng.IntN(3) > 0:
		// a batch boundary, most often near the end
		i := len(m.batches) - 1 - r.rng.IntN(min(len(m.batches), 1+r.rng.IntN(40)))
		offset = m.header(i).BaseOffset
	case len(m.batches) > 0 && r.rng.IntN(2) == 0:
		i := r.rng.IntN(len(m.batches))
		h := m.header(i)
		if h.LastOffsetDelta == 0 {
			return
		}
		offset, want = h.BaseOffset+1+r.rng.Int64N(int64(h.LastOffsetDelta)), ErrNotBatchBoundary
	default:
		offset = m.next + int64(r.rng.IntN(3)) - 1
		switch {
		case offset > m.next:
			want = ErrOffsetOutOfRange
		case offset < m.next && len(m.batches) > 0 && m.header(len(m.batches)-1).BaseOffset != offset:
			want = ErrNotBatchBoundary
		case offset < m.start:
			want = ErrOffsetOutOfRange
		}
	}
	segsBefore := len(r.l.Segments())
	err := r.l.Truncate(offset)
	if !errors.Is(err, want) || (want == nil && err != nil) {
		r.t.Fatalf("Truncate(%d) = %v, want %v", offset, err, want)
	}
	if err != nil {
		r.stats["truncate rejected"]++
		return
	}
	r.stats["truncate"]++
	if len(r.l.Segments()) < segsBefore {
		r.stats["truncate deleting segments"]++
	}
	for len(m.batches) > 0 && m.header(len(m.batches)-1).BaseOffset >= offset {
		m.batches = m.batches[:len(m.batches)-1]
	}
	m.next = offset
}

func (r *modelRun) retention() {
	age := time.Duration(r.rng.IntN(3)) * 30 * time.Minute
	size := int64(r.rng.IntN(3)) * r.cfg.MaxSegmentBytes * int64(1+r.rng.IntN(4))
	r.l.SetRetention(age, size)
	segs := r.l.Segments()
	sealed, del := len(segs)-1, 0
	if age > 0 {
		cutoff := r.clock.Now().Add(-age).UnixMilli()
		for del < sealed && segs[del].MaxTimestamp < cutoff {
			del++
		}
	}
	if size > 0 {
		var total int64
		for _, s := range segs[del:] {
			total += s.Size
		}
		for del < sealed && total > size {
			total -= segs[del].Size
			del++
		}
	}
	n, err := r.l.EnforceRetention()
	if err != nil || n != del {
		r.t.Fatalf("EnforceRetention = %d, %v; want %d (age %v, bytes %d, segments %+v)", n, err, del, age, size, segs)
	}
	if del > 0 {
		r.m.dropBefore(segs[del].BaseOffset)
		r.stats["retention deletions"] += del
	}
	r.l.SetRetention(0, 0)
}

func (r *modelRun) check(full bool) {
	l, m := r.l, &r.m
	if l.HighWatermark() != m.next || l.StartOffset() != m.start || l.Size() != m.size() {
		r.t.Fatalf("hwm %d start %d size %d; want %d %d %d", l.HighWatermark(), l.StartOffset(), l.Size(), m.next, m.start, m.size())
	}
	segs := l.Segments()
	if segs[0].BaseOffset != m.start || segs[len(segs)-1].NextOffset != m.next || segs[len(segs)-1].Sealed {
		r.t.Fatalf("segments %+v for log [%d, %d)", segs, m.start, m.next)
	}
	for i := 1; i < len(segs); i++ {
		if segs[i-1].NextOffset != segs[i].BaseOffset || !segs[i-1].Sealed || segs[i-1].Size == 0 {
			r.t.Fatalf("segments %d and %d: %+v", i-1, i, segs)
		}
	}
	if full {
		equalBatches(r.t, readAll(r.t, l), m.batches)
		if err := l.Verify(); err != nil {
			r.t.Fatalf("Verify: %v", err)
		}
	}
}
