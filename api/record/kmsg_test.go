package record

import (
	"bytes"
	stdgzip "compress/gzip"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/snappy/xerial"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// franz-go's kmsg is the oracle: what AppendBatch writes must read back
// with kmsg, and what kmsg writes (compressed with independent encoders)
// must read back with DecodeBatches.

// oracleDecompress decompresses with the reference libraries, not with
// this package's code.
func oracleDecompress(t *testing.T, c Compression, b []byte) []byte {
	t.Helper()
	var out []byte
	var err error
	switch c {
	case NoCompression:
		return b
	case Gzip:
		var r *stdgzip.Reader
		if r, err = stdgzip.NewReader(bytes.NewReader(b)); err == nil {
			out, err = io.ReadAll(r)
		}
	case Snappy:
		out, err = xerial.Decode(b)
	case LZ4:
		out, err = io.ReadAll(lz4.NewReader(bytes.NewReader(b)))
	case Zstd:
		var d *zstd.Decoder
		if d, err = zstd.NewReader(nil); err == nil {
			out, err = d.DecodeAll(b, nil)
			d.Close()
		}
	}
	if err != nil {
		t.Fatalf("oracle %s decompress: %v", c, err)
	}
	return out
}

// oracleCompress compresses with the reference libraries; snappy uses the
// xerial framing Java clients write, so that path of the decoder is
// exercised too.
func oracleCompress(t *testing.T, c Compression, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	switch c {
	case NoCompression:
		return b
	case Gzip:
		w := stdgzip.NewWriter(&buf)
		_, _ = w.Write(b)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	case Snappy:
		return xerial.Encode(nil, b)
	case LZ4:
		w := lz4.NewWriter(&buf)
		_, _ = w.Write(b)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	case Zstd:
		e, err := zstd.NewWriter(nil)
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		return e.EncodeAll(b, nil)
	}
	return buf.Bytes()
}

func TestKmsgReadsAppendBatch(t *testing.T) {
	t.Parallel()
	for _, c := range codecs {
		t.Run(c.String(), func(t *testing.T) {
			recs := testRecords(500, 60)
			opt := BatchOptions{Compression: c, ProducerID: 99, ProducerEpoch: 2, BaseSequence: 1000}
			b, err := AppendBatch(nil, recs, opt)
			if err != nil {
				t.Fatal(err)
			}
			var rb kmsg.RecordBatch
			if err := rb.ReadFrom(b); err != nil {
				t.Fatalf("kmsg: %v", err)
			}
			if rb.Magic != 2 || rb.Attributes != int16(c) || rb.LastOffsetDelta != 499 || rb.NumRecords != 500 ||
				rb.ProducerID != 99 || rb.ProducerEpoch != 2 || rb.FirstSequence != 1000 || rb.PartitionLeaderEpoch != -1 ||
				int(rb.Length) != len(b)-12 {
				t.Fatalf("kmsg header: %+v", rb)
			}
			if rb.FirstTimestamp != recs[0].Timestamp.UnixMilli() {
				t.Fatalf("first timestamp %d, want %d", rb.FirstTimestamp, recs[0].Timestamp.UnixMilli())
			}
			var maxTs int64
			for _, r := range recs {
				maxTs = max(maxTs, r.Timestamp.UnixMilli())
			}
			if rb.MaxTimestamp != maxTs {
				t.Fatalf("max timestamp %d, want %d", rb.MaxTimestamp, maxTs)
			}
			// Recompute the CRC as kmsg encodes it.
			check := rb
			check.CRC = 0
			if re := check.AppendTo(nil); !bytes.Equal(re[21:], b[21:]) {
				t.Fatal("kmsg re-encodes the batch differently")
			}
			raw := oracleDecompress(t, c, rb.Records)
			for i := range recs {
				var kr kmsg.Record
				if err := kr.ReadFrom(raw); err != nil {
					t.Fatalf("record %d: kmsg: %v", i, err)
				}
				n := int(kr.Length) + varintLen(int64(kr.Length))
				raw = raw[n:]
				got := Record{
					Key: kr.Key, Value: kr.Value, Offset: int64(kr.OffsetDelta),
					Timestamp: time.UnixMilli(rb.FirstTimestamp + kr.TimestampDelta64),
				}
				for _, h := range kr.Headers {
					got.Headers = append(got.Headers, Header{Key: h.Key, Value: h.Value})
				}
				if err := sameRecord(recs[i], got, int64(i)); err != nil {
					t.Fatalf("record %d: %v", i, err)
				}
			}
			if len(raw) != 0 {
				t.Fatalf("%d bytes left after the records", len(raw))
			}
		})
	}
}

// kmsgBatch builds a batch with kmsg from recs, compressed with the
// reference encoders.
func kmsgBatch(t *testing.T, recs []Record, c Compression, base int64) []byte {
	t.Helper()
	first := recs[0].Timestamp.UnixMilli()
	var raw []byte
	maxTs := first
	for i, r := range recs {
		ts := r.Timestamp.UnixMilli()
		maxTs = max(maxTs, ts)
		kr := kmsg.Record{Key: r.Key, Value: r.Value, OffsetDelta: int32(i), TimestampDelta64: ts - first}
		for _, h := range r.Headers {
			kr.Headers = append(kr.Headers, kmsg.Header{Key: h.Key, Value: h.Value})
		}
		body := kr.AppendTo(nil)
		kr.Length = int32(len(body) - 1) // AppendTo wrote a zero length
		raw = append(raw, kr.AppendTo(nil)...)
	}
	rb := kmsg.RecordBatch{
		FirstOffset: base, PartitionLeaderEpoch: 5, Magic: 2, Attributes: int16(c),
		LastOffsetDelta: int32(len(recs) - 1), FirstTimestamp: first, MaxTimestamp: maxTs,
		ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1, NumRecords: int32(len(recs)),
		Records: oracleCompress(t, c, raw),
	}
	rb.Length = int32(49 + len(rb.Records))
	b := rb.AppendTo(nil)
	refreshCRC(b)
	return b
}

func TestDecodeReadsKmsg(t *testing.T) {
	t.Parallel()
	for _, c := range codecs {
		t.Run(c.String(), func(t *testing.T) {
			recs1, recs2 := testRecords(300, 40), testRecords(7, 2000)
			b := kmsgBatch(t, recs1, c, 500)
			b = append(b, kmsgBatch(t, recs2, c, 800)...)
			got := decodeAll(t, b)
			if len(got) != len(recs1)+len(recs2) {
				t.Fatalf("decoded %d records, want %d", len(got), len(recs1)+len(recs2))
			}
			for i, r := range recs1 {
				if err := sameRecord(r, got[i], 500+int64(i)); err != nil {
					t.Fatalf("batch 1 record %d: %v", i, err)
				}
			}
			for i, r := range recs2 {
				if err := sameRecord(r, got[len(recs1)+i], 800+int64(i)); err != nil {
					t.Fatalf("batch 2 record %d: %v", i, err)
				}
			}
		})
	}
}

// TestSnappyRawBlock checks the raw block form that franz-go and this
// package write, as produced by the s2 package's snappy mode.
func TestSnappyRawBlock(t *testing.T) {
	t.Parallel()
	raw := []byte("some bytes some bytes some bytes")
	got, err := decompress(s2.EncodeSnappy(nil, raw), Snappy)
	if err != nil || !bytes.Equal(got, raw) {
		t.Fatalf("raw snappy: %q, %v", got, err)
	}
	got, err = decompress(xerial.Encode(nil, raw), Snappy)
	if err != nil || !bytes.Equal(got, raw) {
		t.Fatalf("xerial snappy: %q, %v", got, err)
	}
}

func ExampleAppendBatch() {
	recs := []Record{
		{Key: []byte("user-1"), Value: []byte("signed up"), Timestamp: time.UnixMilli(1000)},
		{Key: []byte("user-1"), Value: []byte("logged in"), Timestamp: time.UnixMilli(2000)},
	}
	b, err := AppendBatch(nil, recs, BatchOptions{Compression: Zstd})
	if err != nil {
		panic(err)
	}
	_ = DecodeBatches(b, func(r Record) bool {
		fmt.Printf("%d %s %s %d\n", r.Offset, r.Key, r.Value, r.Timestamp.UnixMilli())
		return true
	})
	// Output:
	// 0 user-1 signed up 1000
	// 1 user-1 logged in 2000
}
