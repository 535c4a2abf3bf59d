package segment

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/stratalog/strata/internal/fileutil"
)

const (
	// verifyTries is how many of the last index entries of the active
	// segment recovery checks against the log before it rebuilds the index.
	verifyTries = 4
	// minTailWalk is the length of the tail walk of a sealed segment past its
	// last index entry beyond which the index counts as incomplete (with
	// 8 index intervals).
	minTailWalk = 64 << 10
)

// opener carries what opening segments needs.
type opener struct {
	dir     string
	cfg     *Config
	log     *slog.Logger
	now     func() time.Time
	created bool // some index file was created: the directory needs an fsync
}

func (o *opener) openLogFile(s *segment) (int64, error) {
	f, err := os.OpenFile(s.logPath, os.O_RDWR, 0)
	if err != nil {
		return 0, err
	}
	s.log = f
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	s.mtime = st.ModTime().UnixMilli()
	return st.Size(), nil
}

// openSealed opens a segment that has a successor. It is not scanned: its
// index is checked cheaply (sizes, well-formed and monotonic entries, last
// entry pointing at a batch with the right base offset) and the headers after
// the last entry are walked to find the next offset and max timestamp. An
// index that disagrees is rebuilt by a full scan. Corrupt log bytes found on
// the way are an error, never truncated.
func (o *opener) openSealed(base int64) (s *segment, err error) {
	s = newSegment(segmentStem(o.dir, base), base)
	defer func() {
		if err != nil {
			err = errors.Join(fmt.Errorf("open segment %d: %w", base, err), s.closeFiles())
		}
	}()
	size, err := o.openLogFile(s)
	if err != nil {
		return s, err
	}
	idx, created, err := openIndex(s.stem, false, o.cfg.MaxIndexBytes)
	s.idx = idx
	o.created = o.created || created
	if err != nil {
		return s, err
	}
	trimmed, ok := false, !created
	if ok {
		n := idx.validPrefix(idx.cap, size)
		trimmed = idx.sizesMatch(n)
		ok = trimmed || idx.zeroBeyond(n)
		idx.n.Store(int64(n))
	}
	var next, maxTs int64
	if ok {
		next, maxTs, ok = o.walkTail(s, size)
	}
	if !ok {
		o.log.Info("segment: rebuilding index of sealed segment", "file", s.logPath)
		if next, maxTs, err = o.rebuildSealed(s, size); err != nil {
			return s, err
		}
		trimmed = true
	}
	if !trimmed {
		if err := idx.trim(); err != nil {
			return s, err
		}
	}
	s.size, s.wnext, s.wmaxTs, s.alloc = size, next, maxTs, size
	s.publishWritten()
	s.sealed.Store(true)
	return s, nil
}

// walkTail walks the batch headers of a sealed segment from its last index
// entry to the end of the file. ok is false when they disagree with the
// index, or when the walk is so long that the index must be missing entries.
func (o *opener) walkTail(s *segment, size int64) (next, maxTs int64, ok bool) {
	r := newHdrReader(s.log, s.logPath)
	defer r.done()
	pos, expect, maxTs := int64(0), s.base, int64(-1)
	if n := s.idx.count(); n > 0 {
		e := s.idx.entry(n - 1)
		pos, expect, maxTs = int64(e.pos), s.base+int64(e.rel), e.ts
	}
	start := pos
	limit := max(minTailWalk, 8*int64(o.cfg.IndexIntervalBytes))
	for pos < size {
		h, err := r.checkedHeader(pos, size, o.cfg.MaxBatchBytes)
		if err != nil || h.BaseOffset != expect || pos-start >= limit {
			return 0, 0, false
		}
		if pos == start && start > 0 && h.MaxTimestamp > maxTs {
			return 0, 0, false // the entry's timestamp must cover its batch
		}
		maxTs = max(maxTs, h.MaxTimestamp)
		expect = h.NextOffset()
		pos += int64(h.Size())
	}
	return expect, maxTs, true
}

// rebuildSealed scans a whole sealed segment with full checks and rewrites
// its indexes. A sealed segment must scan cleanly to its last byte.
func (o *opener) rebuildSealed(s *segment, size int64) (next, maxTs int64, err error) {
	sc := newBatchScanner(s.log, s.logPath, size, 0, s.base, o.cfg.MaxBatchBytes)
	var entries []indexEntry
	var since int64
	maxTs = -1
	for {
		h, _, pos, err := sc.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if errors.Is(err, errZeroTail) {
			err = corruptf(s.logPath, pos, "zero bytes inside a sealed segment")
		}
		if err != nil {
			return 0, 0, err
		}
		maxTs = max(maxTs, h.MaxTimestamp)
		if since >= int64(o.cfg.IndexIntervalBytes) {
			entries = append(entries, indexEntry{rel: uint32(h.BaseOffset - s.base), pos: uint32(pos), ts: maxTs})
			since = 0
		}
		since += int64(h.Size())
	}
	if err := s.idx.rewrite(entries, false, o.cfg.MaxIndexBytes); err != nil {
		return 0, 0, fmt.Errorf("rewrite index of %s: %w", s.logPath, err)
	}
	return sc.expect, maxTs, nil
}

