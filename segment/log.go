package segment

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stratalog/strata/internal/fileutil"
)

// Log is the on-disk log of one partition: an ordered list of segments, the
// last of which (the active segment) takes appends. All methods are safe for
// concurrent use.
//
// Lock order: syncMu, then mu. mu guards the writer state and is never held
// across an fsync. syncMu serialises fsync rounds, rolls, Truncate, Reset,
// EnforceRetention and Close. Readers (Read, ReadAppend, OffsetForTime,
// Wait, Segments, ...) take neither: they load the published view, high
// watermark and per-segment state atomically and hold a reference to the
// segment they read.
type Log struct {
	dir     string
	cfg     Config
	log     *slog.Logger
	now     func() time.Time
	dirLock *os.File // flocked; also used to fsync the directory

	syncMu  sync.Mutex
	scratch []dirtySnap // guarded by syncMu

	mu        sync.Mutex
	cond      *sync.Cond // on mu: a roll or Truncate finished
	busy      int        // rolls and Truncates in progress with mu released; appenders wait
	fillWaits int        // times an appender waited for a zero-fill (prealloc.go)
	closing   bool
	failed    error      // sticky: a failed fsync or write leaves the log read-only
	segs      []*segment // oldest first; the last is active
	active    *segment
	next      int64      // offset the next batch gets
	dirty     []*segment // written since the last fsync round
	round     *syncRound // appenders waiting for the next fsync (FsyncAlways)
	retAge    time.Duration
	retBytes  int64

	// Published for readers.
	view     atomic.Pointer[[]*segment]
	hwm      atomic.Int64
	start    atomic.Int64
	gen      atomic.Uint64 // bumped by Truncate: a reader that raced one retries
	closed   atomic.Bool
	notify   atomic.Pointer[chan struct{}] // closed and replaced when hwm moves and waiters > 0
	waiters  atomic.Int32
	closedCh chan struct{}

	fsyncs    atomic.Int64  // fsync rounds that synced something (tests and stats)
	kick      chan struct{} // wakes the syncer
	fillKick  chan struct{} // wakes the zero-filler
	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// SegmentInfo describes one segment, as far as readers can see it.
type SegmentInfo struct {
	BaseOffset   int64 // offset of its first batch, also its name
	NextOffset   int64 // offset after its last readable batch
	Size         int64 // readable bytes of its .log
	MaxTimestamp int64 // largest batch max timestamp (ms), -1 if none
	Sealed       bool  // it will take no more appends (unless a Truncate reaches into it)
}

// Open opens the log in dir, creating dir if missing, and recovers it (see
// doc.go): sealed segments are checked cheaply, the active segment's tail is
// verified batch by batch and a torn tail is cut off. The directory is locked
// until Close.
func Open(dir string, cfg Config) (*Log, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	l := &Log{dir: dir, cfg: cfg, log: cfg.Logger, now: cfg.Now, retAge: cfg.RetentionAge, retBytes: cfg.RetentionBytes}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	if l.now == nil {
		l.now = time.Now
	}
	if err := makeDir(dir); err != nil {
		return nil, err
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	l.dirLock = lock
	if err := l.load(); err != nil {
		return nil, errors.Join(fmt.Errorf("open log %s: %w", dir, err), lock.Close())
	}
	l.cond = sync.NewCond(&l.mu)
	ch := make(chan struct{})
	l.notify.Store(&ch)
	l.closedCh = make(chan struct{})
	l.kick = make(chan struct{}, 1)
	l.fillKick = make(chan struct{}, 1)
	l.stop = make(chan struct{})
	l.next = l.active.wnext
	l.publishViewLocked()
	l.hwm.Store(l.next)
	switch cfg.Fsync {
	case FsyncAlways:
		l.wg.Add(2)
		go l.syncLoop()
		go l.fillLoop()
	case FsyncInterval:
		l.wg.Add(1)
		go l.intervalLoop()
	}
	return l, nil
}

func makeDir(dir string) error {
	if _, err := os.Stat(dir); err == nil || !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return fileutil.SyncDir(filepath.Dir(filepath.Clean(dir)))
}

// load opens every segment of the directory.
func (l *Log) load() (err error) {
	ls, err := listDir(l.dir)
	if err != nil {
		return err
	}
	if len(ls.orphans) > 0 {
		return corruptf(segmentStem(l.dir, ls.orphans[0])+indexSuffix, 0, "index files without a .log")
	}
	changed := len(ls.deleted) > 0
	for _, b := range ls.deleted {
		l.log.Info("segment: finishing interrupted deletion", "segment", segmentStem(l.dir, b))
		if err := finishRemove(segmentStem(l.dir, b)); err != nil {
			return err
		}
	}
	defer func() {
		if err != nil {
			for _, s := range l.segs {
				err = errors.Join(err, s.release())
			}
			l.segs = nil
		}
	}()
	o := &opener{dir: l.dir, cfg: &l.cfg, log: l.log, now: l.now}
	for i, b := range ls.bases {
		var s *segment
		if i < len(ls.bases)-1 {
			s, err = o.openSealed(b)
		} else {
			s, err = o.openActive(b)
		}
		if err != nil {
			return err
		}
		if i > 0 && l.segs[i-1].wnext != b {
			err = corruptf(s.logPath, 0, "segment starts at offset %d, the one before ends at %d", b, l.segs[i-1].wnext)
			return errors.Join(err, s.release())
		}
		l.segs = append(l.segs, s)
	}
	if len(l.segs) == 0 {
		s, err := l.createSegment(0)
		if err != nil {
			return err
		}
		l.segs, changed = []*segment{s}, true
	}
	l.active = l.segs[len(l.segs)-1]
	if changed || o.created {
		return l.dirLock.Sync()
	}
	return nil
}

// createSegment creates the files of an empty active segment. The caller
// fsyncs the directory.
func (l *Log) createSegment(base int64) (s *segment, err error) {
	s = newSegment(segmentStem(l.dir, base), base)
	if s.log, err = os.OpenFile(s.logPath, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644); err != nil {
		return nil, err
	}
	if s.idx, _, err = openIndex(s.stem, true, l.cfg.MaxIndexBytes); err != nil {
		return nil, errors.Join(err, s.closeFiles(), removeSegmentFiles(s.stem))
	}
	return s, nil
}

// publishViewLocked publishes l.segs to readers. Caller must hold l.mu.
func (l *Log) publishViewLocked() {
	v := slices.Clone(l.segs)
	l.view.Store(&v)
	if len(v) > 0 {
		l.start.Store(v[0].base)
	}
}

// publishHWM moves the high watermark and wakes waiters.
func (l *Log) publishHWM(v int64) {
	l.hwm.Store(v)
	if l.waiters.Load() > 0 {
		ch := make(chan struct{})
		close(*l.notify.Swap(&ch))
	}
}

// failLocked makes err the sticky error of the log. Caller must hold l.mu.
func (l *Log) failLocked(err error) {
	if l.failed == nil {
		l.failed = err
		l.log.Error("segment: log failed; appends refused until reopened", "dir", l.dir, "err", err)
	}
}

// Close fsyncs everything written, trims the indexes of the active segment,
// stops the background goroutines, and closes every file (the files of a
// segment a reader still holds close when it is done). Appends waiting for
// an fsync are completed first. Close is idempotent: later calls return nil.
func (l *Log) Close() error {
	var err error
	l.closeOnce.Do(func() { err = l.close() })
	return err
}

func (l *Log) close() error {
	l.mu.Lock()
	l.closing = true
	l.closed.Store(true)
	l.cond.Broadcast()
	l.mu.Unlock()
	close(l.closedCh)
	close(l.stop)
	l.wg.Wait()

	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	syncErr := l.syncRoundLocked()
	errs := []error{syncErr}
	l.mu.Lock()
	segs, active := l.segs, l.active
	l.segs, l.dirty = nil, nil
	l.view.Store(&[]*segment{})
	l.mu.Unlock()
	// Nothing writes any more: cut the zero-filled space and the
	// preallocated indexes, which marks the segment closed cleanly (see
	// openActive) and so must not happen unless everything is durable.
	if syncErr == nil {
		_, err := active.cutToSize()
		errs = append(errs, err, active.idx.trim())
	}
	for _, s := range segs {
		errs = append(errs, s.release())
	}
	errs = append(errs, l.dirLock.Close())
	return errors.Join(errs...)
}

// Dir returns the directory of the log.
func (l *Log) Dir() string { return l.dir }

// StartOffset returns the first offset that can be read.
func (l *Log) StartOffset() int64 { return l.start.Load() }

// HighWatermark returns the offset after the last readable batch: the next
// offset to be assigned once pending appends are committed. Under
// FsyncAlways only fsynced batches are readable.
func (l *Log) HighWatermark() int64 { return l.hwm.Load() }

// Size returns the readable bytes of all segments.
func (l *Log) Size() int64 {
	var n int64
	for _, s := range *l.view.Load() {
		n += s.end.Load()
	}
	return n
}

// Segments describes the segments, oldest first. The last one is active.
func (l *Log) Segments() []SegmentInfo {
	view := *l.view.Load()
	out := make([]SegmentInfo, len(view))
	for i, s := range view {
		out[i] = SegmentInfo{BaseOffset: s.base, Size: s.end.Load(), NextOffset: s.next.Load(),
			MaxTimestamp: s.maxTs.Load(), Sealed: s.sealed.Load()}
	}
	return out
}
