package segment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// spec describes a test batch.
type spec struct {
	records   int
	valueSize int
	firstTs   int64
	maxTs     int64
	fill      byte
}

// makeBatch encodes a valid v2 batch with kmsg.
func makeBatch(sp spec) []byte {
	if sp.records == 0 {
		sp.records = 1
	}
	if sp.maxTs < sp.firstTs {
		sp.maxTs = sp.firstTs
	}
	value := bytes.Repeat([]byte{sp.fill}, sp.valueSize)
	var recs []byte
	for i := 0; i < sp.records; i++ {
		r := kmsg.Record{OffsetDelta: int32(i), Value: value, Key: []byte{byte(i)}}
		if i == sp.records-1 {
			r.TimestampDelta64 = sp.maxTs - sp.firstTs
		}
		r.Length = int32(len(r.AppendTo(nil)) - 1) // the length varint of 0 is one byte
		recs = r.AppendTo(recs)
	}
	rb := kmsg.RecordBatch{
		PartitionLeaderEpoch: 7, Magic: 2, LastOffsetDelta: int32(sp.records - 1),
		FirstTimestamp: sp.firstTs, MaxTimestamp: sp.maxTs,
		ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1,
		NumRecords: int32(sp.records), Records: recs,
	}
	b := rb.AppendTo(nil)
	binary.BigEndian.PutUint32(b[offBatchLength:], uint32(len(b)-batchLengthOverhead))
	binary.BigEndian.PutUint32(b[offCRC:], crc32.Checksum(b[offAttributes:], castagnoli))
	return b
}

// testConfig is a config with small sizes so that tests roll segments and
// write index entries quickly.
func testConfig(t testing.TB) Config {
	cfg := DefaultConfig()
	cfg.MaxSegmentBytes = 8 << 10
	cfg.IndexIntervalBytes = 256
	cfg.MaxIndexBytes = 4 << 10
	cfg.MaxBatchBytes = 64 << 10
	cfg.Fsync = FsyncNever
	cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return cfg
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// openLog opens a log that is closed when the test ends.
func openLog(t testing.TB, dir string, cfg Config) *Log {
	t.Helper()
	l, err := Open(dir, cfg)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// appendBatches appends one batch per spec and returns copies of the stored
// bytes (base offsets set).
func appendBatches(t testing.TB, l *Log, specs ...spec) [][]byte {
	t.Helper()
	var out [][]byte
	for _, sp := range specs {
		b := makeBatch(sp)
		want := l.HighWatermark()
		if l.cfg.Fsync == FsyncAlways {
			want = -1 // concurrent appenders may take offsets first
		}
		base, err := l.Append(b)
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		stored(b, base)
		if want >= 0 && base != want {
			t.Fatalf("Append: base %d, want %d", base, want)
		}
		out = append(out, b)
	}
	return out
}

// specs returns n batch specs with increasing timestamps.
func specs(n, records, valueSize int) []spec {
	out := make([]spec, n)
	for i := range out {
		out[i] = spec{records: records, valueSize: valueSize, firstTs: int64(1000 + 10*i), maxTs: int64(1005 + 10*i), fill: byte(i)}
	}
	return out
}

// splitBatches cuts b into batches by their length fields.
func splitBatches(t testing.TB, b []byte) [][]byte {
	t.Helper()
	var out [][]byte
	for len(b) > 0 {
		if len(b) < BatchHeaderSize {
			t.Fatalf("trailing %d bytes", len(b))
		}
		n := int(batchSizeAt(b))
		if n > len(b) {
			t.Fatalf("batch of %d bytes, %d left", n, len(b))
		}
		out = append(out, b[:n])
		b = b[n:]
	}
	return out
}

// readAll reads the whole log in small reads and returns its batches,
// checking every batch with CheckBatch and continuity.
func readAll(t testing.TB, l *Log) [][]byte {
	t.Helper()
	var out [][]byte
	off := l.StartOffset()
	for off < l.HighWatermark() {
		b, err := l.Read(off, 1)
		if err != nil {
			t.Fatalf("Read(%d): %v", off, err)
		}
		bs := splitBatches(t, b)
		if len(bs) != 1 {
			t.Fatalf("Read(%d, 1) returned %d batches", off, len(bs))
		}
		h := checkValid(t, bs[0])
		if h.BaseOffset != off {
			t.Fatalf("Read(%d): batch base %d", off, h.BaseOffset)
		}
		out = append(out, bs[0])
		off = h.NextOffset()
	}
	return out
}

func checkValid(t testing.TB, b []byte) BatchHeader {
	t.Helper()
	h, err := checkBatch(b, 0)
	if err != nil {
		t.Fatalf("stored batch invalid: %v", err)
	}
	var rb kmsg.RecordBatch
	if err := rb.ReadFrom(b); err != nil {
		t.Fatalf("kmsg cannot decode stored batch: %v", err)
	}
	return h
}

// walkBatches checks that b is whole valid batches starting at offset off,
// contiguous, and returns the offset after them. Safe in any goroutine.
func walkBatches(b []byte, off int64) (int64, error) {
	for len(b) > 0 {
		if len(b) < BatchHeaderSize {
			return off, fmt.Errorf("trailing %d bytes", len(b))
		}
		n := int(batchSizeAt(b))
		if n > len(b) || n < BatchHeaderSize {
			return off, fmt.Errorf("batch of %d bytes, %d left", n, len(b))
		}
		h, err := checkBatch(b[:n], 0)
		if err != nil {
			return off, err
		}
		if h.BaseOffset != off {
			return off, fmt.Errorf("batch base %d, want %d", h.BaseOffset, off)
		}
		var rb kmsg.RecordBatch
		if err := rb.ReadFrom(b[:n]); err != nil {
			return off, fmt.Errorf("kmsg: %w", err)
		}
		off = h.NextOffset()
		b = b[n:]
	}
	return off, nil
}

func equalBatches(t testing.TB, got, want [][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d batches, want %d", len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("batch %d differs", i)
		}
	}
}

// crash drops l as a killed process would: no final index trimming, no
// truncation of anything; what was written stays in the files.
func crash(l *Log) {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.closing = true
		l.closed.Store(true)
		l.cond.Broadcast()
		l.mu.Unlock()
		close(l.closedCh)
		close(l.stop)
		l.wg.Wait()
		l.syncMu.Lock()
		defer l.syncMu.Unlock()
		for _, s := range l.segs {
			s.release()
		}
		l.segs = nil
		l.view.Store(&[]*segment{})
		l.dirLock.Close()
	})
}

// copyDir copies the regular files of src into a new temporary directory.
func copyDir(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		copyFile(t, filepath.Join(src, e.Name()), filepath.Join(dst, e.Name()))
	}
	return dst
}

func copyFile(t testing.TB, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

func fileSize(t testing.TB, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

func logFile(dir string, base int64) string { return segmentStem(dir, base) + logSuffix }

// fakeClock is a settable clock for age rolls and retention.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.UnixMilli(1_700_000_000_000)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func isCorrupt(err error) (*CorruptError, bool) {
	var ce *CorruptError
	ok := errors.As(err, &ce)
	return ce, ok && errors.Is(err, ErrCorrupt)
}

// stored writes into b the base offset Append gave it, so that b holds
// the bytes the log holds whether or not Append modified the caller's
// slice.
func stored(b []byte, base int64) {
	if base >= 0 {
		binary.BigEndian.PutUint64(b[offBaseOffset:], uint64(base))
	}
}
