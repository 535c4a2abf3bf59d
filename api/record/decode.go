package record

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"time"
)

// DecodeBatches walks b, a concatenation of stored batches as Fetch
// returns them, and calls fn with each record in order, with its absolute
// offset (base offset + offset delta) and its timestamp. It stops early,
// without error, when fn returns false.
//
// Offsets must grow: within a batch and from one batch to the next.
// Each batch's CRC is verified before its records are read; compressed
// batches are decompressed; control batches (transaction markers) are
// skipped. A partial batch at the end of b is ignored. Corrupt input gives
// an error wrapping ErrCorrupt, ErrChecksum or ErrTooLarge; records of
// earlier, valid batches have been given to fn by then.
//
// The records' Key, Value and header values alias b (or the batch's
// decompressed buffer); see the package documentation.
func DecodeBatches(b []byte, fn func(Record) bool) error {
	_, err := DecodeBatchesFrom(b, math.MinInt64, fn)
	return err
}

// DecodeBatchesFrom is DecodeBatches for a reader that resumes at offset
// from: records below from are not given to fn, and batches that end
// below it are not decompressed.
//
// next is the offset to read from next: one past the last record given to
// fn when fn stopped the walk, else one past the last complete batch (so a
// fetch holding only a control batch still moves the reader on), and from
// when b held no complete batch.
func DecodeBatchesFrom(b []byte, from int64, fn func(Record) bool) (next int64, err error) {
	var d decoder
	return d.walk(b, from, fn)
}

// AppendRecordsFrom is DecodeBatchesFrom appending the records to dst
// instead of giving them to a function, which saves a call and a copy
// of each record. It returns the extended slice, which holds, when err
// is not nil, the records decoded before the corruption (as
// DecodeBatchesFrom gives them to its function). Size dst with
// CountRecords to append without growing it.
func AppendRecordsFrom(dst []Record, b []byte, from int64) (recs []Record, next int64, err error) {
	d := decoder{dst: dst}
	next, err = d.walk(b, from, nil)
	return d.dst, next, err
}

// walk decodes the batches of b as DecodeBatchesFrom describes, giving
// the records to fn or, when fn is nil, appending them to d.dst.
func (d *decoder) walk(b []byte, from int64, fn func(Record) bool) (next int64, err error) {
	next = from
	prevLast := int64(math.MinInt64)
	for p := 0; len(b)-p >= 12; {
		length := int32(binary.BigEndian.Uint32(b[p+8:]))
		if length < BatchHeaderLen-12 {
			return next, fmt.Errorf("%w at byte %d: length %d is below the header size", ErrCorrupt, p, length)
		}
		end := p + 12 + int(length)
		if end > len(b) || end < p {
			break // a partial batch at the end
		}
		if base := int64(binary.BigEndian.Uint64(b[p:])); base <= prevLast {
			return next, fmt.Errorf("%w at byte %d: base offset %d follows offset %d", ErrCorrupt, p, base, prevLast)
		}
		last, stop, err := d.batch(b[p:end], p, from, fn)
		if err != nil {
			return next, err
		}
		if stop {
			return last + 1, nil
		}
		if last >= next {
			next = last + 1
		}
		prevLast = last
		p = end
	}
	return next, nil
}

// decoder holds what is reused across the batches of one call.
type decoder struct {
	dst   []Record  // where records go without a function
	keys  [8]string // recent header keys, to share their strings
	nkeys int
	hdrs  []Header // the slab the records' headers are cut from
}

