package segment

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync/atomic"

	"github.com/tysonmote/gommap"
)

const (
	offEntrySize  = 8  // relative offset uint32, position uint32
	timeEntrySize = 12 // max timestamp int64, relative offset uint32
)

// index holds the two sparse indexes of one segment. They have one entry per
// index interval each, in step: entry i of .timeindex names the same batch as
// entry i of .index, so a time lookup finds its position there.
//
// Entries are written by the appender (under Log.mu) into the mapping before
// n is stored, and readers load n before reading entries, so a reader only
// reads published entries. The mappings are never remapped while the index
// is shared; they are unmapped by close, when the last reference is gone.
type index struct {
	offPath, timePath string
	offFile, timeFile *os.File
	offMap, timeMap   gommap.MMap // nil when nothing is mapped
	cap               int         // entries that fit in both mappings
	n                 atomic.Int64
	openSizes         [2]int64 // sizes of the files when opened, before preallocation
}

// indexEntry is entry i of both files.
type indexEntry struct {
	rel uint32 // base offset of the batch minus the segment base offset
	pos uint32 // byte position of the batch in the .log
	ts  int64  // largest max timestamp of the segment's batches up to this one
}

// openIndex opens (creating if missing) the index files of the segment at
// stem. Writable indexes are preallocated to maxBytes and mapped read-write;
// read-only ones are mapped at their file size. created reports files that
// did not exist.
func openIndex(stem string, writable bool, maxBytes int) (x *index, created bool, err error) {
	x = &index{offPath: stem + indexSuffix, timePath: stem + timeIndexSuffix}
	defer func() {
		if err != nil {
			err = errors.Join(err, x.close())
		}
	}()
	var c1, c2 bool
	if x.offFile, c1, err = openFile(x.offPath); err != nil {
		return x, false, err
	}
	if x.timeFile, c2, err = openFile(x.timePath); err != nil {
		return x, false, err
	}
	for i, f := range []*os.File{x.offFile, x.timeFile} {
		st, err := f.Stat()
		if err != nil {
			return x, false, err
		}
		x.openSizes[i] = st.Size()
	}
	if x.offMap, err = mapIndex(x.offFile, writable, maxBytes); err != nil {
		return x, false, fmt.Errorf("map %s: %w", x.offPath, err)
	}
	if x.timeMap, err = mapIndex(x.timeFile, writable, maxBytes); err != nil {
		return x, false, fmt.Errorf("map %s: %w", x.timePath, err)
	}
	x.cap = min(len(x.offMap)/offEntrySize, len(x.timeMap)/timeEntrySize)
	return x, c1 || c2, nil
}

func openFile(path string) (*os.File, bool, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
		return f, true, err
	}
	return f, false, err
}

func mapIndex(f *os.File, writable bool, maxBytes int) (gommap.MMap, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := st.Size()
	prot := gommap.PROT_READ
	if writable {
		prot |= gommap.PROT_WRITE
		if size < int64(maxBytes) {
			// Real blocks, not a hole: a write fault on a hole of a shared
			// mapping raises SIGBUS when the disk is full.
			if err := preallocate(f, int64(maxBytes)); err != nil {
				return nil, err
			}
			size = int64(maxBytes)
		}
	}
	if size == 0 {
		return nil, nil
	}
	m, err := gommap.MapRegion(f.Fd(), 0, size, prot, gommap.MAP_SHARED)
	if err != nil {
		return nil, err
	}
	if !writable {
		return m, nil
	}
	// The writable index of the active segment is written an entry at a
	// time into preallocated space, so the kernel's read-around on a page
	// fault only costs: with a device read-ahead of 8 MiB (this project's
	// machines), the first append to a new index read in 8 MiB of its
	// preallocated zeros (about 2 ms of CPU, on the goroutine that
	// appends, the raft FSM's) and kept them in the page cache, for two
	// files per partition replica. MADV_RANDOM faults in the one page
	// touched (about 70 µs here). Read-only maps (sealed segments, which
	// recovery may scan) keep the default.
	if err := m.Advise(gommap.MADV_RANDOM); err != nil {
		return nil, errors.Join(fmt.Errorf("madvise: %w", err), m.UnsafeUnmap())
	}
	return m, nil
}

// count returns the number of published entries.
func (x *index) count() int { return int(x.n.Load()) }

// entry returns entry i, which must be below a count loaded before.
func (x *index) entry(i int) indexEntry {
	o := x.offMap[i*offEntrySize:]
	t := x.timeMap[i*timeEntrySize:]
	return indexEntry{
		rel: binary.BigEndian.Uint32(o),
		pos: binary.BigEndian.Uint32(o[4:]),
		ts:  int64(binary.BigEndian.Uint64(t)),
	}
}

// timeRel returns the relative offset stored in time entry i.
func (x *index) timeRel(i int) uint32 {
	return binary.BigEndian.Uint32(x.timeMap[i*timeEntrySize+8:])
}

// full reports whether no entry can be added.
func (x *index) full() bool { return x.count() >= x.cap }

// appendLocked writes entry e after the last one and publishes it.
// Caller must hold Log.mu and have checked full.
func (x *index) appendLocked(e indexEntry) {
	i := x.count()
	putEntry(x.offMap[i*offEntrySize:], x.timeMap[i*timeEntrySize:], e)
	x.n.Store(int64(i + 1))
}

