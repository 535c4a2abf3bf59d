package segment

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
)

// scanChunk is how much a batchScanner reads at a time.
const scanChunk = 1 << 20

// errZeroTail ends a scan at a zero-filled header: preallocated or never
// written space, the end of the data.
var errZeroTail = errors.New("zero-filled tail")

// batchScanner walks the batches of a .log in order, checking each fully
// (length bounds, magic, CRC32C, contiguous base offsets). It reads in large
// chunks and never allocates more than max(scanChunk, maxBatch) bytes,
// whatever the lengths on disk say.
type batchScanner struct {
	f        *os.File
	path     string
	end      int64 // bytes to scan: the file size
	maxBatch int
	pos      int64 // position of the next batch
	expect   int64 // base offset of the next batch
	buf      []byte
	bufOff   int64
	bufN     int
}

func newBatchScanner(f *os.File, path string, end, pos, expect int64, maxBatch int) *batchScanner {
	return &batchScanner{f: f, path: path, end: end, maxBatch: maxBatch, pos: pos, expect: expect}
}

// next returns the next batch and its position; the bytes are valid until
// the following call. At the end of the file it returns io.EOF; at a
// zero-filled header errZeroTail; at anything else a *CorruptError. The
// scanner does not move past an error.
func (sc *batchScanner) next() (BatchHeader, []byte, int64, error) {
	pos := sc.pos
	if pos == sc.end {
		return BatchHeader{}, nil, pos, io.EOF
	}
	if sc.end-pos < BatchHeaderSize {
		if b, err := sc.fill(pos, int(sc.end-pos)); err == nil && allZero(b) {
			return BatchHeader{}, nil, pos, errZeroTail
		}
		return BatchHeader{}, nil, pos, corruptf(sc.path, pos, "%d bytes left, too few for a batch header", sc.end-pos)
	}
	hb, err := sc.fill(pos, BatchHeaderSize)
	if err != nil {
		return BatchHeader{}, nil, pos, err
	}
	if allZero(hb[:batchLengthOverhead]) {
		return BatchHeader{}, nil, pos, errZeroTail
	}
	h := parseHeader(hb)
	size := int64(h.Size())
	switch {
	case h.BatchLength < BatchHeaderSize-batchLengthOverhead || size > int64(sc.maxBatch):
		return h, nil, pos, corruptf(sc.path, pos, "batch length %d out of bounds", h.BatchLength)
	case pos+size > sc.end:
		return h, nil, pos, corruptf(sc.path, pos, "batch of %d bytes passes the end of the file at %d", size, sc.end)
	case h.BaseOffset != sc.expect:
		return h, nil, pos, corruptf(sc.path, pos, "base offset %d, want %d", h.BaseOffset, sc.expect)
	case h.Magic != 2:
		return h, nil, pos, corruptf(sc.path, pos, "magic %d", h.Magic)
	case h.LastOffsetDelta < 0 || h.LastOffset() < h.BaseOffset:
		return h, nil, pos, corruptf(sc.path, pos, "lastOffsetDelta %d", h.LastOffsetDelta)
	}
	b, err := sc.fill(pos, int(size))
	if err != nil {
		return h, nil, pos, err
	}
	if got := crc32.Checksum(b[offAttributes:], castagnoli); got != h.CRC {
		return h, nil, pos, corruptf(sc.path, pos, "crc %#08x, computed %#08x", h.CRC, got)
	}
	sc.pos += size
	sc.expect = h.NextOffset()
	return h, b, pos, nil
}

// fill returns the n bytes at pos, reading a new chunk when they are not
// buffered. n never exceeds max(scanChunk, maxBatch).
func (sc *batchScanner) fill(pos int64, n int) ([]byte, error) {
	if pos >= sc.bufOff && pos+int64(n) <= sc.bufOff+int64(sc.bufN) {
		return sc.buf[pos-sc.bufOff : pos-sc.bufOff+int64(n)], nil
	}
	want := int(min(int64(max(n, scanChunk)), sc.end-pos))
	if cap(sc.buf) < want {
		sc.buf = make([]byte, want)
	}
	m, err := sc.f.ReadAt(sc.buf[:want], pos)
	sc.bufOff, sc.bufN = pos, m
	if m < n {
		if err == nil || errors.Is(err, io.EOF) {
			return nil, corruptf(sc.path, pos+int64(m), "file ends early")
		}
		return nil, fmt.Errorf("read %s at %d: %w", sc.path, pos, err)
	}
	return sc.buf[pos-sc.bufOff : pos-sc.bufOff+int64(n)], nil
}

// countPlausible counts, for the recovery report, the batches that look
// whole by their length field alone from pos on: how many a cut drops.
func countPlausible(f *os.File, pos, end int64, maxBatch int) int {
	var hb [batchLengthOverhead]byte
	n := 0
	for pos+BatchHeaderSize <= end {
		if _, err := f.ReadAt(hb[:], pos); err != nil || allZero(hb[:]) {
			break
		}
		size := batchSizeAt(hb[:])
		if size < BatchHeaderSize || size > int64(maxBatch) || pos+size > end {
			break
		}
		n++
		pos += size
	}
	return n
}
