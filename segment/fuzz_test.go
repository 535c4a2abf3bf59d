package segment

import (
	"bytes"
	"hash/crc32"
	"log/slog"
	"os"
	"runtime"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// FuzzParseBatch checks ParseBatchHeader and CheckBatch against kmsg's
// decoder on arbitrary bytes.
func FuzzParseBatch(f *testing.F) {
	f.Add(makeBatch(spec{records: 1}))
	f.Add(makeBatch(spec{records: 3, valueSize: 10, firstTs: 5, maxTs: 9}))
	f.Add(make([]byte, BatchHeaderSize))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, perr := ParseBatchHeader(b)
		cerr := CheckBatch(b, 1<<20)
		var rb kmsg.RecordBatch
		kerr := rb.ReadFrom(b)
		if perr == nil && (len(b) < BatchHeaderSize || h.Magic != 2) {
			t.Fatalf("ParseBatchHeader accepted %d bytes with magic %d", len(b), h.Magic)
		}
		if kerr == nil && rb.Magic == 2 {
			if perr != nil {
				t.Fatalf("kmsg decodes a v2 batch ParseBatchHeader rejects: %v", perr)
			}
			want := BatchHeader{
				BaseOffset: rb.FirstOffset, BatchLength: rb.Length, PartitionLeaderEpoch: rb.PartitionLeaderEpoch,
				Magic: rb.Magic, CRC: uint32(rb.CRC), Attributes: rb.Attributes, LastOffsetDelta: rb.LastOffsetDelta,
				FirstTimestamp: rb.FirstTimestamp, MaxTimestamp: rb.MaxTimestamp, ProducerID: rb.ProducerID,
				ProducerEpoch: rb.ProducerEpoch, BaseSequence: rb.FirstSequence, RecordCount: rb.NumRecords,
			}
			if h != want {
				t.Fatalf("header %+v, kmsg %+v", h, want)
			}
		}
		if cerr != nil {
			return
		}
		// CheckBatch accepted: kmsg must decode exactly this batch, with the
		// CRC and counts CheckBatch claims.
		if kerr != nil {
			t.Fatalf("CheckBatch accepted what kmsg cannot decode: %v", kerr)
		}
		if h.Size() != len(b) || len(rb.Records) != len(b)-BatchHeaderSize {
			t.Fatalf("size %d, records %d, for %d bytes", h.Size(), len(rb.Records), len(b))
		}
		if crc32.Checksum(b[offAttributes:], castagnoli) != uint32(rb.CRC) {
			t.Fatal("CheckBatch accepted a bad CRC")
		}
		if rb.NumRecords != rb.LastOffsetDelta+1 || rb.NumRecords < 1 || rb.Attributes&7 > 4 {
			t.Fatalf("CheckBatch accepted count %d delta %d attributes %#x", rb.NumRecords, rb.LastOffsetDelta, rb.Attributes)
		}
	})
}

// fuzzConfig keeps fuzzed logs small: whatever the lengths on disk say, no
// allocation may exceed about MaxBatchBytes + scanChunk.
func fuzzConfig() Config {
	cfg := DefaultConfig()
	cfg.MaxSegmentBytes = 1 << 20
	cfg.MaxBatchBytes = 4096
	cfg.MaxIndexBytes = 4096
	cfg.IndexIntervalBytes = 64
	cfg.Fsync = FsyncNever
	cfg.Logger = slog.New(slog.DiscardHandler)
	return cfg
}