// openActive opens the last segment for appending and cuts off a torn tail.
//
// Index files cut to exactly their valid entries are what Close (and a roll)
// leaves, after fsyncing the log: every byte before the last entry was
// durable, so only the last entries are checked against the log (base
// offset, CRC) and the batches after the last good one verified. A crash
// leaves the files preallocated; then an entry may have reached the disk
// while earlier batches, written but not yet fsynced, did not, so the whole
// segment is verified. Either way the log is cut at the first batch that
// fails: a torn or corrupt tail, or the zeros of preallocated space.
func (o *opener) openActive(base int64) (s *segment, err error) {
	s = newSegment(segmentStem(o.dir, base), base)
	defer func() {
		if err != nil {
			err = errors.Join(fmt.Errorf("open segment %d: %w", base, err), s.closeFiles())
		}
	}()
	size, err := o.openLogFile(s)
	if err != nil {
		return s, err
	}
	idx, created, err := openIndex(s.stem, true, o.cfg.MaxIndexBytes)
	s.idx = idx
	o.created = o.created || created
	if err != nil {
		return s, err
	}
	valid := idx.validPrefix(idx.cap, size)
	clean := !created && idx.sizesMatch(valid)
	n := 0
	if clean {
		n = valid
	} else if size > 0 {
		o.log.Info("segment: active segment was not closed cleanly; verifying all of it", "file", s.logPath, "bytes", size)
	}
	pos, expect, since := int64(0), base, int64(0)
	for tries := 0; n > 0; tries++ {
		if tries == verifyTries {
			n = 0
			break
		}
		e := idx.entry(n - 1)
		if h, ok := o.verifyEntry(s, e, size); ok {
			pos, expect, since = int64(e.pos)+int64(h.Size()), h.NextOffset(), int64(h.Size())
			s.wmaxTs = e.ts
			break
		}
		n--
	}
	if clean && n < valid {
		o.log.Info("segment: index of active segment disagrees with its log; re-indexing the tail",
			"file", s.logPath, "entries_kept", n, "entries_dropped", valid-n)
	}
	idx.n.Store(int64(n))
	s.size, s.wnext, s.sinceIndex = pos, expect, since
	if err := o.scanTail(s, size); err != nil {
		return s, err
	}
	if !clean {
		// What a killed process wrote may be only in the page cache; it
		// becomes readable now, so it must be durable first.
		if err := fileutil.Fdatasync(s.log); err != nil {
			return s, err
		}
	}
	idx.zeroTailFrom(idx.count())
	s.alloc = s.size
	s.publishWritten()
	return s, o.setFirstAppend(s)
}

// verifyEntry reports whether index entry e points at a whole batch with the
// right base offset and CRC whose max timestamp the entry covers.
func (o *opener) verifyEntry(s *segment, e indexEntry, size int64) (BatchHeader, bool) {
	sc := newBatchScanner(s.log, s.logPath, size, int64(e.pos), s.base+int64(e.rel), o.cfg.MaxBatchBytes)
	h, _, _, err := sc.next()
	return h, err == nil && h.MaxTimestamp <= e.ts
}

// scanTail verifies the batches of the active segment s from s.size on,
// indexing them, and cuts the file after the last good one.
func (o *opener) scanTail(s *segment, size int64) error {
	sc := newBatchScanner(s.log, s.logPath, size, s.size, s.wnext, o.cfg.MaxBatchBytes)
	var err error
	for {
		var h BatchHeader
		var pos int64
		h, _, pos, err = sc.next()
		if err != nil {
			break
		}
		s.wmaxTs = max(s.wmaxTs, h.MaxTimestamp)
		if s.sinceIndex >= int64(o.cfg.IndexIntervalBytes) && !s.idx.full() {
			s.idx.appendLocked(indexEntry{rel: uint32(h.BaseOffset - s.base), pos: uint32(pos), ts: s.wmaxTs})
			s.sinceIndex = 0
		}
		s.sinceIndex += int64(h.Size())
		s.size, s.wnext = sc.pos, sc.expect
	}
	if errors.Is(err, io.EOF) {
		return nil
	}
	var ce *CorruptError
	if !errors.Is(err, errZeroTail) && !errors.As(err, &ce) {
		return err // an I/O error, not a verdict on the bytes
	}
	if s.wnext < o.cfg.DurableOffset {
		// The caller's checkpoint says this batch was durable: bit rot or
		// a lost write, not a torn tail. Cutting would hide it.
		if ce == nil {
			return corruptf(s.logPath, s.size, "zeros where batch %d should be, below the durable offset %d", s.wnext, o.cfg.DurableOffset)
		}
		return corruptf(s.logPath, ce.Pos, "%s (batch %d, below the durable offset %d)", ce.Reason, s.wnext, o.cfg.DurableOffset)
	}
	if errors.Is(err, errZeroTail) {
		o.log.Info("segment: zero-filled tail is the end of data", "file", s.logPath,
			"pos", s.size, "zero_bytes", size-s.size)
	} else {
		o.log.Warn("segment: dropped torn or corrupt tail", "file", s.logPath, "pos", s.size,
			"dropped_bytes", size-s.size, "dropped_batches", countPlausible(s.log, s.size, size, o.cfg.MaxBatchBytes),
			"reason", ce.Reason)
	}
	if err := s.log.Truncate(s.size); err != nil {
		return err
	}
	return s.log.Sync()
}

// setFirstAppend sets the age of a recovered active segment from the max
// timestamp of its first batch, bounded by now (a restart must not reset the
// age of a segment, and a bogus timestamp must not roll it more than once).
func (o *opener) setFirstAppend(s *segment) error {
	if s.size == 0 {
		return nil
	}
	now := o.now()
	s.firstAppend = now
	r := newHdrReader(s.log, s.logPath)
	defer r.done()
	b, err := r.header(0, s.size)
	if err != nil {
		return err
	}
	if ts := parseHeader(b).MaxTimestamp; ts >= 0 && ts < now.UnixMilli() {
		s.firstAppend = time.UnixMilli(ts)
	}
	return nil
}
