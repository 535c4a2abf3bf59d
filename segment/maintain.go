package segment

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"time"
)

// Truncate removes every batch whose base offset is at least offset, which
// must be the base offset of a batch or the high watermark (else
// ErrNotBatchBoundary; outside [StartOffset, HighWatermark]
// ErrOffsetOutOfRange). Whole segments past offset are deleted. Afterwards
// the high watermark is offset. Under FsyncAlways, Appends still waiting for
// their fsync fail with ErrTruncated. The cut is fsynced before Truncate
// returns.
func (l *Log) Truncate(offset int64) error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	return l.truncateSyncLocked(offset)
}

// truncateSyncLocked is Truncate. Caller must hold l.syncMu.
func (l *Log) truncateSyncLocked(offset int64) error {
	l.mu.Lock()
	i, pos, err := l.truncatePointLocked(offset)
	if err != nil || i < 0 {
		l.mu.Unlock()
		return err
	}
	s := l.segs[i]
	removed := slices.Clone(l.segs[i+1:])
	l.busy++
	l.waitFillLocked(l.active)
	if r := l.round; r != nil {
		r.err = fmt.Errorf("%w: truncated to %d", ErrTruncated, offset)
		close(r.done)
		l.round = nil
	}
	l.gen.Add(1)
	l.segs = l.segs[:i+1]
	l.dirty = slices.DeleteFunc(l.dirty, func(d *segment) bool { return d.base >= s.base })
	l.next = offset
	s.publish(pos, offset, s.maxTs.Load())
	l.publishViewLocked()
	l.publishHWM(offset)
	l.mu.Unlock()

	ns, err := l.truncateFiles(s, removed, pos, offset)

	l.mu.Lock()
	l.busy--
	l.cond.Broadcast()
	if err != nil {
		l.failLocked(fmt.Errorf("truncate to %d: %w", offset, err))
		l.mu.Unlock()
		return err
	}
	l.segs[i] = ns
	l.active = ns
	l.publishViewLocked()
	l.mu.Unlock()
	for _, r := range append(removed, s) {
		l.releaseQuiet(r)
	}
	return nil
}

// truncatePointLocked checks offset and returns the index of the segment to
// cut and the byte position to cut it at; i is -1 when there is nothing to
// do. Caller must hold l.mu.
func (l *Log) truncatePointLocked(offset int64) (i int, pos int64, err error) {
	switch {
	case l.closing:
		return -1, 0, ErrClosed
	case l.failed != nil:
		return -1, 0, l.failed
	}
	hwm, start := l.hwm.Load(), l.start.Load()
	if offset < start || offset > hwm {
		return -1, 0, fmt.Errorf("%w: truncate to %d, log holds [%d, %d]", ErrOffsetOutOfRange, offset, start, hwm)
	}
	if offset == l.next {
		return -1, 0, nil
	}
	i = len(l.segs) - 1
	for i > 0 && l.segs[i].base > offset {
		i--
	}
	s := l.segs[i]
	if end := s.end.Load(); offset == s.next.Load() {
		return i, end, nil
	}
	p, h, err := s.locate(offset, s.end.Load(), l.cfg.MaxBatchBytes)
	if err != nil {
		return -1, 0, err
	}
	if h.BaseOffset != offset {
		return -1, 0, fmt.Errorf("%w: %d is inside the batch [%d, %d]", ErrNotBatchBoundary, offset, h.BaseOffset, h.LastOffset())
	}
	return i, p, nil
}

// truncateFiles deletes the removed segments, newest first, then cuts s at
// pos and reopens it as the active segment. At every step the files on disk
// form a log of contiguous segments, so a crash leaves a log that a repeated
// Truncate finishes.
func (l *Log) truncateFiles(s *segment, removed []*segment, pos, offset int64) (*segment, error) {
	for j := len(removed) - 1; j >= 0; j-- {
		if err := removeSegmentFiles(removed[j].stem); err != nil {
			return nil, err
		}
	}
	if len(removed) > 0 {
		if err := l.dirLock.Sync(); err != nil {
			return nil, err
		}
	}
	return l.reopenTruncated(s, pos, offset)
}