func putEntry(o, t []byte, e indexEntry) {
	binary.BigEndian.PutUint32(o, e.rel)
	binary.BigEndian.PutUint32(o[4:], e.pos)
	binary.BigEndian.PutUint64(t, uint64(e.ts))
	binary.BigEndian.PutUint32(t[8:], e.rel)
}

// lookupOffset returns the last of the first n entries whose relative offset
// is <= rel, or -1.
func (x *index) lookupOffset(n int, rel uint32) int {
	lo, hi := 0, n // entries [0,lo) are <= rel, [hi,n) are > rel
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if binary.BigEndian.Uint32(x.offMap[m*offEntrySize:]) <= rel {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo - 1
}

// lookupTime returns the last of the first n entries whose timestamp is < ts,
// or -1. Timestamps are non-decreasing.
func (x *index) lookupTime(n int, ts int64) int {
	lo, hi := 0, n
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if int64(binary.BigEndian.Uint64(x.timeMap[m*timeEntrySize:])) < ts {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo - 1
}

// validPrefix returns how many of the first n entries are well formed for a
// log of logSize bytes: relative offsets and positions strictly increasing
// from at least 1 and BatchHeaderSize (the first batch never gets an entry),
// positions inside the log, the two files naming the same batches, and
// timestamps non-decreasing. An all-zero entry ends the prefix.
func (x *index) validPrefix(n int, logSize int64) int {
	n = min(n, x.cap)
	var prev indexEntry
	for i := 0; i < n; i++ {
		e := x.entry(i)
		switch {
		case e.rel == 0, int64(e.pos) < BatchHeaderSize, int64(e.pos) >= logSize,
			x.timeRel(i) != e.rel,
			i > 0 && (e.rel <= prev.rel || e.pos <= prev.pos || e.ts < prev.ts):
			return i
		}
		prev = e
	}
	return n
}

// zeroTailFrom clears the entries from i up to the first all-zero one, so
// that entries a truncation or recovery dropped cannot come back.
// The index must be writable and not shared with readers past i.
func (x *index) zeroTailFrom(i int) {
	for ; i < x.cap; i++ {
		o := x.offMap[i*offEntrySize : (i+1)*offEntrySize]
		t := x.timeMap[i*timeEntrySize : (i+1)*timeEntrySize]
		if allZero(o) && allZero(t) {
			return
		}
		clear(o)
		clear(t)
	}
}

// zeroBeyond reports whether every byte of both mappings after the first n
// entries is zero (a preallocated index that was never trimmed).
func (x *index) zeroBeyond(n int) bool {
	return allZero(x.offMap[min(n*offEntrySize, len(x.offMap)):]) &&
		allZero(x.timeMap[min(n*timeEntrySize, len(x.timeMap)):])
}

func allZero(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
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

// sizesMatch reports whether both files held exactly n entries when opened.
func (x *index) sizesMatch(n int) bool {
	return x.openSizes[0] == int64(n*offEntrySize) && x.openSizes[1] == int64(n*timeEntrySize)
}

// trim cuts both files to their published entries and fsyncs them. The
// mappings stay: only entries below count are ever read again, and they lie
// inside the files.
func (x *index) trim() error {
	n := int64(x.count())
	var errs []error
	for _, f := range []struct {
		f    *os.File
		size int64
	}{{x.offFile, n * offEntrySize}, {x.timeFile, n * timeEntrySize}} {
		if err := f.f.Truncate(f.size); err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, f.f.Sync())
	}
	return errors.Join(errs...)
}

// rewrite replaces the content of both files by entries, for an index of a
// segment that no reader sees yet, and maps the new content read-only
// (writable false) or preallocated to maxBytes (writable true).
func (x *index) rewrite(entries []indexEntry, writable bool, maxBytes int) error {
	if err := x.unmap(); err != nil {
		return err
	}
	ob := make([]byte, len(entries)*offEntrySize)
	tb := make([]byte, len(entries)*timeEntrySize)
	for i, e := range entries {
		putEntry(ob[i*offEntrySize:], tb[i*timeEntrySize:], e)
	}
	for _, w := range []struct {
		f *os.File
		b []byte
	}{{x.offFile, ob}, {x.timeFile, tb}} {
		if err := w.f.Truncate(0); err != nil {
			return err
		}
		if _, err := w.f.WriteAt(w.b, 0); err != nil {
			return err
		}
		if err := w.f.Sync(); err != nil {
			return err
		}
	}
	var err error
	if x.offMap, err = mapIndex(x.offFile, writable, maxBytes); err != nil {
		return err
	}
	if x.timeMap, err = mapIndex(x.timeFile, writable, maxBytes); err != nil {
		return err
	}
	x.cap = min(len(x.offMap)/offEntrySize, len(x.timeMap)/timeEntrySize)
	x.n.Store(int64(len(entries)))
	return nil
}

func (x *index) unmap() error {
	var errs []error
	if x.offMap != nil {
		errs = append(errs, x.offMap.UnsafeUnmap())
		x.offMap = nil
	}
	if x.timeMap != nil {
		errs = append(errs, x.timeMap.UnsafeUnmap())
		x.timeMap = nil
	}
	x.cap = 0
	return errors.Join(errs...)
}

// close unmaps and closes both files. Only the last user calls it.
func (x *index) close() error {
	errs := []error{x.unmap()}
	for _, f := range []*os.File{x.offFile, x.timeFile} {
		if f != nil {
			errs = append(errs, f.Close())
		}
	}
	x.offFile, x.timeFile = nil, nil
	return errors.Join(errs...)
}
