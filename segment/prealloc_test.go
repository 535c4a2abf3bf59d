package segment

import (
	"context"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/wait"
)

// preallocLog opens a FsyncAlways log with segments large enough to be
// zero-filled ahead, appends until a fill has happened, and returns it with
// what it holds.
func preallocLog(t *testing.T, dir string, rec *recordingHandler) (*Log, Config, [][]byte) {
	t.Helper()
	cfg := testConfig(t)
	cfg.Fsync = FsyncAlways
	cfg.MaxSegmentBytes = 3 * preallocChunk
	cfg.MaxBatchBytes = 1 << 20
	cfg.MaxIndexBytes = 64 << 10
	cfg.IndexIntervalBytes = 4096
	if rec != nil {
		cfg.Logger = slog.New(rec)
	}
	l := openLog(t, dir, cfg)
	want := appendBatches(t, l, specs(8, 100, 1000)...) // ~800 KiB
	path := logFile(dir, 0)
	wait.For(t, 10*time.Second, "the zero-fill ahead", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return !l.active.filling && l.active.alloc > l.active.size
	})
	if fileSize(t, path) <= l.Size() {
		t.Fatalf("file %d bytes, data %d: not zero-filled ahead", fileSize(t, path), l.Size())
	}
	return l, cfg, want
}

func TestPreallocation(t *testing.T) {
	t.Parallel()
	t.Run("close cuts the zeros", func(t *testing.T) {
		dir := t.TempDir()
		l, cfg, want := preallocLog(t, dir, nil)
		size := l.Size()
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if got := fileSize(t, logFile(dir, 0)); got != size {
			t.Fatalf("after Close the .log is %d bytes, data %d", got, size)
		}
		l = openLog(t, dir, cfg)
		checkLog(t, l, want)
	})
	t.Run("crash leaves zeros that recovery cuts", func(t *testing.T) {
		dir := t.TempDir()
		l, cfg, want := preallocLog(t, dir, nil)
		crash(l)
		rec := &recordingHandler{}
		cfg.Logger = slog.New(rec)
		l = openLog(t, dir, cfg)
		checkLog(t, l, want)
		if m := rec.find("zero-filled tail"); m == "" {
			t.Fatalf("zero tail not reported: %q", rec.msgs)
		}
		if got := fileSize(t, logFile(dir, 0)); got != l.Size() {
			t.Fatalf("after recovery the .log is %d bytes, data %d", got, l.Size())
		}
		more := appendBatches(t, l, specs(3, 10, 100)...)
		checkLog(t, l, append(want, more...))
	})
	t.Run("appends fill the zeros and roll", func(t *testing.T) {
		dir := t.TempDir()
		l, cfg, want := preallocLog(t, dir, nil)
		for len(l.Segments()) < 3 {
			want = append(want, appendBatches(t, l, specs(20, 100, 1000)...)...)
		}
		checkLog(t, l, want)
		segs := l.Segments()
		for _, s := range segs[:len(segs)-1] {
			if got := fileSize(t, logFile(dir, s.BaseOffset)); got != s.Size || s.Size > cfg.MaxSegmentBytes {
				t.Fatalf("sealed segment %d: file %d bytes, data %d", s.BaseOffset, got, s.Size)
			}
		}
		l.Close()
		l = openLog(t, dir, cfg)
		checkLog(t, l, want)
	})
	t.Run("truncate", func(t *testing.T) {
		dir := t.TempDir()
		l, cfg, want := preallocLog(t, dir, nil)
		h, _ := ParseBatchHeader(want[5])
		if err := l.Truncate(h.BaseOffset); err != nil {
			t.Fatal(err)
		}
		if got := fileSize(t, logFile(dir, 0)); got != l.Size() {
			t.Fatalf("after Truncate the .log is %d bytes, data %d", got, l.Size())
		}
		want = append(want[:5], appendBatches(t, l, specs(10, 100, 1000)...)...)
		checkLog(t, l, want)
		crash(l)
		l = openLog(t, dir, cfg)
		checkLog(t, l, want)
	})
	t.Run("cut inside the zeros", func(t *testing.T) {
		// A crash while zero-filling leaves a file cut anywhere in the zeros,
		// or zeros then a hole: all of it is the end of data.
		dir := t.TempDir()
		l, cfg, want := preallocLog(t, dir, nil)
		size := l.Size()
		crash(l)
		for _, cut := range []int64{size + 1, size + BatchHeaderSize - 1, size + BatchHeaderSize, size + 100000} {
			d := copyDir(t, dir)
			if err := os.Truncate(logFile(d, 0), cut); err != nil {
				t.Fatal(err)
			}
			l := openLog(t, d, cfg)
			checkLog(t, l, want)
			l.Close()
		}
	})
}

