package record

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

var writeSeeds = flag.Bool("write-fuzz-seeds", false, "rewrite testdata/fuzz/FuzzDecodeBatches")

// FuzzDecodeBatches feeds arbitrary bytes to the decoder. With fixCRC the
// CRCs are recomputed first, so mutations reach the record parser and the
// decompressors instead of stopping at the checksum. The decoder must not
// panic, must wrap one of its sentinels on error, must give offsets that
// grow, and what it decodes must survive a re-encode.
func FuzzDecodeBatches(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, fixCRC bool) {
		if fixCRC {
			refreshCRC(data)
		}
		var recs []Record
		last := int64(-1 << 63)
		err := DecodeBatches(data, func(r Record) bool {
			if r.Offset < last {
				t.Fatalf("offset %d after %d", r.Offset, last)
			}
			last = r.Offset
			recs = append(recs, r)
			return true
		})
		if err != nil && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrChecksum) {
			t.Fatalf("error %v wraps no sentinel", err)
		}
		checkAppendRecords(t, data, recs, err)
		if len(recs) == 0 {
			return
		}
		b, err := AppendBatch(nil, recs, BatchOptions{})
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		i := 0
		if err := DecodeBatches(b, func(r Record) bool {
			want := recs[i]
			if !bytes.Equal(r.Key, want.Key) || !bytes.Equal(r.Value, want.Value) ||
				len(r.Headers) != len(want.Headers) || r.Timestamp.UnixMilli() != want.Timestamp.UnixMilli() {
				t.Fatalf("record %d changed in a re-encode", i)
			}
			i++
			return true
		}); err != nil || i != len(recs) {
			t.Fatalf("re-decode: %d of %d records, %v", i, len(recs), err)
		}
	})
}

// TestWriteFuzzSeeds regenerates the seed corpus when run with
// -write-fuzz-seeds: a batch per codec, concatenations, a partial tail,
// an idempotent batch with headers, and a few broken ones.
func TestWriteFuzzSeeds(t *testing.T) {
	t.Parallel()
	if !*writeSeeds {
		t.Skip("run with -write-fuzz-seeds to rewrite the corpus")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzDecodeBatches")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	small := []Record{
		{Key: []byte("k"), Value: []byte("value"), Timestamp: time.UnixMilli(1000),
			Headers: []Header{{Key: "h", Value: []byte("v")}, {Key: "n"}}},
		{Value: []byte{}, Timestamp: time.UnixMilli(900)},
		{Key: []byte{}, Timestamp: time.UnixMilli(1100)},
	}
	seeds := map[string][]byte{}
	for _, c := range codecs {
		b, err := AppendBatch(nil, small, BatchOptions{Compression: c, ProducerID: 3, BaseSequence: 10})
		if err != nil {
			t.Fatal(err)
		}
		seeds["batch-"+c.String()] = b
	}
	two, _ := concatBatches(t, 2, 3, NoCompression)
	seeds["two-batches"] = two
	seeds["partial-tail"] = two[:len(two)-5]
	seeds["header-only"] = two[:BatchHeaderLen]
	seeds["empty"] = nil
	for name, b := range seeds {
		for _, fix := range []bool{false, true} {
			content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\nbool(%v)\n", b, fix)
			file := fmt.Sprintf("%s-fixcrc-%v", name, fix)
			if err := os.WriteFile(filepath.Join(dir, file), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// checkAppendRecords fails when AppendRecordsFrom does not give what
// DecodeBatches gave (recs and err), from the start of data and from the
// offset of its middle record.
func checkAppendRecords(t *testing.T, data []byte, recs []Record, err error) {
	t.Helper()
	got, next, gotErr := AppendRecordsFrom(nil, data, math.MinInt64)
	if (err == nil) != (gotErr == nil) || (err != nil && err.Error() != gotErr.Error()) {
		t.Fatalf("AppendRecordsFrom: error %v, DecodeBatches says %v", gotErr, err)
	}
	if !slices.EqualFunc(got, recs, equalRecord) {
		t.Fatalf("AppendRecordsFrom: %d records, DecodeBatches gave %d, or they differ", len(got), len(recs))
	}
	if wantNext, _ := DecodeBatchesFrom(data, math.MinInt64, func(Record) bool { return true }); next != wantNext {
		t.Fatalf("AppendRecordsFrom: next %d, DecodeBatchesFrom says %d", next, wantNext)
	}
	from := int64(math.MinInt64)
	if len(recs) > 0 {
		from = recs[len(recs)/2].Offset
	}
	var want []Record
	wantNext, wantErr := DecodeBatchesFrom(data, from, func(r Record) bool { want = append(want, r); return true })
	got, next, gotErr = AppendRecordsFrom(make([]Record, 0, 1), data, from)
	if next != wantNext || (wantErr == nil) != (gotErr == nil) || !slices.EqualFunc(got, want, equalRecord) {
		t.Fatalf("AppendRecordsFrom at %d: %d records, next %d, %v; DecodeBatchesFrom: %d, %d, %v",
			from, len(got), next, gotErr, len(want), wantNext, wantErr)
	}
}

// equalRecord reports whether a and b hold the same fields, telling nil
// from empty keys and values.
func equalRecord(a, b Record) bool {
	return a.Offset == b.Offset && a.Timestamp.Equal(b.Timestamp) &&
		bytes.Equal(a.Key, b.Key) && (a.Key == nil) == (b.Key == nil) &&
		bytes.Equal(a.Value, b.Value) && (a.Value == nil) == (b.Value == nil) &&
		slices.EqualFunc(a.Headers, b.Headers, func(x, y Header) bool {
			return x.Key == y.Key && bytes.Equal(x.Value, y.Value) && (x.Value == nil) == (y.Value == nil)
		})
}
