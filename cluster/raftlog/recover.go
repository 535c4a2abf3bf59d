package raftlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/hashicorp/raft"

	"github.com/stratalog/strata/internal/fileutil"
)

// File names in a store directory.
const (
	segSuffix   = ".seg"
	headName    = "first-index"
	headTmpName = "first-index.tmp"
	spareName   = "spare.tmp"
	headSize    = 12 // first index 8, CRC32C 4
)

// segName returns the file name of the segment whose first index is base.
func segName(base uint64) string { return fmt.Sprintf("%020d%s", base, segSuffix) }

// parseSegName parses a segment file name strictly: 20 decimal digits and
// the suffix.
func parseSegName(name string) (uint64, bool) {
	digits, ok := strings.CutSuffix(name, segSuffix)
	if !ok || len(digits) != 20 || strings.Trim(digits, "0123456789") != "" {
		return 0, false
	}
	base, err := strconv.ParseUint(digits, 10, 64)
	return base, err == nil
}

// recover reads the directory into s: see "Recovery" in doc.go.
func (s *Store) recover() error {
	names, err := s.dirf.Readdirnames(-1)
	if err != nil {
		return err
	}
	var segs []*segment
	changed := false
	for _, name := range names {
		path := filepath.Join(s.dir, name)
		if base, ok := parseSegName(name); ok {
			segs = append(segs, &segment{base: base, path: path})
			continue
		}
		switch name {
		case headName:
		case headTmpName, spareName: // an interrupted marker write; a spare's state is unknown
			if err := os.Remove(path); err != nil {
				return err
			}
			changed = true
		default:
			return fmt.Errorf("%w: %s", ErrUnknownFile, path)
		}
	}
	if s.head, err = s.readHead(); err != nil {
		return err
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i].base < segs[j].base })

	// A head compaction writes the marker, then removes the segments below
	// it: finish one that a crash interrupted.
	for len(segs) > 1 && segs[1].base <= s.head {
		s.log.Info("raftlog: removing a segment below the first index", "file", segs[0].path, "first_index", s.head)
		if err := os.Remove(segs[0].path); err != nil {
			return err
		}
		segs, changed = segs[1:], true
	}
	s.segs = segs
	for i, seg := range segs {
		tail := i == len(segs)-1
		if err := s.openSegment(seg, tail); err != nil {
			return err
		}
		if !tail && (len(seg.offsets) == 0 || seg.base+uint64(len(seg.offsets)) != segs[i+1].base) {
			return &CorruptError{File: seg.path, Pos: seg.end,
				Reason: fmt.Sprintf("%d entries from %d do not reach the next segment's first index %d", len(seg.offsets), seg.base, segs[i+1].base)}
		}
	}
	// A segment without entries is the last, created by a roll that no
	// fsync completed: nothing in it was acknowledged.
	if n := len(s.segs); n > 0 && len(s.segs[n-1].offsets) == 0 {
		seg := s.segs[n-1]
		s.log.Warn("raftlog: removing a segment without entries (interrupted roll)", "file", seg.path)
		if err := s.removeSegment(seg); err != nil {
			return err
		}
		s.segs, changed = s.segs[:n-1], true
		if n > 1 {
			if err := s.cleanTail(s.segs[n-2], -1); err != nil {
				return err
			}
		}
	}
	if n := len(s.segs); n > 0 {
		s.first = max(s.head, s.segs[0].base)
		s.last = s.segs[n-1].base + uint64(len(s.segs[n-1].offsets)) - 1
		if s.first > s.last {
			// Everything was deleted (DeleteRange of the whole log) and
			// the removals were interrupted.
			for _, seg := range s.segs {
				if err := s.removeSegment(seg); err != nil {
					return err
				}
			}
			s.segs, s.first, s.last, changed = nil, 0, 0, true
		}
	}
	s.log.Debug("raftlog: recovered", "segments", len(s.segs), "first_index", s.first,
		"last_index", s.last, "bytes_read", s.recoverRead)
	if changed {
		return s.syncDir()
	}
	return nil
}

