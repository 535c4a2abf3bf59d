package segment

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stratalog/strata/internal/fileutil"
)

// segment is one .log file and its two indexes.
//
// A segment value is shared by the Log and by readers, which take a
// reference (acquire/release) and read without locks: its published state
// (end, next, maxTs) says how much of it they may see. The last release
// closes the files, so a segment removed by retention or truncation stays
// readable to whoever still holds it, and its mappings are never unmapped
// under a reader.
type segment struct {
	base    int64
	stem    string // path of the files without suffix
	logPath string
	log     *os.File
	idx     *index
	refs    atomic.Int32 // the Log's list holds one; 0: closed

	// Published state. Writers store maxTs, next, then end, and all of them
	// before the Log's high watermark moves past them.
	end    atomic.Int64 // readable bytes
	next   atomic.Int64 // offset after the last readable batch
	maxTs  atomic.Int64 // largest max timestamp of readable batches, -1 if none
	sealed atomic.Bool

	// mtime is the modification time in ms of a sealed segment, the age used
	// by retention when its batches carry no timestamp. Guarded by Log.mu.
	mtime int64

	// Writer state, guarded by Log.mu.
	size        int64     // bytes written
	wnext       int64     // offset after the last written batch
	wmaxTs      int64     // largest max timestamp written, -1 if none
	sinceIndex  int64     // bytes written since the last index entry
	firstAppend time.Time // when the first batch was appended (age roll)
	dirty       bool      // in Log.dirty: written since the last fsync
	alloc       int64     // end of the .log file: zero-filled space after size (prealloc.go)
	filling     bool      // a zero-fill from fillFrom on is in progress
	fillFrom    int64
	fillFailed  bool
}

func newSegment(stem string, base int64) *segment {
	s := &segment{base: base, stem: stem, logPath: stem + logSuffix, wnext: base, wmaxTs: -1}
	s.refs.Store(1)
	s.next.Store(base)
	s.maxTs.Store(-1)
	return s
}

// publishWritten makes everything written visible to readers.
// Caller must hold Log.mu or own the segment exclusively.
func (s *segment) publishWritten() { s.publish(s.size, s.wnext, s.wmaxTs) }

func (s *segment) publish(end, next, maxTs int64) {
	s.maxTs.Store(maxTs)
	s.next.Store(next)
	s.end.Store(end)
}

// acquire takes a reference unless the segment is already closed.
func (s *segment) acquire() bool {
	for {
		r := s.refs.Load()
		if r <= 0 {
			return false
		}
		if s.refs.CompareAndSwap(r, r+1) {
			return true
		}
	}
}

// release drops a reference; the last one closes the files.
func (s *segment) release() error {
	if s.refs.Add(-1) != 0 {
		return nil
	}
	return s.closeFiles()
}

func (s *segment) closeFiles() error {
	var errs []error
	if s.idx != nil {
		errs = append(errs, s.idx.close())
	}
	if s.log != nil {
		errs = append(errs, s.log.Close())
	}
	return errors.Join(errs...)
}

// appendLocked writes batch (its base offset already set to base) at the end
// of the segment and adds index entries. A failed write is cut off again so
// that nothing half-written stays; cutErr reports when even that failed.
// Caller must hold Log.mu and have checked that the index is not full.
func (s *segment) appendLocked(batch []byte, h BatchHeader, base int64, interval int, now time.Time) (cutErr, err error) {
	pos := s.size
	if _, err := s.log.WriteAt(batch, pos); err != nil {
		err = fmt.Errorf("write %s: %w", s.logPath, err)
		if terr := s.log.Truncate(pos); terr != nil {
			return terr, err
		}
		s.alloc = pos
		return nil, err
	}
	s.wmaxTs = max(s.wmaxTs, h.MaxTimestamp)
	if s.sinceIndex >= int64(interval) {
		s.idx.appendLocked(indexEntry{rel: uint32(base - s.base), pos: uint32(pos), ts: s.wmaxTs})
		s.sinceIndex = 0
	}
	s.sinceIndex += int64(len(batch))
	s.size += int64(len(batch))
	s.alloc = max(s.alloc, s.size)
	s.wnext = base + int64(h.LastOffsetDelta) + 1
	if s.firstAppend.IsZero() {
		s.firstAppend = now
	}
	return nil, nil
}

