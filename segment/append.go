package segment

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/stratalog/strata/internal/fileutil"
)

// syncRound is one group commit: the appenders whose batches the next fsync
// round covers wait on done and then read err.
type syncRound struct {
	done chan struct{}
	err  error
}

// dirtySnap is what a fsync round publishes for one segment: its written
// state when the round started.
type dirtySnap struct {
	s                *segment
	end, next, maxTs int64
}

// Append validates batch (CheckBatch with Config.MaxBatchBytes), assigns it
// the next offsets and writes it at the end of the log. It writes the
// assigned base offset into batch[0:8]: the caller's slice is modified, the
// CRC is not affected. An invalid batch returns ErrInvalidBatch or
// ErrBatchTooLarge with nothing written and batch untouched.
//
// Under FsyncAlways Append returns once the batch is fsynced, sharing the
// fsync with concurrent Appends. Under the other policies it returns once the
// batch is written.
func (l *Log) Append(batch []byte) (baseOffset int64, err error) {
	h, err := checkBatch(batch, l.cfg.MaxBatchBytes)
	if err != nil {
		return -1, err
	}
	l.mu.Lock()
	s, err := l.writableLocked(int64(len(batch)), h)
	if err != nil {
		l.mu.Unlock()
		return -1, err
	}
	base := l.next
	binary.BigEndian.PutUint64(batch[offBaseOffset:], uint64(base))
	cutErr, err := s.appendLocked(batch, h, base, l.cfg.IndexIntervalBytes, l.now())
	if err != nil {
		if cutErr != nil {
			l.failLocked(fmt.Errorf("cut failed write of %s: %w", s.logPath, cutErr))
		}
		l.mu.Unlock()
		return -1, err
	}
	l.next = s.wnext
	if l.needFillLocked(s) {
		select {
		case l.fillKick <- struct{}{}:
		default:
		}
	}
	if !s.dirty {
		s.dirty = true
		l.dirty = append(l.dirty, s)
	}
	if l.cfg.Fsync != FsyncAlways {
		s.publishWritten()
		l.publishHWM(l.next)
		l.mu.Unlock()
		return base, nil
	}
	r := l.round
	if r == nil {
		r = &syncRound{done: make(chan struct{})}
		l.round = r
	}
	l.mu.Unlock()
	select {
	case l.kick <- struct{}{}:
	default: // the syncer is already due to run a round, which will see this batch
	}
	<-r.done
	if r.err != nil {
		return -1, r.err
	}
	return base, nil
}

// writableLocked returns the segment to write a batch of n bytes to, rolling
// the active segment when it is full or old. Caller must hold l.mu.
func (l *Log) writableLocked(n int64, h BatchHeader) (*segment, error) {
	for {
		switch {
		case l.closing:
			return nil, ErrClosed
		case l.failed != nil:
			return nil, l.failed
		case l.busy > 0:
			l.cond.Wait()
			continue
		case l.next > math.MaxInt64-int64(h.LastOffsetDelta)-1:
			return nil, fmt.Errorf("%w: offsets exhausted at %d", ErrOffsetOutOfRange, l.next)
		}
		s := l.active
		if s.filling && s.size+n > s.fillFrom {
			l.fillWaits++
			l.cond.Wait() // the zero-fill ahead has not finished
			continue
		}
		if !l.needRollLocked(s, n, h) {
			return s, nil
		}
		if err := l.rollLocked(s); err != nil {
			return nil, err
		}
	}
}

// needRollLocked reports whether a batch of n bytes must go to a new
// segment. Caller must hold l.mu.
func (l *Log) needRollLocked(s *segment, n int64, h BatchHeader) bool {
	if s.size == 0 {
		return false
	}
	return s.size+n > l.cfg.MaxSegmentBytes ||
		s.idx.full() ||
		l.next+int64(h.LastOffsetDelta)-s.base > math.MaxUint32 ||
		(l.cfg.MaxSegmentAge > 0 && l.now().Sub(s.firstAppend) >= l.cfg.MaxSegmentAge)
}