// readHead reads the first-index marker; 0 if there is none.
func (s *Store) readHead() (uint64, error) {
	path := filepath.Join(s.dir, headName)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if len(b) != headSize || crc32.Checksum(b[:8], castagnoli) != binary.BigEndian.Uint32(b[8:]) {
		return 0, &CorruptError{File: path, Pos: 0, Reason: "bad first-index marker"}
	}
	return binary.BigEndian.Uint64(b), nil
}

// writeHead makes first the durable first-index marker: entries below it
// are deleted whatever the segments still hold. Caller must hold s.wmu.
func (s *Store) writeHead(first uint64) error {
	b := binary.BigEndian.AppendUint64(nil, first)
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	tmp := filepath.Join(s.dir, headTmpName)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil && !s.cfg.NoSync {
		err = fileutil.Fdatasync(f)
	}
	err = errors.Join(err, f.Close())
	if err == nil {
		err = os.Rename(tmp, filepath.Join(s.dir, headName))
	}
	if err == nil {
		err = s.syncDir()
	}
	if err != nil {
		return fmt.Errorf("write first-index marker %d: %w", first, err)
	}
	s.head = first
	return nil
}

// openSegment opens seg and indexes its entries. A sealed segment must be
// whole: any fault is a *CorruptError. In the last one (tail) every entry's
// CRC is checked, and the first fault ends the data (what follows is cut
// off and logged) unless a later sync point shows it is corruption.
func (s *Store) openSegment(seg *segment, tail bool) error {
	f, err := os.OpenFile(seg.path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	seg.f = f
	st, err := f.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	hdr := make([]byte, segHeaderSize)
	if _, err := f.ReadAt(hdr, 0); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	base, salt, ok := parseSegHeader(hdr)
	if !ok || base != seg.base {
		if tail && (!ok || size < segHeaderSize) {
			// A roll writes the header before the segment's first
			// fsync: an invalid header is a torn roll, nothing in it
			// acked, unless what it holds shows it was fsynced.
			if err := s.checkTornHeader(seg, hdr, size); err != nil {
				return err
			}
			seg.end = 0
			return nil
		}
		return &CorruptError{File: seg.path, Pos: 0, Reason: "bad segment header"}
	}
	seg.salt = salt
	end, why, err := s.scan(seg, size, tail)
	if err != nil {
		return err
	}
	seg.end = end
	if !tail {
		return nil
	}
	// Read once what follows the data: the sync-point search stops at its
	// last nonzero byte, and cleanTail cuts only if there is one.
	nz, err := s.window(f, size).lastNonZero(end)
	if err != nil {
		return err
	}
	if nz > end {
		if err := s.mustBeTorn(seg, size, end, why, nz); err != nil {
			return err
		}
	}
	if why != nil && !errors.Is(why, errZero) {
		s.log.Warn("raftlog: torn tail", "file", seg.path, "pos", end, "reason", why.Error(),
			"last_index", seg.base+uint64(len(seg.offsets))-1)
	}
	if err := s.cleanTail(seg, nz); err != nil {
		return err
	}
	if s.cfg.NoSync {
		return nil
	}
	// What a killed process wrote may still be only in the page cache; the
	// next StoreLogs marks its first entry as written after everything
	// before it was durable, so make that true now.
	return fileutil.Fdatasync(seg.f)
}

// checkTornHeader fails with a *CorruptError when the last segment, whose
// header hdr is bad, holds proof that the header was durable: the header
// one bit off a valid one, its first entry intact (the header and the start
// of the first frame share the first 512-byte sector, which a disk writes
// whole), or a sync point after it. The salt is taken from the header as it
// is (0 for a zero header: then no sync point can be trusted).
func (s *Store) checkTornHeader(seg *segment, hdr []byte, size int64) error {
	if oneBitOff(hdr, seg.base) {
		return &CorruptError{File: seg.path, Pos: 0, Reason: "bad segment header, one bit off a valid one"}
	}
	if size < segHeaderSize+frameHeader+payloadFixed {
		return nil
	}
	salt := binary.BigEndian.Uint32(hdr[16:])
	w := s.window(seg.f, size)
	b, err := w.get(segHeaderSize, frameHeader+payloadFixed)
	if err != nil {
		return err
	}
	if n, err := frameLen(b, s.cfg.MaxEntryBytes); err == nil && frameIndex(b) == seg.base &&
		segHeaderSize+frameHeader+int64(n) <= size {
		if b, err = w.get(segHeaderSize, frameHeader+n); err != nil {
			return err
		}
		var l raft.Log
		// The first frame is ours, not a record's: its plain CRC (an
		// SRAFTLG1 segment) is proof as well.
		for _, salt := range []uint32{salt, 0} {
			if _, err := decodeEntry(b, s.cfg.MaxEntryBytes, salt, &l); err == nil {
				return &CorruptError{File: seg.path, Pos: 0, Reason: "bad segment header before an intact first entry"}
			}
		}
	}
	if salt == 0 {
		return nil
	}
	nz, err := w.lastNonZero(segHeaderSize)
	if err != nil {
		return err
	}
	seg.salt = salt
	p, idx, found, err := s.syncedAfter(seg, size, segHeaderSize, seg.base, nz)
	seg.salt = 0
	if err != nil || !found {
		return err
	}
	return &CorruptError{File: seg.path, Pos: 0,
		Reason: fmt.Sprintf("bad segment header, but entry %d at byte %d was written after it was fsynced", idx, p)}
}

// scan indexes the entries of seg (size bytes). It returns the end of the
// data and, in the tail, why the data ended there (errZero at a zero
// length; nil at the end of the file).
func (s *Store) scan(seg *segment, size int64, tail bool) (int64, error, error) {
	w := s.window(seg.f, size)
	pos, want := int64(segHeaderSize), seg.base
	for pos < size {
		b, err := w.get(pos, int(min(size-pos, frameHeader+8)))
		if err != nil {
			return 0, nil, err
		}
		var n int
		if len(b) < 4 {
			if allZero(b) {
				break // zeros too short to be a frame: the end of the data
			}
			err = errShort
		} else {
			n, err = frameLen(b, s.cfg.MaxEntryBytes)
		}
		if errors.Is(err, errZero) {
			return pos, err, nil
		}
		if err == nil && pos+frameHeader+int64(n) > size {
			err = errShort
		}
		if err == nil && tail {
			if b, err = w.get(pos, frameHeader+n); err != nil {
				return 0, nil, err
			}
			var l raft.Log
			_, err = decodeEntry(b, s.cfg.MaxEntryBytes, seg.salt, &l)
		}
		if err == nil && frameIndex(b) != want {
			err = fmt.Errorf("entry %d found where %d should be", frameIndex(b), want)
		}
		if err != nil {
			if !tail {
				return 0, nil, &CorruptError{File: seg.path, Pos: pos, Reason: err.Error()}
			}
			return pos, err, nil
		}
		seg.offsets = append(seg.offsets, uint32(pos))
		pos += frameHeader + int64(n)
		want++
	}
	return min(pos, size), nil, nil
}

// mustBeTorn decides what the end of the data at pos (why: the fault there)
// is in the last segment, when nonzero bytes follow up to nz: a torn write
// (nil) unless a sync point follows, which was written only after the entry
// due at pos was fsynced and acknowledged; then it is corruption. The
// unsalted sync points of an SRAFTLG1 segment prove nothing: a record could
// hold one.
func (s *Store) mustBeTorn(seg *segment, size, pos int64, why error, nz int64) error {
	if seg.salt == 0 {
		return nil
	}
	want := seg.base + uint64(len(seg.offsets))
	p, idx, found, err := s.syncedAfter(seg, size, pos, want, nz)
	if err != nil || !found {
		return err
	}
	return &CorruptError{File: seg.path, Pos: pos,
		Reason: fmt.Sprintf("entry %d: %v, but entry %d at byte %d was written after it was fsynced", want, why, idx, p)}
}

// minFrame is the size of the smallest frame.
const minFrame = frameHeader + payloadFixed

// syncedAfter looks in seg, at every byte position from from on (what lies
// between is not trusted), for a frame that decodes, CRC included (salted
// with seg's salt, which no record can know), is a sync point and holds an
// index above after, the entry expected at from: proof that everything
// before it was fdatasynced before it was written. The search ends at end,
// the end of the last nonzero byte of the file.
func (s *Store) syncedAfter(seg *segment, size, from int64, after uint64, end int64) (int64, uint64, bool, error) {
	w := s.window(seg.f, size)
	var l raft.Log
	for p := from + 1; p < end && p+minFrame <= size; p++ {
		b, err := w.get(p, minFrame)
		if err != nil {
			return 0, 0, false, err
		}
		n, err := frameLen(b, s.cfg.MaxEntryBytes)
		if err != nil || p+frameHeader+int64(n) > size || !frameSync(b) {
			continue
		}
		// Entries after..idx-1 lie between from and p, each at least
		// minFrame bytes long.
		idx := frameIndex(b)
		if idx <= after || idx-after > uint64(p-from)/minFrame {
			continue
		}
		if b, err = w.get(p, frameHeader+n); err != nil {
			return 0, 0, false, err
		}
		if _, err := decodeEntry(b, s.cfg.MaxEntryBytes, seg.salt, &l); err == nil {
			return p, idx, true, nil
		}
	}
	return 0, 0, false, nil
}

// lastNonZero returns the position after the last nonzero byte of the
// file in [from, size), or from if there is none.
func (w *window) lastNonZero(from int64) (int64, error) {
	buf := make([]byte, min(windowBytes, max(w.size-from, 0)))
	for end := w.size; end > from; {
		start := max(from, end-int64(len(buf)))
		b := buf[:end-start]
		if _, err := w.f.ReadAt(b, start); err != nil {
			return 0, err
		}
		*w.read += int64(len(b))
		if allZero(b) {
			end = start
			continue
		}
		for i := len(b) - 1; i >= 0; i-- {
			if b[i] != 0 {
				return start + int64(i) + 1, nil
			}
		}
		end = start
	}
	return from, nil
}

// cleanTail makes sure nothing but zeros follows the data of the last
// segment, so that no stale frame can be read as an entry once new ones
// are written before it: it cuts the file at the end of the data if not.
// nz is the end of the file's last nonzero byte, if known; negative if not.
func (s *Store) cleanTail(seg *segment, nz int64) error {
	st, err := seg.f.Stat()
	if err != nil {
		return err
	}
	if nz < 0 {
		if nz, err = s.window(seg.f, st.Size()).lastNonZero(seg.end); err != nil {
			return err
		}
	}
	if nz <= seg.end {
		return nil
	}
	s.log.Warn("raftlog: cutting what follows the data of the last segment",
		"file", seg.path, "pos", seg.end, "bytes", st.Size()-seg.end)
	if err := seg.f.Truncate(seg.end); err != nil {
		return err
	}
	if s.cfg.NoSync {
		return nil
	}
	return seg.f.Sync()
}

// removeSegment closes and removes seg's file (without the directory fsync).
func (s *Store) removeSegment(seg *segment) error {
	var err error
	if seg.f != nil {
		err = seg.f.Close()
	}
	return errors.Join(err, os.Remove(seg.path))
}

// windowBytes is how much a window reads at a time.
const windowBytes = 256 << 10

// window reads a file through a buffer, for scanning.
type window struct {
	f    *os.File
	size int64
	buf  []byte
	off  int64
	read *int64 // bytes read, added up
}

// window returns a window on f, size bytes long, that counts what it reads
// in s.recoverRead.
func (s *Store) window(f *os.File, size int64) *window {
	return &window{f: f, size: size, read: &s.recoverRead}
}

// get returns n bytes at pos, which must lie within the file. The slice is
// valid until the next call.
func (w *window) get(pos int64, n int) ([]byte, error) {
	if pos >= w.off && pos+int64(n) <= w.off+int64(len(w.buf)) {
		return w.buf[pos-w.off : pos-w.off+int64(n)], nil
	}
	want := min(max(int64(n), windowBytes), w.size-pos)
	if int64(cap(w.buf)) < want {
		w.buf = make([]byte, want)
	}
	w.buf, w.off = w.buf[:want], pos
	*w.read += want
	if _, err := w.f.ReadAt(w.buf, pos); err != nil {
		w.buf = w.buf[:0]
		return nil, err
	}
	return w.buf[:n], nil
}

// allZero reports whether b holds only zeros.
func allZero(b []byte) bool {
	for len(b) >= 8 {
		if binary.NativeEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
