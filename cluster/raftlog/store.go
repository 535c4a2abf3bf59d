package raftlog

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"sync"

	"github.com/hashicorp/raft"
)

// segment is one segment file.
type segment struct {
	base    uint64   // index of its first entry, as in its name and header
	salt    uint32   // seeds its frames' CRCs; 0: an SRAFTLG1 segment, never written to
	path    string   // file path
	f       *os.File // open read-write for the store's lifetime
	offsets []uint32 // offsets[i] is the position of entry base+i
	end     int64    // end of the data: where the next entry goes
}

// Store is a raft.LogStore of segment files; see the package documentation.
// It is safe for concurrent use: raft calls StoreLogs from its main loop and
// DeleteRange from its snapshot goroutine, and GetLog from anywhere.
//
// Lock order: wmu, then mu. wmu serialises the writers (StoreLogs,
// DeleteRange, Close) and is held across their writes and fsyncs by design;
// readers never take it. mu guards what readers see and is never held across
// a write or an fsync: writers publish under it after the fsync.
type Store struct {
	dir  string
	cfg  Config
	log  *slog.Logger
	dirf *os.File // the directory: fsynced after renames and removals; flocked

	wmu    sync.Mutex
	buf    []byte // encoding buffer; guarded by wmu
	failed error  // first write or fsync error; guarded by wmu
	head   uint64 // the durable first-index marker (0: none); guarded by wmu
	spare  *spare // zero-filled next segment; nil under NoSync

	recoverRead int64 // bytes Open read to recover the segments

	// Fields below are read under mu (or wmu) and changed with both held.
	mu       sync.RWMutex
	segs     []*segment // ascending base
	first    uint64     // first index; 0 when the store is empty
	last     uint64     // last index; 0 when the store is empty
	closed   bool
	closeErr error
}

var (
	_ raft.LogStore          = (*Store)(nil)
	_ raft.MonotonicLogStore = (*Store)(nil)
	_ io.Closer              = (*Store)(nil)
)

// Open opens the store in dir, creating dir if missing, and recovers it:
// see the package documentation for what is checked, truncated and removed.
// The directory is locked until Close.
func Open(dir string, cfg Config) (_ *Store, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("raftlog: open %s: %w", dir, err)
	}
	dirf, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("raftlog: open %s: %w", dir, err)
	}
	if err := lockFile(dirf); err != nil {
		_ = dirf.Close()
		return nil, fmt.Errorf("raftlog: lock %s: %w", dir, err)
	}
	s := &Store{dir: dir, cfg: cfg, log: logger.With("dir", dir), dirf: dirf}
	defer func() {
		if err != nil {
			_ = s.Close()
		}
	}()
	if err := s.recover(); err != nil {
		return nil, fmt.Errorf("raftlog: open %s: %w", dir, err)
	}
	if !cfg.NoSync {
		s.spare = startSpare(s)
		s.askSpareLocked() // no writer can run yet
	}
	return s, nil
}

// IsMonotonic implements raft.MonotonicLogStore: StoreLogs takes only
// entries that follow the last one (or any start on an empty store), so raft
// deletes the whole log after restoring a snapshot instead of leaving a gap.
func (s *Store) IsMonotonic() bool { return true }

// FirstIndex implements raft.LogStore. It returns 0 for an empty store.
func (s *Store) FirstIndex() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, ErrClosed
	}
	return s.first, nil
}

// LastIndex implements raft.LogStore. It returns 0 for an empty store.
func (s *Store) LastIndex() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, ErrClosed
	}
	return s.last, nil
}

// GetLog implements raft.LogStore: it reads entry index into l, or returns
// raft.ErrLogNotFound. l's Data and Extensions are fresh memory that raft may
// keep. A stored entry that fails its CRC32C is a *CorruptError.
func (s *Store) GetLog(index uint64, l *raft.Log) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	if s.first == 0 || index < s.first || index > s.last {
		return raft.ErrLogNotFound
	}
	seg := s.segmentLocked(index)
	i := index - seg.base
	pos, end := int64(seg.offsets[i]), seg.end
	if i+1 < uint64(len(seg.offsets)) {
		end = int64(seg.offsets[i+1])
	}
	// The read runs under the read lock: a head compaction closes the files
	// it drops only once it has had the write lock.
	b := make([]byte, end-pos)
	if _, err := seg.f.ReadAt(b, pos); err != nil {
		return fmt.Errorf("raftlog: read entry %d from %s at %d: %w", index, seg.path, pos, err)
	}
	n, err := decodeEntry(b, s.cfg.MaxEntryBytes, seg.salt, l)
	if err == nil && (n != len(b) || l.Index != index) {
		err = fmt.Errorf("entry %d found where %d should be", l.Index, index)
	}
	if err != nil {
		*l = raft.Log{}
		return &CorruptError{File: seg.path, Pos: pos, Reason: err.Error()}
	}
	return nil
}

// segmentLocked returns the segment holding index, which must be stored.
// Caller must hold s.mu (or s.wmu).
func (s *Store) segmentLocked(index uint64) *segment {
	j := sort.Search(len(s.segs), func(j int) bool { return s.segs[j].base > index })
	return s.segs[j-1]
}

// Close releases the files and the directory lock, and stops the
// preallocation goroutine. It is idempotent; later calls return the first
// call's result. Raft must have stopped using the store.
func (s *Store) Close() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return s.closeErr
	}
	s.closed = true
	segs := s.segs
	s.segs, s.first, s.last = nil, 0, 0
	s.mu.Unlock()

	var errs []error
	if s.spare != nil {
		errs = append(errs, s.spare.close())
	}
	for _, seg := range segs {
		if err := seg.f.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := s.dirf.Close(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		s.closeErr = fmt.Errorf("raftlog: close %s: %w", s.dir, err)
	}
	return s.closeErr
}

// writableLocked returns why the store takes no writes, if it does not.
// Caller must hold s.wmu.
func (s *Store) writableLocked() error {
	if s.closed {
		return ErrClosed
	}
	return s.failed
}

// fail records the first write error: after a failed write or fsync, what
// the files hold is unknown until recovery reads them again.
// Caller must hold s.wmu.
func (s *Store) fail(err error) error {
	if s.failed == nil {
		s.failed = fmt.Errorf("%w: %w", ErrFailed, err)
		s.log.Error("raftlog: write failed; the store takes no more writes until reopened", "err", err)
	}
	return fmt.Errorf("raftlog: %w", err)
}

// syncDir fsyncs the directory, making creations, renames and removals in it
// durable.
func (s *Store) syncDir() error {
	if s.cfg.NoSync {
		return nil
	}
	if err := s.dirf.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", s.dir, err)
	}
	return nil
}
