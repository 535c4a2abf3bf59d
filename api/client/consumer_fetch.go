package client

import (
	"context"
	"errors"
	"fmt"

	"github.com/stratalog/strata/api/record"
	stratav1 "github.com/stratalog/strata/api/v1"
)

// fetchLoop reads one partition from at until ctx ends: it long-polls
// Fetch, decodes the batches (skipping the records of the first batch
// that lie before the offset asked for), hands the records to Poll, and
// fetches the next ones while the application handles them.
//
// Fetches are pipelined: as soon as a response arrives, the fetch after
// it goes out (to the offset its batch headers give, see fetchAhead),
// while the response is decoded and handed over. That fetch is used
// only if decoding ends where the headers said; any other outcome
// (corruption, a partial batch, an error, ctx ending, a Seek) cancels
// and waits for it, and the loop goes on as if it had never been sent.
// At most one fetch is ahead per partition.
func (co *Consumer) fetchLoop(ctx context.Context, f *partFetch, gen int, at Offset) {
	defer co.wg.Done()
	tp := f.tp
	off, err := co.resolveRetrying(ctx, tp, at)
	if err != nil {
		co.report(f, gen, err)
		return
	}
	co.mu.Lock()
	if f.gen == gen && f.pos < 0 {
		f.pos, f.polled = off, off
	}
	co.mu.Unlock()

	var ahead *aheadFetch
	defer func() { ahead.drop() }()
	maxBytes := co.cfg.FetchMaxBytes
	failures := 0
	for ctx.Err() == nil {
		var resp *stratav1.FetchResponse
		var err error
		if ahead != nil {
			resp, err = ahead.wait()
			ahead = nil
		} else {
			resp, err = co.fetch(ctx, tp, off, maxBytes)
		}
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			var ok bool
			if off, ok = co.fetchFailed(ctx, f, gen, off, err, &failures); !ok {
				return
			}
			continue
		}
		failures = 0

		// A response that moves the reader on (complete batches) is most
		// often followed by a fetch from where its headers end, with the
		// configured size: send it now. The partial-batch case, where
		// the size grows, is left to the loop.
		if n := record.NextOffset(resp.GetRecords(), off); n > off {
			ahead = co.fetchAhead(ctx, tp, n, co.cfg.FetchMaxBytes)
		}
		fp, next, derr := decodeFetch(tp, off, resp)
		switch {
		case fp != nil:
			maxBytes = co.cfg.FetchMaxBytes
		case derr == nil && next == off && len(resp.GetRecords()) > 0:
			// Only part of a batch came back: ask for more bytes.
			maxBytes = min(2*maxBytes, co.c.cfg.MaxMessageBytes/2)
		}
		if derr != nil || (ahead != nil && (ahead.off != next || ahead.maxBytes != maxBytes)) {
			// Not the fetch the loop would send now.
			ahead.drop()
			ahead = nil
		}
		if fp != nil && !co.handOver(ctx, f, gen, fp) {
			return
		}
		if derr != nil {
			co.report(f, gen, derr)
			return
		}
		off = next
	}
}

// fetchFailed handles a fetch at off that failed with err: after an
// out-of-range it starts again where StartAt says, after a retriable
// error it backs off (counting one more of failures), and it reports any
// other error. It returns the offset to fetch next, and false when the
// fetcher must stop.
func (co *Consumer) fetchFailed(ctx context.Context, f *partFetch, gen int, off int64, err error, failures *int) (int64, bool) {
	tp := f.tp
	switch {
	case errors.Is(err, ErrOffsetOutOfRange):
		// Retention moved the log start past us, or the offset was
		// never valid: start again where StartAt says.
		reset := AtStart()
		if co.cfg.StartAt == Latest {
			reset = AtEnd()
		}
		co.log.Warn("offset out of range; resetting", "partition", tp, "offset", off, "to", reset)
		if off, err = co.resolveRetrying(ctx, tp, reset); err != nil {
			co.report(f, gen, err)
			return off, false
		}
		return off, true
	case retriable(err):
		// The client already retried; keep at it, slowly, since a
		// consumer outlives elections and restarts.
		*failures++
		co.log.Warn("fetch failing", "partition", tp, "offset", off, "err", err)
		return off, sleep(ctx, backoffDelay(co.c.cfg.RetryBackoff, co.c.cfg.MaxRetryBackoff, *failures+4))
	default:
		co.report(f, gen, fmt.Errorf("client: fetch %s at %d: %w", tp, off, err))
		return off, false
	}
}

