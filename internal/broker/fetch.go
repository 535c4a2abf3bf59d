package broker

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stratalog/strata/api/record"
	"github.com/stratalog/strata/cluster"
	"github.com/stratalog/strata/segment"
)

// FetchResult is what a fetch returns.
type FetchResult struct {
	// Records holds whole stored batches, the first of which may start
	// before the offset asked for.
	Records        []byte
	HighWatermark  int64
	LogStartOffset int64
}

// Fetch reads whole batches from offset, up to maxBytes (at least one
// batch), never past the high watermark. When offset is the high
// watermark it waits up to maxWait for a write, without polling. The
// records are in memory of their own that belongs to the caller.
//
// On a new leader that has not yet applied what its predecessor
// committed, it first waits up to maxWait for that (its log may end below
// offsets its predecessor served): if the wait ends first, the answer is
// empty, not an error.
func (b *Broker) Fetch(ctx context.Context, topic string, partition int32, offset int64, maxBytes int, maxWait time.Duration) (FetchResult, error) {
	res, _, err := b.fetch(ctx, topic, partition, offset, maxBytes, maxWait, false)
	return res, err
}

// FetchLeased is Fetch reading into a buffer from the broker's pool of
// read buffers, so that a steady stream of fetches reuses memory instead
// of zeroing fresh buffers. The records alias that buffer, which lease
// owns: after lease.Release the caller must not touch the records. A
// caller that never releases only loses the reuse (the buffer is then
// garbage collected). The lease is nil when the records are empty.
func (b *Broker) FetchLeased(ctx context.Context, topic string, partition int32, offset int64, maxBytes int, maxWait time.Duration) (FetchResult, *FetchLease, error) {
	return b.fetch(ctx, topic, partition, offset, maxBytes, maxWait, true)
}

func (b *Broker) fetch(ctx context.Context, topic string, partition int32, offset int64, maxBytes int, maxWait time.Duration, pooled bool) (FetchResult, *FetchLease, error) {
	dg, p, err := b.localReplica(ctx, topic, partition)
	if err != nil {
		return FetchResult{}, nil, err
	}
	if maxBytes <= 0 {
		maxBytes = 1 << 20
	}
	maxBytes = min(maxBytes, b.cfg.MaxFetchBytes)
	maxWait = min(max(maxWait, 0), b.cfg.MaxFetchWait)
	lg := p.Log
	begin := time.Now()
	var waited time.Duration // in long polls: not part of the fetch latency
	defer func() {
		addWait(ctx, waited)
		b.m.fetchLatency.Observe(max(time.Since(begin)-waited, 0).Seconds())
	}()
	if dg.Group.CatchingUp() {
		start := time.Now()
		err := b.awaitCaughtUp(ctx, dg.Group, maxWait)
		waited += time.Since(start)
		if err != nil {
			if !errors.Is(err, ErrNotReady) {
				return FetchResult{}, nil, err
			}
			// An empty long poll. The true high watermark is at least the
			// offset asked for, which the client had from a leader; the
			// local one may be below it and must not be reported.
			return FetchResult{HighWatermark: max(lg.HighWatermark(), offset), LogStartOffset: lg.StartOffset()}, nil, nil
		}
		maxWait = max(maxWait-time.Since(start), 0)
	}
	if offset == lg.HighWatermark() && maxWait > 0 {
		wctx, cancel := context.WithTimeout(ctx, maxWait)
		start := time.Now()
		err := lg.Wait(wctx, offset)
		waited += time.Since(start)
		cancel()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			if ctx.Err() != nil {
				return FetchResult{}, nil, ctx.Err()
			}
			return FetchResult{}, nil, fmt.Errorf("%w: %s/%d: %w", ErrNotReady, topic, partition, err)
		}
	}
	res := FetchResult{HighWatermark: lg.HighWatermark(), LogStartOffset: lg.StartOffset()}
	if offset > res.HighWatermark {
		if err := b.confirmPastEnd(ctx, dg, topic, partition); err != nil {
			return res, nil, err
		}
		res.HighWatermark = lg.HighWatermark()
	}
	if offset < res.LogStartOffset || offset > res.HighWatermark {
		return res, nil, fmt.Errorf("%w: offset %d of %s/%d is outside [%d, %d]",
			ErrOffsetOutOfRange, offset, topic, partition, res.LogStartOffset, res.HighWatermark)
	}
	var dst []byte
	if pooled {
		// Taken after the wait: a long poll holds no buffer.
		dst = fetchBufs.get(maxBytes)
	}
	recs, err := lg.ReadAppend(dst, offset, maxBytes)
	var lease *FetchLease
	if pooled {
		if len(recs) == 0 {
			fetchBufs.put(recs) // nothing aliases it
			recs = nil
		} else {
			lease = &FetchLease{buf: recs}
		}
	}
	if err != nil {
		if errors.Is(err, segment.ErrOffsetOutOfRange) {
			return res, nil, fmt.Errorf("%w: %w", ErrOffsetOutOfRange, err)
		}
		return res, nil, fmt.Errorf("broker: read %s/%d at %d: %w", topic, partition, offset, err)
	}
	res.Records = recs
	b.m.observeFetch(topic, len(recs))
	return res, lease, nil
}