// batch decodes one complete batch found at byte pos of the input. It
// returns the batch's last offset, or the offset of the record fn stopped
// at with stop set.
func (d *decoder) batch(b []byte, pos int, from int64, fn func(Record) bool) (last int64, stop bool, err error) {
	if b[16] != 2 {
		return 0, false, fmt.Errorf("%w at byte %d: magic %d, want 2", ErrCorrupt, pos, b[16])
	}
	if want, got := binary.BigEndian.Uint32(b[17:]), crc32.Checksum(b[21:], castagnoli); want != got {
		return 0, false, fmt.Errorf("%w at byte %d: stored %#08x, computed %#08x", ErrChecksum, pos, want, got)
	}
	base := int64(binary.BigEndian.Uint64(b))
	attrs := binary.BigEndian.Uint16(b[21:])
	lastDelta := int32(binary.BigEndian.Uint32(b[23:]))
	firstTs := int64(binary.BigEndian.Uint64(b[27:]))
	maxTs := int64(binary.BigEndian.Uint64(b[35:]))
	count := int32(binary.BigEndian.Uint32(b[57:]))
	if lastDelta < 0 || count < 0 {
		return 0, false, fmt.Errorf("%w at byte %d: last offset delta %d, record count %d", ErrCorrupt, pos, lastDelta, count)
	}
	if base > math.MaxInt64-int64(lastDelta) {
		return 0, false, fmt.Errorf("%w at byte %d: base offset %d overflows", ErrCorrupt, pos, base)
	}
	last = base + int64(lastDelta)
	if attrs&attrControl != 0 || last < from {
		return last, false, nil
	}
	recs := b[BatchHeaderLen:]
	if c := Compression(attrs & attrCodecMask); c != NoCompression {
		if !c.Valid() {
			return 0, false, fmt.Errorf("%w at byte %d: %w %d", ErrCorrupt, pos, ErrUnknownCompression, c)
		}
		if recs, err = decompress(recs, c); err != nil {
			return 0, false, fmt.Errorf("%w at byte %d: %s: %w", ErrCorrupt, pos, c, err)
		}
	}
	// The smallest record takes 7 bytes; a larger count is a lie that
	// must not size anything.
	if int(count) > len(recs)/7 {
		return 0, false, fmt.Errorf("%w at byte %d: %d records cannot fit in %d bytes", ErrCorrupt, pos, count, len(recs))
	}
	logAppend := attrs&attrLogAppendTime != 0
	d.hdrs = nil // records keep the previous batch's headers; start a new slab
	prev := int64(-1)
	i := 0
	for n := int32(0); n < count; n++ {
		var r Record
		var tsDelta, delta int64
		var what string
		if r, tsDelta, delta, i, what = d.record(recs, i, prev, int64(lastDelta)); what != "" {
			return 0, false, fmt.Errorf("%w at byte %d: record %d: bad %s", ErrCorrupt, pos, n, what)
		}
		prev = delta
		r.Offset = base + delta
		if r.Offset < from {
			continue
		}
		ts := maxTs
		if !logAppend {
			ts = firstTs + tsDelta
		}
		r.Timestamp = time.UnixMilli(ts)
		if fn == nil {
			d.dst = append(d.dst, r)
		} else if !fn(r) {
			return r.Offset, true, nil
		}
	}
	if i != len(recs) {
		return 0, false, fmt.Errorf("%w at byte %d: %d bytes after the last record", ErrCorrupt, pos, len(recs)-i)
	}
	return last, false, nil
}

// record parses the record at recs[i:], whose offset delta must be above
// prev and at most last. It returns the record (without offset and
// timestamp), its timestamp and offset deltas and the position after it,
// or the name of the bad field.
func (d *decoder) record(recs []byte, i int, prev, last int64) (r Record, tsDelta, delta int64, next int, bad string) {
	var l, v int64
	var ok bool
	if l, i, ok = readVarint(recs, i); !ok || l < 0 || l > int64(len(recs)-i) {
		return r, 0, 0, i, "length"
	}
	end := i + int(l)
	rb := recs[:end]
	i++ // attributes
	if tsDelta, i, ok = readVarint(rb, i); !ok {
		return r, 0, 0, i, "timestamp delta"
	}
	if delta, i, ok = readVarint(rb, i); !ok || delta <= prev || delta > last {
		return r, 0, 0, i, "offset delta"
	}
	if r.Key, i, ok = readBytes(rb, i); !ok {
		return r, 0, 0, i, "key"
	}
	if r.Value, i, ok = readBytes(rb, i); !ok {
		return r, 0, 0, i, "value"
	}
	if v, i, ok = readVarint(rb, i); !ok || v < 0 || v > int64(end-i)/2 {
		return r, 0, 0, i, "header count"
	}
	if hc := int(v); hc > 0 {
		if cap(d.hdrs)-len(d.hdrs) < hc {
			d.hdrs = make([]Header, 0, max(hc, 2*cap(d.hdrs), 8))
		}
		s := len(d.hdrs)
		for range hc {
			var h Header
			var kb []byte
			if kb, i, ok = readBytes(rb, i); !ok || kb == nil {
				return r, 0, 0, i, "header key"
			}
			h.Key = d.key(kb)
			if h.Value, i, ok = readBytes(rb, i); !ok {
				return r, 0, 0, i, "header value"
			}
			d.hdrs = append(d.hdrs, h)
		}
		r.Headers = d.hdrs[s:len(d.hdrs):len(d.hdrs)]
	}
	if i != end {
		return r, 0, 0, i, "length"
	}
	return r, tsDelta, delta, i, ""
}

