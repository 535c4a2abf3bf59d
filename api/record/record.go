package record

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Errors of the codec. Decoding errors wrap one of them with the byte
// position of the batch in the input and the reason.
var (
	// ErrCorrupt is returned for bytes that are not a well-formed batch:
	// a length out of bounds, a bad magic byte, records that overrun their
	// batch or leave bytes over.
	ErrCorrupt = errors.New("record: corrupt batch")
	// ErrChecksum is returned when a batch's CRC-32C does not match its
	// bytes.
	ErrChecksum = errors.New("record: batch checksum mismatch")
	// ErrTooLarge is returned for a batch that decompresses to more than
	// MaxDecompressedBytes, or that would encode to more than 2 GiB.
	ErrTooLarge = errors.New("record: batch too large")
	// ErrUnknownCompression is returned for a codec outside 0..4.
	ErrUnknownCompression = errors.New("record: unknown compression codec")
	// ErrEmptyBatch is returned by AppendBatch when given no records: a
	// batch holds at least one.
	ErrEmptyBatch = errors.New("record: empty batch")
)

// MaxDecompressedBytes bounds what one compressed batch may expand to. A
// batch claiming more is corrupt (or hostile), and is refused before the
// memory is allocated where the codec announces its size.
const MaxDecompressedBytes = 32 << 20

// BatchHeaderLen is the size of a batch's header; the records follow it.
const BatchHeaderLen = 61

// Header is one record header. Headers are ordered and keys may repeat.
type Header struct {
	Key   string
	Value []byte
}

// Record is one record of a batch.
//
// A nil Key or Value is encoded as null (length -1) and an empty non-nil
// one as empty (length 0); decoding keeps the difference.
type Record struct {
	Key     []byte
	Value   []byte
	Headers []Header
	// Timestamp is the record's time, kept to the millisecond. When
	// encoding, the zero Time stands for the time of the AppendBatch call.
	Timestamp time.Time
	// Offset is the record's offset in its partition. It is set by
	// decoding (base offset + offset delta) and ignored by encoding, which
	// numbers records from 0 in the order given.
	Offset int64
}

// MaxEncodedLen returns an upper bound of the bytes r takes in an
// uncompressed batch (excluding the 61-byte batch header). Producers use
// it to decide when a batch is full.
func (r *Record) MaxEncodedLen() int {
	n := 5 + 1 + 10 + 5 + // length, attributes, timestamp delta, offset delta
		5 + len(r.Key) + 5 + len(r.Value) + 5 // key, value, header count
	for i := range r.Headers {
		n += 5 + len(r.Headers[i].Key) + 5 + len(r.Headers[i].Value)
	}
	return n
}

// Compression is a batch's codec, numbered as Kafka's attribute bits.
type Compression int8

// The codecs.
const (
	NoCompression Compression = 0
	Gzip          Compression = 1
	Snappy        Compression = 2
	LZ4           Compression = 3
	Zstd          Compression = 4
)

var compressionNames = [...]string{"none", "gzip", "snappy", "lz4", "zstd"}

// String returns the codec's name as Kafka spells it ("none", "gzip",
// "snappy", "lz4", "zstd").
func (c Compression) String() string {
	if c >= 0 && int(c) < len(compressionNames) {
		return compressionNames[c]
	}
	return fmt.Sprintf("compression(%d)", int8(c))
}

// Valid reports whether c is one of the five codecs.
func (c Compression) Valid() bool { return c >= NoCompression && c <= Zstd }

// ParseCompression returns the codec with the given name (as String
// returns it, case-insensitive; "" is none).
func ParseCompression(s string) (Compression, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" {
		return NoCompression, nil
	}
	for i, n := range compressionNames {
		if n == s {
			return Compression(i), nil
		}
	}
	return 0, fmt.Errorf("%w: %q", ErrUnknownCompression, s)
}

// BatchOptions are the batch-wide fields AppendBatch writes.
type BatchOptions struct {
	Compression Compression
	// ProducerID is the idempotent producer's id. A value <= 0 means the
	// batch is not idempotent: it then carries producer id -1, epoch -1
	// and base sequence -1, as Kafka's non-idempotent producers write.
	ProducerID    int64
	ProducerEpoch int16
	// BaseSequence is the sequence number of the first record; record i
	// has BaseSequence+i. Ignored when ProducerID <= 0.
	BaseSequence int32
}

// idempotent reports whether the options describe an idempotent batch.
func (o BatchOptions) idempotent() bool { return o.ProducerID > 0 }