// FuzzRecover opens arbitrary bytes as the active segment (.log, .index,
// .timeindex). Open must not fail or panic or allocate much; what it keeps
// must be a prefix of the file made of valid contiguous batches; and the log
// must take appends and reopen the same.
func FuzzRecover(f *testing.F) {
	for _, seed := range recoverSeeds(f) {
		f.Add(seed[0], seed[1], seed[2])
	}
	f.Fuzz(func(t *testing.T, logData, idxData, timeData []byte) {
		dir := t.TempDir()
		stem := segmentStem(dir, 0)
		for suffix, data := range map[string][]byte{logSuffix: logData, indexSuffix: idxData, timeIndexSuffix: timeData} {
			if err := os.WriteFile(stem+suffix, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		cfg := fuzzConfig()
		clean := looksClean(t, stem, int64(len(logData)))
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		l, err := Open(dir, cfg)
		runtime.ReadMemStats(&after)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer l.Close()
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20+4*uint64(len(logData)) {
			t.Fatalf("Open allocated %d bytes for a %d-byte log", grew, len(logData))
		}
		kept, err := os.ReadFile(stem + logSuffix)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(logData, kept) || int64(len(kept)) != l.Size() {
			t.Fatalf("kept %d bytes that are not a prefix of the %d given (Size %d)", len(kept), len(logData), l.Size())
		}
		got, rerr := l.Read(0, 1<<30)
		if rerr == nil {
			if next, err := walkBatches(got, 0); err != nil || next != l.HighWatermark() || !bytes.Equal(got, kept) {
				t.Fatalf("read back %d bytes up to offset %d (hwm %d): %v", len(got), next, l.HighWatermark(), err)
			}
		}
		verr := l.Verify()
		_, terr := l.OffsetForTime(0)
		for _, err := range []error{rerr, verr, terr} {
			// After a crash (index files not cut to their entries) the whole
			// segment is verified: nothing corrupt may remain. Index files cut
			// as Close leaves them vouch for the bytes before their last
			// entry, like a sealed segment's; corruption there is reported
			// when read, never returned as data.
			if _, ok := isCorrupt(err); err != nil && (!ok || !clean) {
				t.Fatalf("after recovery (clean index: %v): %v", clean, err)
			}
		}
		if clean && rerr != nil {
			return // the log is as corrupt as the input claims; appending after it is not the point
		}
		b := makeBatch(spec{records: 2, valueSize: 5})
		base, err := l.Append(b)
		if err != nil || base != l.HighWatermark()-2 {
			t.Fatalf("Append = %d, %v", base, err)
		}
		stored(b, base)
		hwm := l.HighWatermark()
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		l, err = Open(dir, cfg)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		if l.HighWatermark() != hwm {
			t.Fatalf("reopen: hwm %d, want %d", l.HighWatermark(), hwm)
		}
		if again, err := l.Read(0, 1<<30); err != nil || !bytes.Equal(again, append(kept, b...)) {
			t.Fatalf("reopen: read back differs: %v", err)
		}
	})
}

// looksClean tells whether the index files at stem are what Close leaves:
// whole valid entries and nothing else. Recovery then trusts them.
func looksClean(t *testing.T, stem string, logSize int64) bool {
	x, _, err := openIndex(stem, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer x.close()
	return x.sizesMatch(x.validPrefix(x.cap, logSize))
}

// recoverSeeds builds (log, index, timeindex) triples: a valid segment and
// damaged copies of it.
func recoverSeeds(tb testing.TB) [][3][]byte {
	dir := tb.(interface{ TempDir() string }).TempDir()
	cfg := fuzzConfig()
	l, err := Open(dir, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	for i, sp := range specs(12, 2, 20) {
		sp.records = 1 + i%3
		if _, err := l.Append(makeBatch(sp)); err != nil {
			tb.Fatal(err)
		}
	}
	crash(l)
	read := func(suffix string) []byte {
		b, err := os.ReadFile(segmentStem(dir, 0) + suffix)
		if err != nil {
			tb.Fatal(err)
		}
		return b
	}
	lg, idx, tidx := read(logSuffix), read(indexSuffix), read(timeIndexSuffix)
	idx, tidx = idx[:64], tidx[:96] // the preallocated zeros add nothing
	flipped := bytes.Clone(lg)
	flipped[len(flipped)-10] ^= 0x40
	return [][3][]byte{
		{lg, idx, tidx},
		{lg[:len(lg)-7], idx, tidx},
		{flipped, idx, tidx},
		{append(bytes.Clone(lg), make([]byte, 100)...), nil, nil},
		{lg, tidx, idx},
		{bytes.Repeat([]byte{0xff}, 200), idx, tidx},
		{nil, nil, nil},
	}
}