// aheadFetch is a Fetch sent before the response of the previous one was
// decoded. Its goroutine ends when the fetch returns; drop cancels it and
// waits for that.
type aheadFetch struct {
	off      int64
	maxBytes int
	cancel   context.CancelFunc
	done     chan struct{} // closed when resp and err are set
	resp     *stratav1.FetchResponse
	err      error
}

// fetchAhead sends a Fetch for tp at off on a goroutine of its own, with
// a context of its own below ctx.
func (co *Consumer) fetchAhead(ctx context.Context, tp TopicPartition, off int64, maxBytes int) *aheadFetch {
	ctx, cancel := context.WithCancel(ctx)
	a := &aheadFetch{off: off, maxBytes: maxBytes, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(a.done)
		a.resp, a.err = co.fetch(ctx, tp, off, maxBytes)
	}()
	return a
}

// wait returns the fetch's response once it is there.
func (a *aheadFetch) wait() (*stratav1.FetchResponse, error) {
	<-a.done
	a.cancel()
	return a.resp, a.err
}

// drop cancels the fetch and waits for its goroutine to end. A nil a
// does nothing.
func (a *aheadFetch) drop() {
	if a == nil {
		return
	}
	a.cancel()
	<-a.done
}

// fetch sends one Fetch for tp at off to the partition's leader. The
// response's records alias a buffer of their own (see responseCodec).
func (co *Consumer) fetch(ctx context.Context, tp TopicPartition, off int64, maxBytes int) (*stratav1.FetchResponse, error) {
	var resp *stratav1.FetchResponse
	err := co.c.callPartition(ctx, tp.Topic, tp.Partition, func(ctx context.Context, s stratav1.StrataClient) error {
		var err error
		resp, err = s.Fetch(ctx, &stratav1.FetchRequest{
			Topic: tp.Topic, Partition: tp.Partition, Offset: off,
			MaxBytes: int32(maxBytes), MaxWaitMs: int32(co.cfg.FetchMaxWait.Milliseconds()),
		}, responseCallOption)
		return err
	})
	return resp, err
}

// decodeFetch decodes the records at or after off. It returns them (nil
// when there are none), the offset to fetch next, and an error for
// corrupt bytes (the records before the corruption still come back).
func decodeFetch(tp TopicPartition, off int64, resp *stratav1.FetchResponse) (*FetchPartition, int64, error) {
	data := resp.GetRecords()
	// Size the slice from the batch headers, bounded so that a corrupt
	// header cannot make it huge.
	recs := make([]record.Record, 0, min(record.CountRecords(data), len(data)/16+64))
	recs, next, err := record.AppendRecordsFrom(recs, data, off)
	if err != nil {
		err = fmt.Errorf("client: fetch %s at %d: %w", tp, off, err)
	}
	if len(recs) == 0 {
		return nil, next, err
	}
	// After corruption, next is where the bad batch started; the records
	// decoded from it before the bad one still count.
	next = max(next, recs[len(recs)-1].Offset+1)
	return &FetchPartition{Topic: tp.Topic, Partition: tp.Partition, Records: recs, HighWatermark: resp.GetHighWatermark()}, next, err
}

