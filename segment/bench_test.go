package segment

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkAppend appends batches of 128-byte records under FsyncAlways from
// one or eight goroutines: every Append returns after its fsync.
func BenchmarkAppend(b *testing.B) {
	for _, records := range []int{100, 1000} {
		for _, appenders := range []int{1, 8} {
			b.Run(fmt.Sprintf("batch=%d/appenders=%d", records, appenders), func(b *testing.B) {
				benchAppend(b, records, appenders)
			})
		}
	}
}

func benchAppend(b *testing.B, records, appenders int) {
	cfg := DefaultConfig()
	l, err := Open(b.TempDir(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	batches := make([][]byte, appenders)
	for i := range batches {
		batches[i] = makeBatch(spec{records: records, valueSize: 128, firstTs: 1, maxTs: 2})
	}
	b.SetBytes(int64(len(batches[0])))
	b.ReportAllocs()
	b.ResetTimer()
	var next atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < appenders; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				if _, err := l.Append(batches[g]); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)*float64(records)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(b.N)/float64(max(l.fsyncs.Load(), 1)), "batches/fsync")
}

// BenchmarkRead reads a 128 MiB log from the page cache in reads of up to
// 1 MiB, reusing the buffer.
func BenchmarkRead(b *testing.B) {
	for _, records := range []int{100, 1000} {
		b.Run(fmt.Sprintf("batch=%d/max=1MiB", records), func(b *testing.B) {
			benchRead(b, records, 1<<20)
		})
	}
}

func benchRead(b *testing.B, records, maxBytes int) {
	cfg := DefaultConfig()
	cfg.Fsync = FsyncNever
	l, err := Open(b.TempDir(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	batch := makeBatch(spec{records: records, valueSize: 128, firstTs: 1, maxTs: 2})
	perRead := maxBytes / len(batch) // every read returns this many batches
	for l.Size() < 128<<20 || l.HighWatermark()%int64(perRead*records) != 0 {
		if _, err := l.Append(batch); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(perRead * len(batch)))
	b.ReportAllocs()
	buf := make([]byte, 0, maxBytes)
	var off int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if off == l.HighWatermark() {
			off = 0
		}
		buf, err = l.ReadAppend(buf[:0], off, maxBytes)
		if err != nil {
			b.Fatal(err)
		}
		if len(buf) != perRead*len(batch) {
			b.Fatalf("read %d bytes, want %d", len(buf), perRead*len(batch))
		}
		off += int64(perRead * records)
	}
}

var (
	sealedOnce sync.Once
	sealedDir  string
	sealedErr  error
)

// manySegments returns a directory holding a log of n segments, each a copy
// of a real 8-batch segment written and closed by Log (indexes included)
// with its base offsets rewritten. It is built once per test binary.
func manySegments(tb testing.TB, n int) string {
	sealedOnce.Do(func() { sealedDir, sealedErr = buildManySegments(n) })
	if sealedErr != nil {
		tb.Fatal(sealedErr)
	}
	return sealedDir
}

func buildManySegments(n int) (string, error) {
	dir, err := os.MkdirTemp("", "segment-many-")
	if err != nil {
		return "", err
	}
	tmpl := filepath.Join(dir, "template")
	cfg := manyConfig()
	l, err := Open(tmpl, cfg)
	if err != nil {
		return "", err
	}
	for _, sp := range specs(8, 4, 100) {
		if _, err := l.Append(makeBatch(sp)); err != nil {
			return "", err
		}
	}
	per := l.HighWatermark()
	if err := l.Close(); err != nil {
		return "", err
	}
	read := func(suffix string) ([]byte, error) { return os.ReadFile(segmentStem(tmpl, 0) + suffix) }
	lg, err := read(logSuffix)
	if err != nil {
		return "", err
	}
	idx, _ := read(indexSuffix)
	tidx, _ := read(timeIndexSuffix)
	logDir := filepath.Join(dir, "log")
	if err := os.Mkdir(logDir, 0o755); err != nil {
		return "", err
	}
	for i := 0; i < n; i++ {
		base := int64(i) * per
		next := base // rewrite the base offsets (outside the CRC)
		for pos := 0; pos < len(lg); pos += int(batchSizeAt(lg[pos:])) {
			binary.BigEndian.PutUint64(lg[pos:], uint64(next))
			next += int64(parseHeader(lg[pos:]).LastOffsetDelta) + 1
		}
		stem := segmentStem(logDir, base)
		for suffix, data := range map[string][]byte{logSuffix: lg, indexSuffix: idx, timeIndexSuffix: tidx} {
			if err := os.WriteFile(stem+suffix, data, 0o644); err != nil {
				return "", err
			}
		}
	}
	return logDir, nil
}

func manyConfig() Config {
	cfg := DefaultConfig()
	cfg.IndexIntervalBytes = 512
	cfg.Fsync = FsyncNever
	return cfg
}

// BenchmarkOpen1000Segments opens (and closes) a log of 1,000 segments.
func BenchmarkOpen1000Segments(b *testing.B) {
	dir := manySegments(b, 1000)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		l, err := Open(dir, manyConfig())
		if err != nil {
			b.Fatal(err)
		}
		if len(l.Segments()) != 1000 {
			b.Fatalf("%d segments", len(l.Segments()))
		}
		if err := l.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// TestOpen1000Segments checks that sealed segments are opened without a
// scan or an index rebuild: 1,000 of them open in well under a second.
func TestOpen1000Segments(t *testing.T) {
	t.Parallel()
	dir := manySegments(t, 1000)
	rec := &recordingHandler{}
	cfg := manyConfig()
	cfg.Logger = slog.New(rec)
	start := time.Now()
	l, err := Open(dir, cfg)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	t.Logf("opened 1000 segments in %v", took)
	if len(l.Segments()) != 1000 {
		t.Fatalf("%d segments", len(l.Segments()))
	}
	if len(rec.msgs) > 0 {
		t.Fatalf("opening clean segments logged %q", rec.msgs)
	}
	if took > time.Second {
		t.Fatalf("Open of 1000 segments took %v", took)
	}
	if err := l.Verify(); err != nil {
		t.Fatal(err)
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if sealedDir != "" {
		os.RemoveAll(filepath.Dir(sealedDir))
	}
	os.Exit(code)
}
