package client

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/stratalog/strata/api/record"
	stratav1 "github.com/stratalog/strata/api/v1"
)

// storedBatches builds what a fetch returns: batches of n records each,
// with base offsets assigned from first.
func storedBatches(t *testing.T, first int64, sizes ...int) []byte {
	t.Helper()
	var b []byte
	off := first
	for _, n := range sizes {
		recs := make([]record.Record, n)
		for i := range recs {
			recs[i].Value = []byte{byte(i)}
			recs[i].Timestamp = t0
		}
		start := len(b)
		var err error
		if b, err = record.AppendBatch(b, recs, record.BatchOptions{Compression: record.LZ4}); err != nil {
			t.Fatal(err)
		}
		binary.BigEndian.PutUint64(b[start:], uint64(off))
		off += int64(n)
	}
	return b
}

func TestDecodeFetch(t *testing.T) {
	tp := TopicPartition{"t", 0}
	data := storedBatches(t, 100, 10, 10) // offsets 100..119
	// The first batch starts before the offset asked for.
	fp, next, err := decodeFetch(tp, 105, &stratav1.FetchResponse{Records: data, HighWatermark: 120})
	if err != nil || fp == nil || len(fp.Records) != 15 || fp.Records[0].Offset != 105 || next != 120 || fp.HighWatermark != 120 {
		t.Fatalf("records %d from %d, next %d, err %v", len(fp.Records), fp.Records[0].Offset, next, err)
	}
	// A fetch cut in the middle of its last batch.
	fp, next, err = decodeFetch(tp, 100, &stratav1.FetchResponse{Records: data[:len(data)-3]})
	if err != nil || len(fp.Records) != 10 || next != 110 {
		t.Fatalf("cut fetch: %d records, next %d, %v", len(fp.Records), next, err)
	}
	// Nothing new (a long poll that timed out).
	if fp, next, err = decodeFetch(tp, 120, &stratav1.FetchResponse{}); fp != nil || next != 120 || err != nil {
		t.Fatalf("empty fetch: %v %d %v", fp, next, err)
	}
	// Corruption in the second batch: the first batch's records come back
	// with the error, and the next offset is where the bad batch starts.
	bad := append([]byte(nil), data...)
	bad[len(bad)-1] ^= 0xff
	fp, next, err = decodeFetch(tp, 100, &stratav1.FetchResponse{Records: bad})
	if !errors.Is(err, record.ErrChecksum) || fp == nil || len(fp.Records) != 10 || next != 110 {
		t.Fatalf("corrupt fetch: %v, next %d, err %v", fp, next, err)
	}
}
