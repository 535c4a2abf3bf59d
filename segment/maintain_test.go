package segment

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/wait"
)

func TestTruncate(t *testing.T) {
	t.Parallel()
	build := func(t *testing.T) (*Log, string, [][]byte) {
		dir := t.TempDir()
		l := openLog(t, dir, testConfig(t))
		return l, dir, appendBatches(t, l, specs(40, 3, 200)...) // batch i at offset 3i
	}
	for _, tc := range []struct {
		name    string
		offset  int64
		err     error
		batches int // kept
	}{
		{"at hwm", 120, nil, 40},
		{"last batch", 117, nil, 39},
		{"middle", 60, nil, 20},
		{"first", 0, nil, 0},
		{"inside a batch", 61, ErrNotBatchBoundary, 40},
		{"past hwm", 121, ErrOffsetOutOfRange, 40},
		{"negative", -1, ErrOffsetOutOfRange, 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, dir, want := build(t)
			err := l.Truncate(tc.offset)
			if !errors.Is(err, tc.err) {
				t.Fatalf("Truncate(%d) = %v, want %v", tc.offset, err, tc.err)
			}
			want = want[:tc.batches]
			if l.HighWatermark() != int64(3*tc.batches) {
				t.Fatalf("HWM %d", l.HighWatermark())
			}
			equalBatches(t, readAll(t, l), want)
			if tc.err == nil {
				if off, _ := l.OffsetForTime(1 << 40); off != l.HighWatermark() {
					t.Fatalf("OffsetForTime after truncate: %d", off)
				}
				want = append(want, appendBatches(t, l, specs(15, 3, 200)...)...)
				equalBatches(t, readAll(t, l), want)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l = openLog(t, dir, testConfig(t))
			equalBatches(t, readAll(t, l), want)
			if err := l.Verify(); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("deletes later segments", func(t *testing.T) {
		l, dir, _ := build(t)
		if err := l.Truncate(30); err != nil {
			t.Fatal(err)
		}
		ents, _ := os.ReadDir(dir)
		if segs := l.Segments(); len(segs) != 1 || len(ents) != 3 || segs[0].Sealed {
			t.Fatalf("after truncate into the first segment: %+v, %d files", segs, len(ents))
		}
	})
}

func TestRetention(t *testing.T) {
	t.Parallel()
	t.Run("age", func(t *testing.T) {
		clock := newFakeClock()
		cfg := testConfig(t)
		cfg.Now = clock.Now
		cfg.RetentionAge = time.Hour
		l := openLog(t, t.TempDir(), cfg)
		now := clock.Now().UnixMilli()
		var sp []spec
		for i := 0; i < 40; i++ { // timestamps one minute apart, the newest now
			ts := now - int64(39-i)*time.Minute.Milliseconds()
			sp = append(sp, spec{records: 1, valueSize: 700, firstTs: ts, maxTs: ts})
		}
		appendBatches(t, l, sp...)
		if n, err := l.EnforceRetention(); n != 0 || err != nil {
			t.Fatalf("nothing old yet: %d, %v", n, err)
		}
		clock.Advance(time.Hour + 20*time.Minute)
		n, err := l.EnforceRetention()
		if err != nil || n == 0 {
			t.Fatalf("EnforceRetention = %d, %v", n, err)
		}
		cutoff := clock.Now().Add(-time.Hour).UnixMilli()
		segs := l.Segments()
		if segs[0].BaseOffset != l.StartOffset() {
			t.Fatalf("start %d, first segment %d", l.StartOffset(), segs[0].BaseOffset)
		}
		// Everything deleted was old; the first remaining segment is not.
		if first := sp[l.StartOffset()]; first.maxTs < cutoff-time.Hour.Milliseconds() {
			t.Fatalf("kept too much")
		}
		if segs[0].MaxTimestamp < cutoff && segs[0].Sealed {
			t.Fatalf("kept expired segment %+v", segs[0])
		}
		clock.Advance(100 * time.Hour)
		if _, err := l.EnforceRetention(); err != nil {
			t.Fatal(err)
		}
		if segs := l.Segments(); len(segs) != 1 || segs[0].Sealed {
			t.Fatalf("the active segment must stay: %+v", segs)
		}
		if _, err := l.Read(l.StartOffset()-1, 1); !errors.Is(err, ErrOffsetOutOfRange) {
			t.Fatalf("Read below start = %v", err)
		}
	})
	t.Run("bytes", func(t *testing.T) {
		cfg := testConfig(t)
		l := openLog(t, t.TempDir(), cfg)
		want := appendBatches(t, l, specs(60, 1, 700)...)
		before := len(l.Segments())
		l.SetRetention(0, 3*cfg.MaxSegmentBytes)
		n, err := l.EnforceRetention()
		if err != nil || n == 0 || len(l.Segments()) != before-n {
			t.Fatalf("EnforceRetention = %d, %v", n, err)
		}
		if l.Size() > 3*cfg.MaxSegmentBytes {
			t.Fatalf("size %d above limit", l.Size())
		}
		if l.Size()+cfg.MaxSegmentBytes <= 3*cfg.MaxSegmentBytes {
			t.Fatalf("deleted too much: size %d", l.Size())
		}
		got := readAll(t, l)
		equalBatches(t, got, want[len(want)-len(got):])
	})
}

// TestTruncateFailsPendingAppends: under FsyncAlways an Append whose batch a
// Truncate removes before its fsync fails with ErrTruncated, and its offsets
// are given to the next batch.
func TestTruncateFailsPendingAppends(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.Fsync = FsyncAlways
	l := openLog(t, t.TempDir(), cfg)
	want := appendBatches(t, l, specs(3, 2, 10)...)
	l.syncMu.Lock() // no fsync round can run: the next Append stays pending
	done := make(chan error, 1)
	go func() {
		_, err := l.Append(makeBatch(spec{records: 5}))
		done <- err
	}()
	wait.For(t, 10*time.Second, "the pending batch to be written", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.next == 11
	})
	err := l.truncateSyncLocked(l.HighWatermark())
	l.syncMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, ErrTruncated) {
		t.Fatalf("pending Append = %v, want ErrTruncated", err)
	}
	more := appendBatches(t, l, spec{records: 1})
	if h, _ := ParseBatchHeader(more[0]); h.BaseOffset != 6 {
		t.Fatalf("next batch at %d, want 6", h.BaseOffset)
	}
	checkLog(t, l, append(want, more...))
}