// confirmPastEnd is asked before a fetch past this replica's high
// watermark is answered out of range, an answer that makes a consumer
// reset its position (replay from the start, or skip to the end). Only a
// leader that a majority still follows knows where the log ends: a
// follower, or a deposed leader that does not know it yet, may be behind,
// and answers NotLeader instead, so the client asks the leader. The
// check costs a round trip to the voters, on this rare path only.
func (b *Broker) confirmPastEnd(ctx context.Context, dg *cluster.DataGroup, topic string, partition int32) error {
	what := fmt.Sprintf("%s/%d", topic, partition)
	if !dg.Group.IsReadyLeader() {
		return b.notLeader(dg.Group, what)
	}
	if err := dg.Group.VerifyLeader(ctx); err != nil {
		if errors.Is(err, cluster.ErrNotLeader) {
			return b.notLeader(dg.Group, what)
		}
		return fmt.Errorf("%w: %s: %w", ErrNotReady, what, err)
	}
	return nil
}

// localPartition returns this node's replica of a partition.
func (b *Broker) localPartition(ctx context.Context, topic string, partition int32) (*cluster.Partition, error) {
	_, p, err := b.localReplica(ctx, topic, partition)
	return p, err
}

// localReplica returns this node's replica of a partition with its data
// group.
func (b *Broker) localReplica(ctx context.Context, topic string, partition int32) (*cluster.DataGroup, *cluster.Partition, error) {
	_, dg, k, err := b.partition(ctx, topic, partition)
	if err != nil {
		return nil, nil, err
	}
	p := dg.FSM.Partition(k)
	if p == nil {
		return nil, nil, fmt.Errorf("%w: %s/%d", ErrNotReady, topic, partition)
	}
	if p.Failed() {
		return nil, nil, fmt.Errorf("%w: %s/%d: %w", ErrNotReady, topic, partition, cluster.ErrPartitionFailed)
	}
	return dg, p, nil
}

// OffsetSpec says which offset ListOffsets returns.
type OffsetSpec int

// Offset specs.
const (
	SpecEarliest OffsetSpec = iota + 1
	SpecLatest
	SpecTimestamp
)

// ListOffsets returns the earliest offset, the latest (the high
// watermark), or the first offset whose record timestamp is at or after
// tsMs (the high watermark when no record is that recent). A new leader
// answers once it has applied what its predecessor committed, so that
// the latest offset never goes back across a leadership change; if that
// takes longer than leaderCatchUp, it answers ErrNotReady.
func (b *Broker) ListOffsets(ctx context.Context, topic string, partition int32, spec OffsetSpec, tsMs int64) (int64, error) {
	dg, p, err := b.localReplica(ctx, topic, partition)
	if err != nil {
		return 0, err
	}
	if err := b.awaitCaughtUp(ctx, dg.Group, leaderCatchUp); err != nil {
		return 0, err
	}
	switch spec {
	case SpecEarliest:
		return p.Log.StartOffset(), nil
	case SpecLatest:
		return p.Log.HighWatermark(), nil
	case SpecTimestamp:
		return offsetForTime(p.Log, tsMs)
	}
	return 0, fmt.Errorf("%w: offset spec %d", ErrInvalidRequest, spec)
}

