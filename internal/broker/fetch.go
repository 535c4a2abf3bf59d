package broker

import (
	"context"
	"errors"
	"fmt"
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
// watermark it waits up to maxWait for a write, without polling.
func (b *Broker) Fetch(ctx context.Context, topic string, partition int32, offset int64, maxBytes int, maxWait time.Duration) (FetchResult, error) {
	p, err := b.localPartition(ctx, topic, partition)
	if err != nil {
		return FetchResult{}, err
	}
	if maxBytes <= 0 {
		maxBytes = 1 << 20
	}
	maxBytes = min(maxBytes, b.cfg.MaxFetchBytes)
	maxWait = min(max(maxWait, 0), b.cfg.MaxFetchWait)
	lg := p.Log
	if offset == lg.HighWatermark() && maxWait > 0 {
		wctx, cancel := context.WithTimeout(ctx, maxWait)
		err := lg.Wait(wctx, offset)
		cancel()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			if ctx.Err() != nil {
				return FetchResult{}, ctx.Err()
			}
			return FetchResult{}, fmt.Errorf("%w: %s/%d: %w", ErrNotReady, topic, partition, err)
		}
	}
	res := FetchResult{HighWatermark: lg.HighWatermark(), LogStartOffset: lg.StartOffset()}
	if offset < res.LogStartOffset || offset > res.HighWatermark {
		return res, fmt.Errorf("%w: offset %d of %s/%d is outside [%d, %d]",
			ErrOffsetOutOfRange, offset, topic, partition, res.LogStartOffset, res.HighWatermark)
	}
	recs, err := lg.Read(offset, maxBytes)
	if err != nil {
		if errors.Is(err, segment.ErrOffsetOutOfRange) {
			return res, fmt.Errorf("%w: %w", ErrOffsetOutOfRange, err)
		}
		return res, fmt.Errorf("broker: read %s/%d at %d: %w", topic, partition, offset, err)
	}
	res.Records = recs
	b.m.observeFetch(topic, len(recs))
	return res, nil
}

// localPartition returns this node's replica of a partition.
func (b *Broker) localPartition(ctx context.Context, topic string, partition int32) (*cluster.Partition, error) {
	_, dg, k, err := b.partition(ctx, topic, partition)
	if err != nil {
		return nil, err
	}
	p := dg.FSM.Partition(k)
	if p == nil {
		return nil, fmt.Errorf("%w: %s/%d", ErrNotReady, topic, partition)
	}
	if p.Failed() {
		return nil, fmt.Errorf("%w: %s/%d: %w", ErrNotReady, topic, partition, cluster.ErrPartitionFailed)
	}
	return p, nil
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
// tsMs (the high watermark when no record is that recent).
func (b *Broker) ListOffsets(ctx context.Context, topic string, partition int32, spec OffsetSpec, tsMs int64) (int64, error) {
	p, err := b.localPartition(ctx, topic, partition)
	if err != nil {
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
func offsetForTime(lg *segment.Log, tsMs int64) (int64, error) {
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
func recordTimeAt(lg *segment.Log, offset int64) (time.Time, bool) {
	if offset < lg.StartOffset() || offset >= lg.HighWatermark() {
		return time.Time{}, false
	}
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
