package raftlog

import (
	"errors"
	"fmt"
	"slices"

	"github.com/stratalog/strata/internal/fileutil"
)

// DeleteRange implements raft.LogStore: it deletes the entries min to max
// inclusive, which must be a head of the log (compaction: min at or below
// the first index), a tail (a follower dropping conflicting entries: max at
// or above the last index), or all of it. A range in the middle fails with
// ErrNonContiguous; a range that holds no stored entry does nothing. It
// returns once the deletion is durable.
func (s *Store) DeleteRange(min, max uint64) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.writableLocked(); err != nil {
		return err
	}
	first, last := s.first, s.last
	if first == 0 || min > max || max < first || min > last {
		return nil
	}
	switch {
	case min <= first && max >= last:
		return s.deleteAllLocked(last)
	case min <= first:
		return s.deleteHeadLocked(max + 1)
	case max >= last:
		return s.deleteTailLocked(min)
	default:
		return fmt.Errorf("%w: DeleteRange(%d, %d) inside the log [%d, %d]", ErrNonContiguous, min, max, first, last)
	}
}

// deleteHeadLocked makes newFirst the first index: the marker first, so that
// a crash at any point after it cannot bring the entries below back, then
// whole segments below it are removed. Caller must hold s.wmu.
func (s *Store) deleteHeadLocked(newFirst uint64) error {
	if err := s.writeHead(newFirst); err != nil {
		return s.fail(err)
	}
	s.mu.Lock()
	k := 0
	for k+1 < len(s.segs) && s.segs[k+1].base <= newFirst {
		k++
	}
	drop := s.segs[:k]
	s.segs = slices.Clone(s.segs[k:])
	s.first = newFirst
	s.mu.Unlock()
	// Readers that could see the dropped segments held mu.RLock, so they are
	// done with the files.
	return s.removeSegments(drop)
}

// deleteAllLocked deletes every entry up to last, the last index: the
// marker becomes last+1 and every segment goes. The next StoreLogs may start
// anywhere. Caller must hold s.wmu.
func (s *Store) deleteAllLocked(last uint64) error {
	if err := s.writeHead(last + 1); err != nil {
		return s.fail(err)
	}
	s.mu.Lock()
	drop := s.segs
	s.segs, s.first, s.last = nil, 0, 0
	s.mu.Unlock()
	return s.removeSegments(drop)
}

// deleteTailLocked deletes the entries from min to the last: whole segments
// from the last one backwards (a crash leaves a prefix of the log), then
// min's segment is cut at min's frame (ftruncate, which a crash either
// completes or not: never some of the dropped frames without the others,
// which recovery could take for corruption) and made durable, and
// allocated again to its full size when preallocating. Caller must hold
// s.wmu.
func (s *Store) deleteTailLocked(min uint64) error {
	s.mu.Lock()
	j := slices.IndexFunc(s.segs, func(seg *segment) bool { return seg.base > min }) // first segment after min's
	if j < 0 {
		j = len(s.segs)
	}
	seg := s.segs[j-1]
	var drop []*segment
	cut := int64(-1)
	if min == seg.base {
		drop = slices.Clone(s.segs[j-1:])
		s.segs = s.segs[:j-1]
	} else {
		drop = slices.Clone(s.segs[j:])
		s.segs = s.segs[:j]
		cut = int64(seg.offsets[min-seg.base])
		seg.offsets = seg.offsets[:min-seg.base]
		seg.end = cut
	}
	s.last = min - 1
	s.mu.Unlock()

	slices.Reverse(drop)
	for _, d := range drop {
		if err := s.removeSegments([]*segment{d}); err != nil {
			return s.fail(err)
		}
	}
	if cut < 0 {
		return nil
	}
	if err := s.cutSegment(seg, cut); err != nil {
		return s.fail(err)
	}
	return nil
}

// cutSegment cuts seg's file at pos durably, then (unless NoSync) allocates
// it to SegmentBytes again, so that later writes keep going into allocated
// space that reads as zeros. Caller must hold s.wmu.
func (s *Store) cutSegment(seg *segment, pos int64) error {
	if err := seg.f.Truncate(pos); err != nil {
		return fmt.Errorf("cut %s at %d: %w", seg.path, pos, err)
	}
	if s.cfg.NoSync {
		return nil
	}
	if err := seg.f.Sync(); err != nil {
		return err
	}
	if err := fallocate(seg.f, s.cfg.SegmentBytes); err != nil {
		if errors.Is(err, errors.ErrUnsupported) {
			return nil // the file grows as it is written
		}
		return err
	}
	return fileutil.Fdatasync(seg.f)
}

// removeSegments closes and removes the files of segs, in order, and
// fsyncs the directory. Caller must hold s.wmu; segs are no longer in s.segs.
func (s *Store) removeSegments(segs []*segment) error {
	if len(segs) == 0 {
		return nil
	}
	for _, seg := range segs {
		if err := s.removeSegment(seg); err != nil {
			return fmt.Errorf("raftlog: remove %s: %w", seg.path, err)
		}
	}
	if err := s.syncDir(); err != nil {
		return fmt.Errorf("raftlog: %w", err)
	}
	return nil
}
