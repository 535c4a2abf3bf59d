package segment

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
)

// maxReadAttempts bounds how often a read that raced a Truncate or a
// segment deletion starts over.
const maxReadAttempts = 8

// errRetry makes a read start over with a fresh view.
var errRetry = errors.New("segment: retry read")

// Read returns whole batches starting with the batch that contains offset:
// as many as fit in maxBytes, but always at least one, and none at or past
// the high watermark. Reading at the high watermark returns (nil, nil); below
// the start offset or past the high watermark, ErrOffsetOutOfRange. Every
// returned batch has been checked (length, magic, CRC32C, offsets); stored
// bytes that fail return a *CorruptError (ErrCorrupt) naming file and byte.
func (l *Log) Read(offset int64, maxBytes int) ([]byte, error) {
	return l.ReadAppend(nil, offset, maxBytes)
}

// ReadAppend is Read appending to dst, so that callers can reuse buffers. On
// error dst is returned unchanged.
func (l *Log) ReadAppend(dst []byte, offset int64, maxBytes int) ([]byte, error) {
	for attempt := 1; ; attempt++ {
		gen := l.gen.Load()
		out, err := l.readOnce(dst, offset, maxBytes)
		if err == nil || errors.Is(err, ErrClosed) || attempt == maxReadAttempts {
			return out, err
		}
		if !errors.Is(err, errRetry) && l.gen.Load() == gen {
			return out, err
		}
	}
}

func (l *Log) readOnce(dst []byte, offset int64, maxBytes int) ([]byte, error) {
	if l.closed.Load() {
		return dst, ErrClosed
	}
	hwm, start := l.hwm.Load(), l.start.Load()
	if offset < start || offset > hwm {
		return dst, fmt.Errorf("%w: offset %d, log holds [%d, %d)", ErrOffsetOutOfRange, offset, start, hwm)
	}
	if offset == hwm {
		return dst, nil
	}
	view := *l.view.Load()
	i := sort.Search(len(view), func(i int) bool { return view[i].base > offset }) - 1
	if i < 0 {
		return dst, errRetry // retention moved the start since we loaded it
	}
	orig, budget, cur := len(dst), maxBytes, offset
	for ; i < len(view) && cur < hwm; i++ {
		s := view[i]
		if !s.acquire() {
			return dst[:orig], errRetry
		}
		before := len(dst)
		var more bool
		var err error
		dst, cur, more, err = l.readSegment(s, dst, cur, budget, before == orig, hwm)
		l.releaseQuiet(s)
		if err != nil {
			return dst[:orig], err
		}
		budget -= len(dst) - before
		if !more || budget <= 0 {
			break
		}
	}
	return dst, nil
}

func (l *Log) readSegment(s *segment, dst []byte, offset int64, budget int, first bool, hwm int64) ([]byte, int64, bool, error) {
	end := s.end.Load()
	pos, h, err := s.locate(offset, end, l.cfg.MaxBatchBytes)
	if err != nil {
		return dst, 0, false, err
	}
	return s.readBatches(dst, pos, h, end, budget, first, hwm, l.cfg.MaxBatchBytes)
}

// releaseQuiet releases a reader's reference; closing the files is the
// reader's job only after the segment was removed, and an error then has no
// caller to go to.
func (l *Log) releaseQuiet(s *segment) {
	if err := s.release(); err != nil {
		l.log.Warn("segment: closing removed segment", "file", s.logPath, "err", err)
	}
}

// OffsetForTime returns the base offset of the first batch whose max
// timestamp is at least ts (ms), found through the time indexes and a short
// scan; the high watermark if there is none.
func (l *Log) OffsetForTime(ts int64) (int64, error) {
	for attempt := 1; ; attempt++ {
		gen := l.gen.Load()
		off, err := l.offsetForTimeOnce(ts)
		if err == nil || errors.Is(err, ErrClosed) || attempt == maxReadAttempts {
			return off, err
		}
		if !errors.Is(err, errRetry) && l.gen.Load() == gen {
			return off, err
		}
	}
}