// seal makes a segment that will get no more batches durable and compact:
// its log is cut to its data and fsynced, its indexes cut to their entries
// and fsynced. No appender or filler may be using s.
func (s *segment) seal() error {
	if cut, err := s.cutToSize(); err != nil {
		return err
	} else if !cut {
		if err := fileutil.Fdatasync(s.log); err != nil {
			return err
		}
	}
	if err := s.idx.trim(); err != nil {
		return fmt.Errorf("trim index of %s: %w", s.logPath, err)
	}
	return nil
}

var hdrBufPool = sync.Pool{New: func() any { b := make([]byte, 8<<10); return &b }}

// hdrReader reads batch headers through a small buffer, so that walking
// the small batches between two index entries costs one pread, not one per
// batch.
type hdrReader struct {
	f    *os.File
	path string
	bufp *[]byte
	off  int64 // file position of (*bufp)[0]
	n    int   // valid bytes in the buffer
}

func newHdrReader(f *os.File, path string) hdrReader {
	return hdrReader{f: f, path: path, bufp: hdrBufPool.Get().(*[]byte)}
}

func (r *hdrReader) done() { hdrBufPool.Put(r.bufp) }

// header returns the BatchHeaderSize bytes at pos; pos+BatchHeaderSize must
// not pass end.
func (r *hdrReader) header(pos, end int64) ([]byte, error) {
	if pos >= r.off && pos+BatchHeaderSize <= r.off+int64(r.n) {
		return (*r.bufp)[pos-r.off : pos-r.off+BatchHeaderSize], nil
	}
	buf := *r.bufp
	want := min(int64(len(buf)), end-pos)
	n, err := r.f.ReadAt(buf[:want], pos)
	r.off, r.n = pos, n
	if n < BatchHeaderSize {
		if err == nil || errors.Is(err, io.EOF) {
			return nil, corruptf(r.path, pos, "file ends inside a batch header")
		}
		return nil, fmt.Errorf("read %s at %d: %w", r.path, pos, err)
	}
	return buf[:BatchHeaderSize], nil
}

// checkedHeader reads the header at pos and checks what can be checked
// without the rest of the batch: magic, length bounds, lastOffsetDelta, and
// that the batch ends by end.
func (r *hdrReader) checkedHeader(pos, end int64, maxBatch int) (BatchHeader, error) {
	b, err := r.header(pos, end)
	if err != nil {
		return BatchHeader{}, err
	}
	h := parseHeader(b)
	switch size := int64(h.Size()); {
	case h.BatchLength < BatchHeaderSize-batchLengthOverhead || size > int64(maxBatch):
		return h, corruptf(r.path, pos, "batch length %d out of bounds", h.BatchLength)
	case pos+size > end:
		return h, corruptf(r.path, pos, "batch of %d bytes passes the end of data at %d", size, end)
	case h.Magic != 2:
		return h, corruptf(r.path, pos, "magic %d", h.Magic)
	case h.LastOffsetDelta < 0:
		return h, corruptf(r.path, pos, "lastOffsetDelta %d", h.LastOffsetDelta)
	}
	return h, nil
}

