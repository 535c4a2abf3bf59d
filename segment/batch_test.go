package segment

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestParseBatchHeaderMatchesKmsg(t *testing.T) {
	t.Parallel()
	for _, sp := range []spec{
		{records: 1},
		{records: 3, valueSize: 10, firstTs: 5, maxTs: 9},
		{records: 100, valueSize: 128, firstTs: 1_700_000_000_000, maxTs: 1_700_000_000_999},
		{records: 2, firstTs: -1, maxTs: -1},
	} {
		b := makeBatch(sp)
		binary.BigEndian.PutUint64(b, 12345)
		h, err := ParseBatchHeader(b)
		if err != nil {
			t.Fatalf("ParseBatchHeader: %v", err)
		}
		var rb kmsg.RecordBatch
		if err := rb.ReadFrom(b); err != nil {
			t.Fatalf("kmsg: %v", err)
		}
		want := BatchHeader{
			BaseOffset: rb.FirstOffset, BatchLength: rb.Length, PartitionLeaderEpoch: rb.PartitionLeaderEpoch,
			Magic: rb.Magic, CRC: uint32(rb.CRC), Attributes: rb.Attributes, LastOffsetDelta: rb.LastOffsetDelta,
			FirstTimestamp: rb.FirstTimestamp, MaxTimestamp: rb.MaxTimestamp, ProducerID: rb.ProducerID,
			ProducerEpoch: rb.ProducerEpoch, BaseSequence: rb.FirstSequence, RecordCount: rb.NumRecords,
		}
		if h != want {
			t.Fatalf("header %+v, kmsg says %+v", h, want)
		}
		if h.Size() != len(b) || h.NextOffset() != 12345+int64(sp.records) {
			t.Fatalf("Size %d NextOffset %d", h.Size(), h.NextOffset())
		}
		if err := CheckBatch(b, len(b)); err != nil {
			t.Fatalf("CheckBatch: %v", err)
		}
	}
}

// mutate returns a copy of a valid batch changed by f, with the CRC fixed
// afterwards when fixCRC is set.
func mutate(f func(b []byte), fixCRC bool) []byte {
	b := makeBatch(spec{records: 3, valueSize: 20})
	f(b)
	if fixCRC && len(b) > offAttributes {
		binary.BigEndian.PutUint32(b[offCRC:], crc32.Checksum(b[offAttributes:], castagnoli))
	}
	return b
}

func badBatches() []struct {
	name  string
	batch []byte
	max   int
	want  error
} {
	valid := makeBatch(spec{records: 3, valueSize: 20})
	put32 := func(off int, v int32) func([]byte) {
		return func(b []byte) { binary.BigEndian.PutUint32(b[off:], uint32(v)) }
	}
	return []struct {
		name  string
		batch []byte
		max   int
		want  error
	}{
		{"empty", nil, 0, ErrInvalidBatch},
		{"short header", valid[:BatchHeaderSize-1], 0, ErrInvalidBatch},
		{"truncated batch", valid[:len(valid)-1], 0, ErrInvalidBatch},
		{"trailing byte", append(append([]byte{}, valid...), 0), 0, ErrInvalidBatch},
		{"length too small", mutate(put32(offBatchLength, 10), true), 0, ErrInvalidBatch},
		{"length negative", mutate(put32(offBatchLength, -1), true), 0, ErrInvalidBatch},
		{"magic 1", mutate(func(b []byte) { b[offMagic] = 1 }, true), 0, ErrInvalidBatch},
		{"magic 3", mutate(func(b []byte) { b[offMagic] = 3 }, true), 0, ErrInvalidBatch},
		{"bad crc", mutate(func(b []byte) { b[len(b)-1] ^= 1 }, false), 0, ErrInvalidBatch},
		{"bad crc field", mutate(func(b []byte) { b[offCRC] ^= 0x80 }, false), 0, ErrInvalidBatch},
		{"negative lastOffsetDelta", mutate(put32(offLastOffsetDelta, -1), true), 0, ErrInvalidBatch},
		{"count above delta", mutate(put32(offRecordCount, 4), true), 0, ErrInvalidBatch},
		{"count below delta", mutate(put32(offRecordCount, 2), true), 0, ErrInvalidBatch},
		{"zero records", mutate(func(b []byte) { put32(offRecordCount, 0)(b); put32(offLastOffsetDelta, -1)(b) }, true), 0, ErrInvalidBatch},
		{"huge count", mutate(func(b []byte) { put32(offRecordCount, 1<<30)(b); put32(offLastOffsetDelta, 1<<30-1)(b) }, true), 0, ErrInvalidBatch},
		{"unknown codec", mutate(func(b []byte) { b[offAttributes+1] |= 7 }, true), 0, ErrInvalidBatch},
		{"too large", valid, len(valid) - 1, ErrBatchTooLarge},
	}
}

func TestCheckBatch(t *testing.T) {
	t.Parallel()
	valid := makeBatch(spec{records: 3, valueSize: 20})
	if err := CheckBatch(valid, len(valid)); err != nil {
		t.Fatalf("valid batch: %v", err)
	}
	if err := CheckBatch(valid, 0); err != nil {
		t.Fatalf("valid batch, no limit: %v", err)
	}
	compressed := mutate(func(b []byte) { b[offAttributes+1] |= 4 }, true) // zstd: records are opaque
	if err := CheckBatch(compressed, 0); err != nil {
		t.Fatalf("zstd batch: %v", err)
	}
	for _, tc := range badBatches() {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckBatch(tc.batch, tc.max)
			if !errors.Is(err, tc.want) {
				t.Fatalf("CheckBatch = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestParseBatchHeaderErrors(t *testing.T) {
	t.Parallel()
	valid := makeBatch(spec{records: 1})
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"nil", nil},
		{"short", valid[:60]},
		{"magic 0", mutate(func(b []byte) { b[offMagic] = 0 }, false)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseBatchHeader(tc.b); !errors.Is(err, ErrInvalidBatch) {
				t.Fatalf("err = %v, want ErrInvalidBatch", err)
			}
		})
	}
}