func (l *Log) offsetForTimeOnce(ts int64) (int64, error) {
	if l.closed.Load() {
		return 0, ErrClosed
	}
	hwm := l.hwm.Load()
	for _, s := range *l.view.Load() {
		if s.maxTs.Load() < ts {
			continue
		}
		if !s.acquire() {
			return 0, errRetry
		}
		off, found, err := s.offsetForTime(ts, hwm, l.cfg.MaxBatchBytes)
		l.releaseQuiet(s)
		if err != nil || found {
			return off, err
		}
	}
	return hwm, nil
}

// offsetForTime finds in s the first batch below hwm with a max timestamp of
// at least ts. Time index entry i holds the largest max timestamp of the
// batches up to the one offset index entry i points at, so when it is below
// ts no batch before that one qualifies.
func (s *segment) offsetForTime(ts, hwm int64, maxBatch int) (int64, bool, error) {
	end := s.end.Load()
	r := newHdrReader(s.log, s.logPath)
	defer r.done()
	pos, expect := int64(0), s.base
	if i := s.idx.lookupTime(s.idx.count(), ts); i >= 0 {
		e := s.idx.entry(i)
		pos, expect = int64(e.pos), s.base+int64(e.rel)
	}
	fromIndex := pos != 0
	for pos < end {
		h, err := r.checkedHeader(pos, end, maxBatch)
		if err == nil && h.BaseOffset != expect {
			err = corruptf(s.logPath, pos, "base offset %d, want %d", h.BaseOffset, expect)
		}
		if err != nil {
			if fromIndex {
				fromIndex, pos, expect = false, 0, s.base
				continue
			}
			return 0, false, err
		}
		if h.BaseOffset >= hwm {
			break
		}
		if h.MaxTimestamp >= ts {
			return h.BaseOffset, true, nil
		}
		pos += int64(h.Size())
		expect = h.NextOffset()
	}
	return 0, false, nil
}

// Wait returns nil as soon as the high watermark is past offset, ctx.Err()
// when ctx is done first, and ErrClosed when the log is closed. It sleeps on
// a channel that the next move of the high watermark closes.
func (l *Log) Wait(ctx context.Context, offset int64) error {
	l.waiters.Add(1)
	defer l.waiters.Add(-1)
	for {
		// Load the channel before the high watermark: a move after the load
		// closes this very channel.
		ch := *l.notify.Load()
		if l.closed.Load() {
			return ErrClosed
		}
		if l.hwm.Load() > offset {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-l.closedCh:
			return ErrClosed
		}
	}
}

// Verify reads every readable batch of every segment with full checks
// (length bounds, magic, CRC32C, contiguous offsets within and across
// segments) and returns the first corruption found as a *CorruptError.
func (l *Log) Verify() error {
	if l.closed.Load() {
		return ErrClosed
	}
	view := *l.view.Load()
	for i, s := range view {
		if !s.acquire() {
			return fmt.Errorf("%w: segment %d removed during Verify", ErrOffsetOutOfRange, s.base)
		}
		next, err := l.verifySegment(s)
		l.releaseQuiet(s)
		if err != nil {
			return err
		}
		// Under FsyncAlways a rolled segment is published by the next fsync
		// round, before its successor shows any data.
		if i+1 < len(view) && view[i+1].end.Load() > 0 && next != view[i+1].base {
			return corruptf(view[i+1].logPath, 0, "segment starts at offset %d, the one before ends at %d",
				view[i+1].base, next)
		}
	}
	return nil
}

// verifySegment scans the readable bytes of s and returns the offset after
// its last batch.
func (l *Log) verifySegment(s *segment) (int64, error) {
	end := s.end.Load()
	sc := newBatchScanner(s.log, s.logPath, end, 0, s.base, l.cfg.MaxBatchBytes)
	for {
		_, _, pos, err := sc.next()
		switch {
		case errors.Is(err, io.EOF):
			return sc.expect, nil
		case errors.Is(err, errZeroTail):
			return 0, corruptf(s.logPath, pos, "zero bytes inside the data")
		case err != nil:
			return 0, err
		}
	}
}
