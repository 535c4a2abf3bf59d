package segment

import (
	"errors"
	"path/filepath"
	"testing"
)

// Reset below the start offset (where retention has been) and above the
// high watermark leaves an empty log at that offset, which takes appends
// and reopens as such.
func TestReset(t *testing.T) {
	t.Parallel()
	for _, policy := range []FsyncPolicy{FsyncNever, FsyncAlways} {
		t.Run(policy.String(), func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Fsync = policy
			cfg.RetentionBytes = 16 << 10
			dir := t.TempDir()
			l := openLog(t, dir, cfg)
			appendBatches(t, l, specs(200, 2, 300)...)
			if _, err := l.EnforceRetention(); err != nil {
				t.Fatal(err)
			}
			start := l.StartOffset()
			if start < 20 {
				t.Fatalf("start offset %d: retention did not run", start)
			}
			if err := l.Truncate(start - 10); !errors.Is(err, ErrOffsetOutOfRange) {
				t.Fatalf("Truncate below the start offset: %v", err)
			}
			for _, to := range []int64{start - 10, l.HighWatermark() + 100} {
				if err := l.Reset(to); err != nil {
					t.Fatal(err)
				}
				if l.StartOffset() != to || l.HighWatermark() != to || len(l.Segments()) != 1 {
					t.Fatalf("after Reset(%d): start %d, hwm %d, %d segments", to, l.StartOffset(), l.HighWatermark(), len(l.Segments()))
				}
				if b, err := l.Read(to, 1); err != nil || len(b) != 0 {
					t.Fatalf("Read(%d) of an empty log: %d bytes, %v", to, len(b), err)
				}
				if _, err := l.Read(to-1, 1); !errors.Is(err, ErrOffsetOutOfRange) {
					t.Fatalf("Read(%d) below the start: %v", to-1, err)
				}
				more := appendBatches(t, l, specs(30, 2, 300)...)
				if h, _ := ParseBatchHeader(more[0]); h.BaseOffset != to {
					t.Fatalf("first append after Reset(%d) got %d", to, h.BaseOffset)
				}
				if got := readAll(t, l); len(got) != len(more) {
					t.Fatalf("read %d batches, want %d", len(got), len(more))
				}
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}
				names, _ := filepath.Glob(filepath.Join(dir, "*"))
				l = openLog(t, dir, cfg)
				if l.StartOffset() != to {
					t.Fatalf("reopened at %d, want %d (files %v)", l.StartOffset(), to, names)
				}
				checkLog(t, l, more)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if err := l.Reset(0); !errors.Is(err, ErrClosed) {
				t.Fatalf("Reset after Close: %v", err)
			}
			if err := openLog(t, t.TempDir(), cfg).Reset(-1); !errors.Is(err, ErrOffsetOutOfRange) {
				t.Fatalf("Reset(-1): %v", err)
			}
		})
	}
}