// rollLocked seals the active segment old and starts a new one. The fsyncs
// happen with l.mu released; appenders wait meanwhile (l.busy). The new
// segment's files are created only once old is durable and its indexes are
// trimmed, so a segment that has a successor on disk is always complete.
// Caller must hold l.mu; it is held again on return.
func (l *Log) rollLocked(old *segment) error {
	l.busy++
	l.mu.Unlock()
	l.syncMu.Lock()
	l.mu.Lock()
	defer func() {
		l.busy--
		l.cond.Broadcast()
		l.syncMu.Unlock()
	}()
	if l.closing || l.failed != nil || l.active != old {
		return nil // the caller looks again
	}
	l.waitFillLocked(old)
	next := l.next
	l.mu.Unlock()
	err := old.seal()
	var ns *segment
	if err == nil {
		ns, err = l.createSegment(next)
	}
	if err == nil {
		err = l.dirLock.Sync()
	}
	now := l.now()
	l.mu.Lock()
	if err != nil {
		if ns != nil {
			err = errors.Join(err, ns.release(), removeSegmentFiles(ns.stem))
		}
		l.failLocked(fmt.Errorf("roll segment at offset %d: %w", next, err))
		return l.failed
	}
	old.sealed.Store(true)
	old.mtime = now.UnixMilli()
	l.segs = append(l.segs, ns)
	l.active = ns
	l.publishViewLocked()
	return nil
}

// syncLoop runs the group commit under FsyncAlways: each round fsyncs what
// has been written and releases every appender it covers; appenders that
// arrive during the fsync are covered by the next round.
func (l *Log) syncLoop() {
	defer l.wg.Done()
	for {
		select {
		case <-l.kick:
		case <-l.stop:
			l.syncMu.Lock()
			_ = l.syncRoundLocked()
			l.syncMu.Unlock()
			return
		}
		l.syncMu.Lock()
		_ = l.syncRoundLocked()
		l.syncMu.Unlock()
	}
}

// intervalLoop fsyncs every Config.FsyncInterval under FsyncInterval.
func (l *Log) intervalLoop() {
	defer l.wg.Done()
	t := time.NewTicker(l.cfg.FsyncInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			l.syncMu.Lock()
			_ = l.syncRoundLocked()
			l.syncMu.Unlock()
		case <-l.stop:
			return
		}
	}
}

// Sync fsyncs everything written so far. Under FsyncAlways it also commits
// pending appends.
func (l *Log) Sync() error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	if l.closed.Load() {
		return ErrClosed
	}
	return l.syncRoundLocked()
}

// syncRoundLocked fsyncs every segment written since the last round and,
// under FsyncAlways, publishes what it covered and completes the waiting
// appenders. A failed fsync fails the log: after fsync reports an error the
// page cache can no longer be trusted to hold what was written.
// Caller must hold l.syncMu.
func (l *Log) syncRoundLocked() error {
	l.mu.Lock()
	r := l.round
	l.round = nil
	snaps := l.scratch[:0]
	for _, s := range l.dirty {
		snaps = append(snaps, dirtySnap{s: s, end: s.size, next: s.wnext, maxTs: s.wmaxTs})
		s.dirty = false
	}
	clear(l.dirty)
	l.dirty = l.dirty[:0]
	next, err := l.next, l.failed
	l.mu.Unlock()

	for i := 0; err == nil && i < len(snaps); i++ {
		err = fileutil.Fdatasync(snaps[i].s.log)
	}
	if len(snaps) > 0 {
		l.fsyncs.Add(1)
	}
	if err != nil {
		l.mu.Lock()
		l.failLocked(err)
		err = l.failed
		l.mu.Unlock()
	} else if l.cfg.Fsync == FsyncAlways {
		for _, d := range snaps {
			d.s.publish(d.end, d.next, d.maxTs)
		}
		if next > l.hwm.Load() {
			l.publishHWM(next)
		}
	}
	clear(snaps)
	l.scratch = snaps
	if r != nil {
		r.err = err
		close(r.done)
	}
	return err
}
