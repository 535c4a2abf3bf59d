package raftlog

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/hashicorp/raft"

	"github.com/stratalog/strata/internal/fileutil"
)

// flushBytes is how much encoded data StoreLogs buffers before it writes.
// Larger batches are written in several writes before their one fsync.
const flushBytes = 1 << 20

// pending is what one StoreLogs call adds to one segment, published once the
// data is durable.
type pending struct {
	seg     *segment
	offsets []uint32
	end     int64 // end of the data written so far
	written bool  // data written since the last fsync
	isNew   bool  // created by this call
}

// StoreLog implements raft.LogStore.
func (s *Store) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

// StoreLogs implements raft.LogStore: it appends logs, which must follow the
// last stored index one by one (on an empty store they may start anywhere),
// and returns once they are durable, after one fdatasync (more only when the
// batch fills a segment). It fails with ErrNonContiguous, ErrEntryTooLarge,
// and, after any write or fsync error, ErrFailed until the store is reopened.
func (s *Store) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.writableLocked(); err != nil {
		return err
	}
	if err := s.checkBatchLocked(logs); err != nil {
		return err
	}
	if s.last == 0 && logs[0].Index < s.head {
		// raft starts again below the marker of a log it deleted whole.
		if err := s.writeHead(logs[0].Index); err != nil {
			return s.fail(err)
		}
	}
	var cur *pending
	var touched []*pending
	if n := len(s.segs); n > 0 {
		cur = &pending{seg: s.segs[n-1], end: s.segs[n-1].end}
		touched = append(touched, cur)
	}
	buf := s.buf[:0]
	for i, l := range logs {
		size := int64(entrySize(l))
		// An SRAFTLG1 segment (no salt) is never appended to: its sync
		// points could be forged (see doc.go).
		if cur == nil || cur.seg.salt == 0 || cur.end+int64(len(buf))+size > s.cfg.SegmentBytes {
			if err := s.flush(cur, &buf, true); err != nil {
				return s.fail(err)
			}
			seg, err := s.roll(l.Index)
			if err != nil {
				return s.fail(err)
			}
			cur = &pending{seg: seg, end: segHeaderSize, isNew: true}
			touched = append(touched, cur)
		}
		cur.offsets = append(cur.offsets, uint32(cur.end+int64(len(buf))))
		// The first entry is a sync point: everything before it is durable
		// (the previous call's fdatasync returned, or recovery's).
		buf = appendEntry(buf, l, i == 0, cur.seg.salt)
		if len(buf) >= flushBytes {
			if err := s.flush(cur, &buf, false); err != nil {
				return s.fail(err)
			}
		}
	}
	if err := s.flush(cur, &buf, true); err != nil {
		return s.fail(err)
	}
	if cap(buf) <= 2*flushBytes {
		s.buf = buf[:0]
	} else {
		s.buf = nil
	}

	s.mu.Lock()
	for _, p := range touched {
		p.seg.offsets = append(p.seg.offsets, p.offsets...)
		p.seg.end = p.end
		if p.isNew {
			s.segs = append(s.segs, p.seg)
		}
	}
	if s.last == 0 {
		s.first = logs[0].Index
	}
	s.last = logs[len(logs)-1].Index
	s.mu.Unlock()
	s.askSpareLocked()
	return nil
}

// askSpareLocked has the next segment prepared once the last one is half
// full, or when there is none. Caller must hold s.wmu.
func (s *Store) askSpareLocked() {
	if s.spare == nil {
		return
	}
	if n := len(s.segs); n == 0 || s.segs[n-1].end >= s.cfg.SegmentBytes/2 {
		s.spare.ask()
	}
}

// checkBatchLocked checks that logs follow the last index and fit.
// Caller must hold s.wmu.
func (s *Store) checkBatchLocked(logs []*raft.Log) error {
	next := logs[0].Index
	if s.last != 0 && next != s.last+1 {
		return fmt.Errorf("%w: entry %d after last index %d", ErrNonContiguous, next, s.last)
	}
	if next == 0 {
		return fmt.Errorf("%w: entry index 0", ErrNonContiguous)
	}
	for _, l := range logs {
		if l.Index != next {
			return fmt.Errorf("%w: entry %d where %d should be", ErrNonContiguous, l.Index, next)
		}
		next++
		if l.Type&syncPoint != 0 {
			return fmt.Errorf("%w: entry %d has log type %d", ErrInvalidEntry, l.Index, l.Type)
		}
		if n := entrySize(l) - frameHeader; n > s.cfg.MaxEntryBytes {
			return fmt.Errorf("%w: entry %d encodes to %d bytes, more than %d", ErrEntryTooLarge, l.Index, n, s.cfg.MaxEntryBytes)
		}
	}
	return nil
}

// flush writes buf at the end of p's data, and with sync fdatasyncs p's file
// if anything was written to it since its last fsync. Caller must hold s.wmu.
func (s *Store) flush(p *pending, buf *[]byte, sync bool) error {
	if p == nil {
		return nil
	}
	if len(*buf) > 0 {
		if _, err := p.seg.f.WriteAt(*buf, p.end); err != nil {
			return fmt.Errorf("write %s at %d: %w", p.seg.path, p.end, err)
		}
		p.end += int64(len(*buf))
		p.written = true
		*buf = (*buf)[:0]
	}
	if sync && p.written && !s.cfg.NoSync {
		if err := fileutil.Fdatasync(p.seg.f); err != nil {
			return err
		}
		p.written = false
	}
	return nil
}

// roll creates the segment whose first entry is base: the spare, renamed,
// when preallocating. The previous segment must be durable first, so that a
// crash never leaves a sealed segment with a torn tail. Caller must hold
// s.wmu.
func (s *Store) roll(base uint64) (*segment, error) {
	path := filepath.Join(s.dir, segName(base))
	salt := newSalt() // a spare gets its salt here, when it becomes a segment
	var f *os.File
	if s.spare != nil {
		f = s.spare.take()
	}
	var err error
	if f != nil {
		if _, err = f.WriteAt(segHeader(base, salt), 0); err == nil {
			err = os.Rename(s.spare.path, path)
		}
	} else {
		f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o640)
		if err == nil {
			_, err = f.WriteAt(segHeader(base, salt), 0)
		}
	}
	if err == nil {
		err = s.syncDir()
	}
	if err != nil {
		if f != nil {
			_ = f.Close()
		}
		return nil, fmt.Errorf("create segment %s: %w", path, err)
	}
	return &segment{base: base, salt: salt, path: path, f: f, end: segHeaderSize}, nil
}
