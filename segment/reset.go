package segment

import (
	"errors"
	"fmt"
	"slices"
)

// Reset removes every segment and leaves an empty log that starts at
// offset (>= 0): afterwards StartOffset and HighWatermark are offset, and
// the next Append gets offset. Truncate cannot do this when offset is below
// the start offset: it is for a caller that must go back to a checkpoint
// that retention has already passed and that will append the batches from
// offset on again (a raft FSM restoring a snapshot). Under FsyncAlways,
// Appends still waiting for their fsync fail with ErrTruncated. The removals
// and the new segment are fsynced before Reset returns.
//
// The segments are removed newest first, so a crash leaves a prefix of the
// old log (a repeated Reset finishes the job), or, between the last removal
// and the creation of the new segment, an empty directory, which Open takes
// for an empty log at offset 0.
func (l *Log) Reset(offset int64) error {
	if offset < 0 {
		return fmt.Errorf("%w: reset to %d", ErrOffsetOutOfRange, offset)
	}
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.mu.Lock()
	switch {
	case l.closing:
		l.mu.Unlock()
		return ErrClosed
	case l.failed != nil:
		err := l.failed
		l.mu.Unlock()
		return err
	}
	old := slices.Clone(l.segs)
	l.busy++
	l.waitFillLocked(l.active)
	if r := l.round; r != nil {
		r.err = fmt.Errorf("%w: reset to %d", ErrTruncated, offset)
		close(r.done)
		l.round = nil
	}
	l.mu.Unlock()

	// Readers keep reading the old segments (their files stay open) until
	// the new view is published.
	ns, err := l.resetFiles(old, offset)

	l.mu.Lock()
	l.busy--
	l.cond.Broadcast()
	if err != nil {
		l.failLocked(fmt.Errorf("reset to %d: %w", offset, err))
		l.mu.Unlock()
		return err
	}
	l.gen.Add(1)
	l.segs, l.active, l.dirty, l.next = []*segment{ns}, ns, nil, offset
	l.publishViewLocked()
	l.publishHWM(offset)
	l.mu.Unlock()
	for _, s := range old {
		l.releaseQuiet(s)
	}
	return nil
}

// resetFiles removes the files of segs, newest first, then creates an empty
// active segment at offset and fsyncs the directory.
func (l *Log) resetFiles(segs []*segment, offset int64) (*segment, error) {
	for j := len(segs) - 1; j >= 0; j-- {
		if err := removeSegmentFiles(segs[j].stem); err != nil {
			return nil, err
		}
	}
	ns, err := l.createSegment(offset)
	if err != nil {
		return nil, err
	}
	if err := l.dirLock.Sync(); err != nil {
		return nil, errors.Join(err, ns.closeFiles())
	}
	ns.publishWritten()
	return ns, nil
}