// key returns kb as a string, sharing the string of a recent equal key:
// header keys repeat across records, and the comparison does not allocate.
func (d *decoder) key(kb []byte) string {
	for j := range min(d.nkeys, len(d.keys)) {
		if d.keys[j] == string(kb) {
			return d.keys[j]
		}
	}
	s := string(kb)
	d.keys[d.nkeys%len(d.keys)] = s
	d.nkeys++
	return s
}

// readBytes reads a length-prefixed byte string at b[i:]; length -1 is
// nil. The result's capacity is clipped to its length.
func readBytes(b []byte, i int) ([]byte, int, bool) {
	l, i, ok := readVarint(b, i)
	if !ok || l < -1 || l > int64(len(b)-i) {
		return nil, i, false
	}
	if l == -1 {
		return nil, i, true
	}
	j := i + int(l)
	return b[i:j:j], j, true
}

// CountRecords returns the number of records in the complete batches of
// b, read from their headers only (last offset delta + 1 per batch,
// capped by what the batch's bytes could hold, so a corrupt header does
// not make it huge). Readers use it to size the slice they decode into.
func CountRecords(b []byte) int {
	n := 0
	for p := 0; len(b)-p >= BatchHeaderLen; {
		length := int(int32(binary.BigEndian.Uint32(b[p+8:])))
		if length < BatchHeaderLen-12 || length > len(b)-p-12 {
			break
		}
		delta := int(int32(binary.BigEndian.Uint32(b[p+23:])))
		limit := (length + 12 - BatchHeaderLen) / 7
		if binary.BigEndian.Uint16(b[p+21:])&attrCodecMask != 0 {
			limit = MaxDecompressedBytes / 7
		}
		n += min(max(delta+1, 0), limit)
		p += 12 + length
	}
	return n
}

// NextOffset returns the offset a reader resuming at from reads after b,
// found from the batch headers alone: one past the last complete batch,
// or from when b holds no complete batch that ends at or after it. It
// verifies no CRC and decodes no record, so a consumer can send its next
// fetch before it decodes b. For any b that DecodeBatchesFrom accepts
// without error, the result is DecodeBatchesFrom's next; for corrupt b it
// may be further on, since it stops only at a header that cannot be
// right (a length below the header size, offsets that do not grow, a
// negative or overflowing last offset delta), where the decoder stops too.
func NextOffset(b []byte, from int64) int64 {
	next := from
	prevLast := int64(math.MinInt64)
	for p := 0; len(b)-p >= 12; {
		length := int32(binary.BigEndian.Uint32(b[p+8:]))
		if length < BatchHeaderLen-12 {
			break
		}
		end := p + 12 + int(length)
		if end > len(b) || end < p {
			break // a partial batch at the end
		}
		base := int64(binary.BigEndian.Uint64(b[p:]))
		lastDelta := int32(binary.BigEndian.Uint32(b[p+23:]))
		if base <= prevLast || lastDelta < 0 || base > math.MaxInt64-int64(lastDelta) {
			break
		}
		last := base + int64(lastDelta)
		// As the decoder does: last+1 overflows for the final offset of
		// all, and then next stays.
		if last >= next {
			next = last + 1
		}
		prevLast = last
		p = end
	}
	return next
}