// offsetForTime finds the first record with timestamp >= tsMs: the segment
// log's time index gives the first batch whose newest record is that
// recent, and the records of that batch (and the next, if needed) give the
// exact offset.
func offsetForTime(lg cluster.LogView, tsMs int64) (int64, error) {
	off, err := lg.OffsetForTime(tsMs)
	if err != nil {
		return 0, err
	}
	for off < lg.HighWatermark() {
		data, err := lg.Read(off, 1)
		if err != nil {
			return 0, err
		}
		found := int64(-1)
		last := off
		err = record.DecodeBatches(data, func(r record.Record) bool {
			last = r.Offset
			if r.Offset >= off && r.Timestamp.UnixMilli() >= tsMs {
				found = r.Offset
				return false
			}
			return true
		})
		if err != nil {
			return 0, err
		}
		if found >= 0 {
			return found, nil
		}
		if last+1 <= off {
			break
		}
		off = last + 1
	}
	return lg.HighWatermark(), nil
}

// recordTimeAt returns the timestamp of the record at offset, if any.
func recordTimeAt(lg cluster.LogView, offset int64) (time.Time, bool) {
	if offset < lg.StartOffset() || offset >= lg.HighWatermark() {
		return time.Time{}, false
	}
	stampReads.Add(1)
	data, err := lg.Read(offset, 1)
	if err != nil {
		return time.Time{}, false
	}
	var ts time.Time
	ok := false
	_ = record.DecodeBatches(data, func(r record.Record) bool {
		if r.Offset >= offset {
			ts, ok = r.Timestamp, true
			return false
		}
		return true
	})
	return ts, ok
}

// FetchLease owns the pooled buffer that the records of a FetchLeased
// result alias. Each lease is a value of its own (never reused), so a
// stale copy cannot release a buffer that has since gone to another
// fetch.
type FetchLease struct {
	buf      []byte
	released atomic.Bool
}

// Release returns the buffer to the pool; the records must not be read
// afterwards. Only the first call does anything, so a buffer never goes
// back twice. Release on a nil lease does nothing.
func (l *FetchLease) Release() {
	if l == nil || !l.released.CompareAndSwap(false, true) {
		return
	}
	buf := l.buf
	l.buf = nil
	fetchBufs.put(buf)
}

// Fetch buffer pool bounds: buffers come in power-of-two classes from
// 64 KiB to 16 MiB (the default MaxFetchBytes), and the pool keeps at most
// fetchPoolKeepBytes of them in all.
const (
	fetchPoolMinShift  = 16
	fetchPoolMaxShift  = 24
	fetchPoolKeepBytes = 64 << 20
)

// fetchBufs is the process's pool of fetch read buffers. One pool for all
// brokers of a process: the bound is what matters, and it is per process.
var fetchBufs bufPool

// bufPool keeps read buffers by size class, up to a total of
// fetchPoolKeepBytes. A plain free list under a mutex: sync.Pool would
// drop buffers at every GC, and fresh memory is what we avoid.
type bufPool struct {
	mu      sync.Mutex
	free    [fetchPoolMaxShift - fetchPoolMinShift + 1][][]byte
	kept    int          // bytes of capacity in free
	dropped atomic.Int64 // buffers not kept, past the bound
}

// classFor returns the class of the smallest buffer that holds n bytes.
func classFor(n int) int {
	if n <= 1<<fetchPoolMinShift {
		return 0
	}
	return bits.Len(uint(n-1)) - fetchPoolMinShift
}

// get returns an empty buffer with capacity for at least n bytes.
func (p *bufPool) get(n int) []byte {
	c := classFor(n)
	if c >= len(p.free) {
		return make([]byte, 0, n)
	}
	p.mu.Lock()
	if k := len(p.free[c]); k > 0 {
		buf := p.free[c][k-1]
		p.free[c][k-1] = nil
		p.free[c] = p.free[c][:k-1]
		p.kept -= cap(buf)
		p.mu.Unlock()
		return buf
	}
	p.mu.Unlock()
	return make([]byte, 0, 1<<(c+fetchPoolMinShift))
}

// put keeps buf for reuse if it fits a class and the bound. The caller
// gives up buf: nothing may read or write it afterwards.
func (p *bufPool) put(buf []byte) {
	// A read that outgrew its buffer (a first batch larger than maxBytes)
	// hands back the grown one: file it under the largest class it fills.
	c := bits.Len(uint(cap(buf))) - 1 - fetchPoolMinShift
	if c < 0 {
		return
	}
	c = min(c, len(p.free)-1)
	p.mu.Lock()
	if p.kept+cap(buf) > fetchPoolKeepBytes {
		p.mu.Unlock()
		p.dropped.Add(1)
		return
	}
	p.free[c] = append(p.free[c], buf[:0])
	p.kept += cap(buf)
	p.mu.Unlock()
}
