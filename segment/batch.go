package segment

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// BatchHeaderSize is the size in bytes of a Kafka v2 RecordBatch header, from
// baseOffset to recordCount inclusive.
const BatchHeaderSize = 61

// Byte positions of the header fields (see doc.go).
const (
	offBaseOffset      = 0
	offBatchLength     = 8
	offLeaderEpoch     = 12
	offMagic           = 16
	offCRC             = 17
	offAttributes      = 21
	offLastOffsetDelta = 23
	offFirstTimestamp  = 27
	offMaxTimestamp    = 35
	offProducerID      = 43
	offProducerEpoch   = 51
	offBaseSequence    = 53
	offRecordCount     = 57

	// batchLengthOverhead is the part of a batch the batchLength field does
	// not count: baseOffset and batchLength themselves.
	batchLengthOverhead = 12
	// minRecordSize is the smallest encoding of one record: length,
	// attributes, timestamp delta, offset delta, key length, value length and
	// header count, one byte each.
	minRecordSize = 7
	maxCodec      = 4 // none, gzip, snappy, lz4, zstd
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// BatchHeader is the decoded header of a Kafka v2 RecordBatch.
type BatchHeader struct {
	BaseOffset           int64
	BatchLength          int32 // bytes after this field: the batch is BatchLength+12 bytes
	PartitionLeaderEpoch int32
	Magic                int8
	CRC                  uint32 // CRC32C (Castagnoli) of the bytes from Attributes to the end
	Attributes           int16  // bits 0-2 compression codec, 3 timestamp type, 4 transactional, 5 control
	LastOffsetDelta      int32
	FirstTimestamp       int64
	MaxTimestamp         int64
	ProducerID           int64
	ProducerEpoch        int16
	BaseSequence         int32
	RecordCount          int32
}

// Size returns the size in bytes of the whole batch, header included.
func (h BatchHeader) Size() int { return int(h.BatchLength) + batchLengthOverhead }

// LastOffset returns the offset of the last record of the batch.
func (h BatchHeader) LastOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) }

// NextOffset returns the offset that follows the batch.
func (h BatchHeader) NextOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) + 1 }

// Codec returns the compression codec in the attributes (0 none, 1 gzip,
// 2 snappy, 3 lz4, 4 zstd).
func (h BatchHeader) Codec() int { return int(h.Attributes & 7) }

// ParseBatchHeader decodes the 61-byte v2 header at the start of b. It checks
// only what decoding needs (length, magic 2); CheckBatch checks the rest.
func ParseBatchHeader(b []byte) (BatchHeader, error) {
	if len(b) < BatchHeaderSize {
		return BatchHeader{}, fmt.Errorf("%w: %d bytes, header needs %d", ErrInvalidBatch, len(b), BatchHeaderSize)
	}
	h := parseHeader(b)
	if h.Magic != 2 {
		return BatchHeader{}, fmt.Errorf("%w: magic %d, want 2", ErrInvalidBatch, h.Magic)
	}
	return h, nil
}

// parseHeader decodes the header without any check. b must hold at least
// BatchHeaderSize bytes.
func parseHeader(b []byte) BatchHeader {
	_ = b[BatchHeaderSize-1]
	be := binary.BigEndian
	return BatchHeader{
		BaseOffset:           int64(be.Uint64(b[offBaseOffset:])),
		BatchLength:          int32(be.Uint32(b[offBatchLength:])),
		PartitionLeaderEpoch: int32(be.Uint32(b[offLeaderEpoch:])),
		Magic:                int8(b[offMagic]),
		CRC:                  be.Uint32(b[offCRC:]),
		Attributes:           int16(be.Uint16(b[offAttributes:])),
		LastOffsetDelta:      int32(be.Uint32(b[offLastOffsetDelta:])),
		FirstTimestamp:       int64(be.Uint64(b[offFirstTimestamp:])),
		MaxTimestamp:         int64(be.Uint64(b[offMaxTimestamp:])),
		ProducerID:           int64(be.Uint64(b[offProducerID:])),
		ProducerEpoch:        int16(be.Uint16(b[offProducerEpoch:])),
		BaseSequence:         int32(be.Uint32(b[offBaseSequence:])),
		RecordCount:          int32(be.Uint32(b[offRecordCount:])),
	}
}

// batchSizeAt returns the whole-batch size announced by the header at the
// start of b (at least 12 bytes).
func batchSizeAt(b []byte) int64 {
	return int64(int32(binary.BigEndian.Uint32(b[offBatchLength:]))) + batchLengthOverhead
}

// CheckBatch reports whether b is exactly one well-formed v2 RecordBatch of at
// most maxBytes bytes (maxBytes <= 0: no limit): length field, magic 2,
// CRC32C, a lastOffsetDelta and recordCount that agree, a known compression
// codec, and for uncompressed batches a record count the bytes can hold.
// It returns an error wrapping ErrBatchTooLarge or ErrInvalidBatch.
func CheckBatch(b []byte, maxBytes int) error {
	_, err := checkBatch(b, maxBytes)
	return err
}

func checkBatch(b []byte, maxBytes int) (BatchHeader, error) {
	if maxBytes > 0 && len(b) > maxBytes {
		return BatchHeader{}, fmt.Errorf("%w: %d bytes, max %d", ErrBatchTooLarge, len(b), maxBytes)
	}
	h, err := ParseBatchHeader(b)
	if err != nil {
		return h, err
	}
	if err := checkHeader(h, int64(len(b))); err != nil {
		return h, err
	}
	if sum := crc32.Checksum(b[offAttributes:], castagnoli); sum != h.CRC {
		return h, fmt.Errorf("%w: crc %#08x, computed %#08x", ErrInvalidBatch, h.CRC, sum)
	}
	return h, nil
}

// checkHeader checks the header fields of a batch of size bytes, everything
// but the CRC.
func checkHeader(h BatchHeader, size int64) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidBatch, fmt.Sprintf(format, args...))
	}
	switch {
	case h.Magic != 2:
		return bad("magic %d, want 2", h.Magic)
	case int64(h.Size()) != size || h.BatchLength < BatchHeaderSize-batchLengthOverhead:
		return bad("batchLength %d for %d bytes", h.BatchLength, size)
	case h.LastOffsetDelta < 0:
		return bad("lastOffsetDelta %d < 0", h.LastOffsetDelta)
	case h.RecordCount < 1 || int64(h.RecordCount) != int64(h.LastOffsetDelta)+1:
		return bad("recordCount %d with lastOffsetDelta %d", h.RecordCount, h.LastOffsetDelta)
	case h.Codec() > maxCodec:
		return bad("unknown compression codec %d", h.Codec())
	case h.Codec() == 0 && int64(h.RecordCount) > (size-BatchHeaderSize)/minRecordSize:
		return bad("%d records cannot fit in %d bytes", h.RecordCount, size-BatchHeaderSize)
	}
	return nil
}