// reopenTruncated cuts the files of s after pos (offset being the base offset
// of the first batch dropped) and opens them as a new active segment value;
// readers still holding s keep its files and mappings.
func (l *Log) reopenTruncated(s *segment, pos, offset int64) (ns *segment, err error) {
	ns = newSegment(s.stem, s.base)
	defer func() {
		if err != nil {
			err = errors.Join(err, ns.closeFiles())
		}
	}()
	if ns.log, err = os.OpenFile(ns.logPath, os.O_RDWR, 0); err != nil {
		return ns, err
	}
	if err := ns.log.Truncate(pos); err != nil {
		return ns, err
	}
	if err := ns.log.Sync(); err != nil {
		return ns, err
	}
	if ns.idx, _, err = openIndex(ns.stem, true, l.cfg.MaxIndexBytes); err != nil {
		return ns, err
	}
	n := 0
	if offset > s.base {
		n = s.idx.lookupOffset(s.idx.count(), uint32(offset-s.base-1)) + 1
	}
	ns.idx.n.Store(int64(n))
	ns.idx.zeroTailFrom(n)
	ns.size, ns.wnext, ns.alloc = pos, offset, pos
	if err := l.rescanMaxTs(ns); err != nil {
		return ns, err
	}
	if pos > 0 {
		ns.firstAppend = l.now()
	}
	ns.publishWritten()
	return ns, nil
}

// rescanMaxTs sets the writer's max timestamp and index spacing of a cut
// segment from its last index entry and the headers after it.
func (l *Log) rescanMaxTs(s *segment) error {
	from := int64(0)
	if n := s.idx.count(); n > 0 {
		e := s.idx.entry(n - 1)
		from, s.wmaxTs = int64(e.pos), e.ts
	}
	s.sinceIndex = s.size - from
	r := newHdrReader(s.log, s.logPath)
	defer r.done()
	for pos := from; pos < s.size; {
		h, err := r.checkedHeader(pos, s.size, l.cfg.MaxBatchBytes)
		if err != nil {
			return err
		}
		s.wmaxTs = max(s.wmaxTs, h.MaxTimestamp)
		pos += int64(h.Size())
	}
	return nil
}

// SetRetention changes the retention limits used by EnforceRetention (0:
// no limit), for topic configs that change at run time.
func (l *Log) SetRetention(age time.Duration, bytes int64) {
	l.mu.Lock()
	l.retAge, l.retBytes = max(age, 0), max(bytes, 0)
	l.mu.Unlock()
}

// EnforceRetention deletes the oldest sealed segments whose newest record is
// older than the retention age, then the oldest sealed segments while the
// log is larger than the retention bytes. The active segment is never
// deleted. The start offset moves to the first remaining segment; readers
// already reading a deleted segment finish their read.
func (l *Log) EnforceRetention() (deletedSegments int, err error) {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.mu.Lock()
	if l.closing {
		l.mu.Unlock()
		return 0, ErrClosed
	}
	del := l.expiredLocked()
	if del == 0 {
		l.mu.Unlock()
		return 0, nil
	}
	removed := slices.Clone(l.segs[:del])
	l.segs = slices.Clone(l.segs[del:])
	l.dirty = slices.DeleteFunc(l.dirty, func(d *segment) bool { return d.base < l.segs[0].base })
	l.publishViewLocked()
	l.mu.Unlock()

	var errs []error
	for _, s := range removed {
		errs = append(errs, removeSegmentFiles(s.stem))
	}
	errs = append(errs, l.dirLock.Sync())
	for _, s := range removed {
		l.releaseQuiet(s)
	}
	if err := errors.Join(errs...); err != nil {
		return del, fmt.Errorf("delete segments: %w", err)
	}
	return del, nil
}

// expiredLocked returns how many of the oldest segments retention deletes.
// Only sealed segments whose every batch is readable qualify.
// Caller must hold l.mu.
func (l *Log) expiredLocked() int {
	sealed := len(l.segs) - 1
	for i := 0; i < sealed; i++ {
		if s := l.segs[i]; s.end.Load() != s.size {
			sealed = i // not yet published by the fsync round after its roll
		}
	}
	del := 0
	if l.retAge > 0 {
		cutoff := l.now().UnixMilli() - l.retAge.Milliseconds()
		for del < sealed && newest(l.segs[del]) < cutoff {
			del++
		}
	}
	if l.retBytes > 0 {
		var size int64
		for _, s := range l.segs[del:] {
			size += s.end.Load()
		}
		for del < sealed && size > l.retBytes {
			size -= l.segs[del].end.Load()
			del++
		}
	}
	return del
}

// newest returns the time in ms of the newest record of a sealed segment:
// its max timestamp, or its file's modification time when its batches carry
// none.
func newest(s *segment) int64 {
	if ts := s.maxTs.Load(); ts >= 0 {
		return ts
	}
	return s.mtime
}