// locate returns the position and header of the batch holding offset among
// the first end bytes of s: from the index entry at or before it, then batch
// by batch. An index entry that disagrees with the log (possible only after a
// crash, see doc.go) makes it start over from the beginning of the segment.
func (s *segment) locate(offset, end int64, maxBatch int) (int64, BatchHeader, error) {
	r := newHdrReader(s.log, s.logPath)
	defer r.done()
	pos, expect := int64(0), s.base
	if i := s.idx.lookupOffset(s.idx.count(), uint32(offset-s.base)); i >= 0 {
		e := s.idx.entry(i)
		pos, expect = int64(e.pos), s.base+int64(e.rel)
	}
	fromIndex := pos != 0
	for {
		if pos >= end {
			return 0, BatchHeader{}, corruptf(s.logPath, pos, "offset %d not found before the end of data", offset)
		}
		h, err := r.checkedHeader(pos, end, maxBatch)
		if err == nil && h.BaseOffset != expect {
			err = corruptf(s.logPath, pos, "base offset %d, want %d", h.BaseOffset, expect)
		}
		if err != nil {
			if fromIndex {
				fromIndex, pos, expect = false, 0, s.base
				continue
			}
			return 0, h, err
		}
		if offset <= h.LastOffset() {
			return pos, h, nil
		}
		pos += int64(h.Size())
		expect = h.NextOffset()
	}
}

// readBatches appends to dst the batches of s from the one at pos (header
// h): as many whole batches as fit in budget bytes (the first one always when
// atLeastOne), none at or past hwm, none past end. It checks each batch it
// returns (length, magic, CRC32C, offset continuity). more reports that it
// stopped only at the end of the segment's data, so the caller may go on
// with the next segment.
func (s *segment) readBatches(dst []byte, pos int64, h BatchHeader, end int64, budget int, atLeastOne bool,
	hwm int64, maxBatch int) (out []byte, next int64, more bool, err error) {
	n := min(end-pos, int64(budget))
	if n < int64(h.Size()) {
		if !atLeastOne {
			return dst, h.BaseOffset, false, nil
		}
		n = int64(h.Size())
	}
	old := len(dst)
	dst = slices.Grow(dst, int(n))[:old+int(n)]
	buf := dst[old:]
	if m, err := s.log.ReadAt(buf, pos); m < len(buf) {
		if err == nil || errors.Is(err, io.EOF) {
			return dst[:old], 0, false, corruptf(s.logPath, pos+int64(m), "file ends before the end of data at %d", end)
		}
		return dst[:old], 0, false, fmt.Errorf("read %s at %d: %w", s.logPath, pos, err)
	}
	p, expect := int64(0), h.BaseOffset
	for p+BatchHeaderSize <= n {
		b := buf[p:]
		size := batchSizeAt(b)
		if size < BatchHeaderSize || size > int64(maxBatch) {
			return dst[:old], 0, false, corruptf(s.logPath, pos+p, "batch length %d out of bounds", size-batchLengthOverhead)
		}
		if p+size > n {
			break
		}
		base := int64(binary.BigEndian.Uint64(b[offBaseOffset:]))
		if base != expect {
			return dst[:old], 0, false, corruptf(s.logPath, pos+p, "base offset %d, want %d", base, expect)
		}
		if base >= hwm {
			break
		}
		if err := checkStored(b[:size]); err != "" {
			return dst[:old], 0, false, corruptf(s.logPath, pos+p, "%s", err)
		}
		p += size
		expect = base + int64(int32(binary.BigEndian.Uint32(b[offLastOffsetDelta:]))) + 1
	}
	return dst[:old+int(p)], expect, pos+p == end && expect < hwm, nil
}

// checkStored checks the parts of a stored batch a reader relies on: magic,
// CRC32C, lastOffsetDelta. It returns what is wrong, or "".
func checkStored(b []byte) string {
	if b[offMagic] != 2 {
		return fmt.Sprintf("magic %d", int8(b[offMagic]))
	}
	if want, got := binary.BigEndian.Uint32(b[offCRC:]), crc32.Checksum(b[offAttributes:], castagnoli); want != got {
		return fmt.Sprintf("crc %#08x, computed %#08x", want, got)
	}
	if int32(binary.BigEndian.Uint32(b[offLastOffsetDelta:])) < 0 {
		return "negative lastOffsetDelta"
	}
	return ""
}