// handOver waits until Poll has taken the previous records of f, then
// leaves fp for it. It reports false when the fetcher must stop.
func (co *Consumer) handOver(ctx context.Context, f *partFetch, gen int, fp *FetchPartition) bool {
	co.mu.Lock()
	defer co.mu.Unlock()
	for f.ready != nil && f.gen == gen {
		co.mu.Unlock()
		select {
		case <-f.taken:
		case <-ctx.Done():
		}
		co.mu.Lock()
		if ctx.Err() != nil {
			return false
		}
	}
	if f.gen != gen {
		return false
	}
	f.ready = fp
	co.broadcastLocked()
	return true
}

// report leaves a fetcher's final error for Poll.
func (co *Consumer) report(f *partFetch, gen int, err error) {
	co.mu.Lock()
	defer co.mu.Unlock()
	if f.gen != gen || co.closed {
		return
	}
	co.log.Error("partition stopped", "partition", f.tp, "err", err)
	f.err = err
	co.broadcastLocked()
}

// resolveRetrying turns at into an offset, retrying retriable failures
// until ctx ends.
func (co *Consumer) resolveRetrying(ctx context.Context, tp TopicPartition, at Offset) (int64, error) {
	for failures := 0; ; failures++ {
		off, err := co.resolve(ctx, tp, at)
		if err == nil || !retriable(err) || ctx.Err() != nil {
			return off, err
		}
		co.log.Warn("cannot find start offset", "partition", tp, "at", at, "err", err)
		if !sleep(ctx, backoffDelay(co.c.cfg.RetryBackoff, co.c.cfg.MaxRetryBackoff, failures+4)) {
			return 0, ctx.Err()
		}
	}
}

// resolve turns at into an offset.
func (co *Consumer) resolve(ctx context.Context, tp TopicPartition, at Offset) (int64, error) {
	switch at.kind {
	case offsetExact:
		if at.offset < 0 {
			return 0, fmt.Errorf("%w: offset %d", ErrInvalidArgument, at.offset)
		}
		return at.offset, nil
	case offsetStart:
		return co.c.listOffset(ctx, tp, stratav1.OffsetSpec_OFFSET_SPEC_EARLIEST, 0)
	case offsetEnd:
		return co.c.listOffset(ctx, tp, stratav1.OffsetSpec_OFFSET_SPEC_LATEST, 0)
	case offsetTime:
		return co.c.listOffset(ctx, tp, stratav1.OffsetSpec_OFFSET_SPEC_TIMESTAMP, at.time.UnixMilli())
	}
	// offsetCommitted
	var resp *stratav1.FetchOffsetsResponse
	err := co.c.callAny(ctx, ErrUnknownGroup, func(ctx context.Context, s stratav1.StrataClient) error {
		var err error
		resp, err = s.FetchOffsets(ctx, &stratav1.FetchOffsetsRequest{
			Group: co.cfg.Group, Partitions: []*stratav1.TopicPartition{{Topic: tp.Topic, Partition: tp.Partition}},
		})
		return err
	})
	if err != nil && !errors.Is(err, ErrUnknownGroup) {
		return 0, err
	}
	for _, o := range resp.GetOffsets() {
		if o.GetTopic() == tp.Topic && o.GetPartition() == tp.Partition && o.GetOffset() >= 0 {
			co.mu.Lock()
			co.committed[tp] = o.GetOffset()
			co.mu.Unlock()
			return o.GetOffset(), nil
		}
	}
	if co.cfg.StartAt == Latest {
		return co.resolve(ctx, tp, AtEnd())
	}
	return co.resolve(ctx, tp, AtStart())
}

// listOffset asks the partition's leader for an offset.
func (c *Client) listOffset(ctx context.Context, tp TopicPartition, spec stratav1.OffsetSpec, tsMs int64) (int64, error) {
	var resp *stratav1.ListOffsetsResponse
	err := c.callPartition(ctx, tp.Topic, tp.Partition, func(ctx context.Context, s stratav1.StrataClient) error {
		var err error
		resp, err = s.ListOffsets(ctx, &stratav1.ListOffsetsRequest{Topic: tp.Topic, Partition: tp.Partition, Spec: spec, TimestampMs: tsMs})
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("client: list offsets of %s: %w", tp, err)
	}
	return resp.GetOffset(), nil
}