func TestPreallocationNotUnderOtherPolicies(t *testing.T) {
	t.Parallel()
	for _, policy := range []FsyncPolicy{FsyncNever, FsyncInterval} {
		t.Run(policy.String(), func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Fsync = policy
			cfg.MaxSegmentBytes = 3 * preallocChunk
			cfg.MaxBatchBytes = 1 << 20
			dir := t.TempDir()
			l := openLog(t, dir, cfg)
			appendBatches(t, l, specs(8, 100, 1000)...)
			if got := fileSize(t, logFile(dir, 0)); got != l.Size() {
				t.Fatalf(".log is %d bytes, data %d", got, l.Size())
			}
		})
	}
}

// TestPreallocationConcurrent appends from several goroutines across zero
// fills and rolls while readers follow the log.
func TestPreallocationConcurrent(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l, cfg, _ := preallocLog(t, dir, nil)
	const appenders = 4
	target := l.HighWatermark() + appenders*60*100
	var wg sync.WaitGroup
	for g := 0; g < appenders; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 60; i++ {
				if _, err := l.Append(makeBatch(spec{records: 100, valueSize: 1000, fill: byte(g)})); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var off int64
			var buf []byte
			for off < target {
				if err := l.Wait(context.Background(), off); err != nil {
					t.Error(err)
					return
				}
				var err error
				if buf, err = l.ReadAppend(buf[:0], off, 1<<20); err != nil {
					t.Errorf("Read(%d): %v", off, err)
					return
				}
				if off, err = walkBatches(buf, off); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if len(l.Segments()) < 2 {
		t.Fatalf("no roll: %+v", l.Segments())
	}
	want := readAll(t, l)
	crash(l)
	l = openLog(t, dir, cfg)
	checkLog(t, l, want)
}

// TestAppendWaitsForZeroFill holds a zero-fill open before it writes its
// zeros and appends across its start: the append must wait, or the zeros
// would land on its batch.
func TestAppendWaitsForZeroFill(t *testing.T) {
	dir := t.TempDir()
	l, _, want := preallocLog(t, dir, nil)
	started := make(chan int64, 1)
	release := make(chan struct{})
	zeroFill = func(s *segment, from, to int64) error {
		started <- from
		<-release
		return writeZeros(s, from, to)
	}
	defer func() { zeroFill = writeZeros }()
	var from int64
	for from == 0 { // append until the next fill starts
		want = append(want, appendBatches(t, l, specs(4, 100, 1000)...)...)
		select {
		case from = <-started:
		default:
		}
	}
	done := make(chan error, 1)
	go func() {
		var err error
		for l.Size() < from+(1<<20) && err == nil {
			var b [][]byte
			b, err = appendOrErr(l, spec{records: 100, valueSize: 1000})
			want = append(want, b...)
		}
		done <- err
	}()
	wait.For(t, 10*time.Second, "an append to wait for the fill, or to get past it", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.fillWaits > 0 || l.active.size > from
	})
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	checkLog(t, l, want)
}

func appendOrErr(l *Log, sp spec) ([][]byte, error) {
	b := makeBatch(sp)
	base, err := l.Append(b)
	stored(b, base)
	return [][]byte{b}, err
}

// With FittedIndexBytes a segment rolls because it is full, never because
// its indexes are: every sealed segment is within one batch of
// MaxSegmentBytes. With a quarter of that index size it rolls early, which
// shows the check can fail.
func TestFittedIndexBytes(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.MaxSegmentBytes = 16 << 10
	cfg.IndexIntervalBytes = 64 // every batch below gets an entry
	for _, tc := range []struct {
		name      string
		index     int
		wantRolls bool // rolls before the segment is full
	}{
		{"fitted", cfg.FittedIndexBytes(), false},
		{"quarter", cfg.FittedIndexBytes() / 4, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := cfg
			c.MaxIndexBytes = tc.index
			l := openLog(t, t.TempDir(), c)
			batch := int64(len(makeBatch(spec{records: 1, valueSize: 40})))
			appendBatches(t, l, specs(3*int(c.MaxSegmentBytes/batch), 1, 40)...)
			segs := l.Segments()
			early := false
			for _, s := range segs[:len(segs)-1] {
				if s.Size <= c.MaxSegmentBytes-batch {
					early = true
				}
			}
			if early != tc.wantRolls || len(segs) < 3 {
				t.Fatalf("index of %d bytes: %d segments, rolled early %v, want %v", tc.index, len(segs), early, tc.wantRolls)
			}
		})
	}
	if got := DefaultConfig().FittedIndexBytes(); got != 1576960 {
		t.Fatalf("fitted index of a 512 MiB segment: %d bytes, want 1576960 (131073 entries of 12 bytes, 4 KiB pages)", got)
	}
}
