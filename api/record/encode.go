package record

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"time"
)

// castagnoli is the CRC-32C table; hash/crc32 uses the CPU's instruction
// for it where there is one.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Attribute bits of a batch.
const (
	attrCodecMask     = 0x07
	attrLogAppendTime = 0x08
	attrControl       = 0x20
)

// AppendBatch appends recs to dst as one Kafka v2 RecordBatch (magic 2,
// base offset 0, partition leader epoch -1) and returns the extended
// slice. Records get offset deltas 0..len(recs)-1 in order; the first
// record's timestamp is the batch's first timestamp and the others are
// stored as deltas from it; a zero Timestamp stands for the time of the
// call. The records are compressed as a whole with opt.Compression.
//
// AppendBatch allocates nothing when dst has room and the batch is not
// compressed; compressed batches borrow a pooled scratch buffer. On error
// dst is returned unchanged.
func AppendBatch(dst []byte, recs []Record, opt BatchOptions) ([]byte, error) {
	if len(recs) == 0 {
		return dst, ErrEmptyBatch
	}
	if !opt.Compression.Valid() {
		return dst, fmt.Errorf("%w: %d", ErrUnknownCompression, opt.Compression)
	}
	if len(recs) > math.MaxInt32 {
		return dst, fmt.Errorf("%w: %d records", ErrTooLarge, len(recs))
	}
	var now int64
	first := tsMillis(recs[0].Timestamp, &now)
	start := len(dst)

	// Room for the header and, uncompressed, the records: one allocation
	// at most.
	est := BatchHeaderLen
	for i := range recs {
		est += recs[i].MaxEncodedLen()
	}
	if opt.Compression == NoCompression {
		dst = grow(dst, est)
	} else {
		dst = grow(dst, BatchHeaderLen)
	}
	dst = dst[:start+BatchHeaderLen]

	var maxTs int64
	var err error
	if opt.Compression == NoCompression {
		dst, maxTs = appendRecords(dst, recs, first, &now)
	} else {
		bp := scratch.Get().(*[]byte)
		raw := grow((*bp)[:0], est)
		raw, maxTs = appendRecords(raw, recs, first, &now)
		dst, err = compress(dst, raw, opt.Compression)
		if cap(raw) <= 4<<20 { // keep the pool from pinning huge buffers
			*bp = raw[:0]
			scratch.Put(bp)
		}
		if err != nil {
			return dst[:start], fmt.Errorf("record: compress %s: %w", opt.Compression, err)
		}
	}
	size := len(dst) - start
	if size-12 > math.MaxInt32 {
		return dst[:start], fmt.Errorf("%w: %d bytes", ErrTooLarge, size)
	}

	h := dst[start:]
	pid, epoch, seq := int64(-1), int16(-1), int32(-1)
	if opt.idempotent() {
		pid, epoch, seq = opt.ProducerID, opt.ProducerEpoch, opt.BaseSequence
	}
	binary.BigEndian.PutUint64(h[0:], 0)
	binary.BigEndian.PutUint32(h[8:], uint32(size-12))
	binary.BigEndian.PutUint32(h[12:], math.MaxUint32) // leader epoch -1
	h[16] = 2
	binary.BigEndian.PutUint16(h[21:], uint16(opt.Compression))
	binary.BigEndian.PutUint32(h[23:], uint32(len(recs)-1))
	binary.BigEndian.PutUint64(h[27:], uint64(first))
	binary.BigEndian.PutUint64(h[35:], uint64(maxTs))
	binary.BigEndian.PutUint64(h[43:], uint64(pid))
	binary.BigEndian.PutUint16(h[51:], uint16(epoch))
	binary.BigEndian.PutUint32(h[53:], uint32(seq))
	binary.BigEndian.PutUint32(h[57:], uint32(len(recs)))
	binary.BigEndian.PutUint32(h[17:], crc32.Checksum(h[21:], castagnoli))
	return dst, nil
}

// tsMillis returns t in ms; the zero Time is the current time, read once
// per batch into *now.
func tsMillis(t time.Time, now *int64) int64 {
	if t.IsZero() {
		if *now == 0 {
			*now = time.Now().UnixMilli()
		}
		return *now
	}
	return t.UnixMilli()
}

// appendRecords appends the records' encodings and returns the largest
// timestamp.
func appendRecords(dst []byte, recs []Record, first int64, now *int64) ([]byte, int64) {
	maxTs := first
	for i := range recs {
		r := &recs[i]
		ts := first
		if i > 0 {
			ts = tsMillis(r.Timestamp, now)
			maxTs = max(maxTs, ts)
		}
		dst = appendRecord(dst, r, ts-first, int64(i))
	}
	return dst, maxTs
}

// appendRecord appends one record. Its length prefix is computed first,
// so the record is written in one pass without a temporary buffer.
func appendRecord(dst []byte, r *Record, tsDelta, offDelta int64) []byte {
	n := 1 + varintLen(tsDelta) + varintLen(offDelta) + bytesLen(r.Key) + bytesLen(r.Value) +
		varintLen(int64(len(r.Headers)))
	for i := range r.Headers {
		h := &r.Headers[i]
		n += varintLen(int64(len(h.Key))) + len(h.Key) + bytesLen(h.Value)
	}
	dst = appendVarint(dst, int64(n))
	dst = append(dst, 0) // attributes
	dst = appendVarint(dst, tsDelta)
	dst = appendVarint(dst, offDelta)
	dst = appendBytes(dst, r.Key)
	dst = appendBytes(dst, r.Value)
	dst = appendVarint(dst, int64(len(r.Headers)))
	for i := range r.Headers {
		h := &r.Headers[i]
		dst = appendVarint(dst, int64(len(h.Key)))
		dst = append(dst, h.Key...)
		dst = appendBytes(dst, h.Value)
	}
	return dst
}
