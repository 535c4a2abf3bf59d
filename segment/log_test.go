package segment

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/wait"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig: %v", err)
	}
	for _, tc := range []struct {
		name string
		f    func(*Config)
	}{
		{"zero config", func(c *Config) { *c = Config{} }},
		{"small segment", func(c *Config) { c.MaxSegmentBytes = 100 }},
		{"segment above 4GiB", func(c *Config) { c.MaxSegmentBytes = 1 << 32 }},
		{"negative age", func(c *Config) { c.MaxSegmentAge = -1 }},
		{"zero interval", func(c *Config) { c.IndexIntervalBytes = 0 }},
		{"tiny index", func(c *Config) { c.MaxIndexBytes = 12 }},
		{"batch below header", func(c *Config) { c.MaxBatchBytes = 60 }},
		{"batch above 1GiB", func(c *Config) { c.MaxBatchBytes = 1<<30 + 1 }},
		{"negative retention age", func(c *Config) { c.RetentionAge = -time.Second }},
		{"negative retention bytes", func(c *Config) { c.RetentionBytes = -1 }},
		{"unknown policy", func(c *Config) { c.Fsync = 9 }},
		{"interval without period", func(c *Config) { c.Fsync = FsyncInterval; c.FsyncInterval = 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.f(&cfg)
			if err := cfg.Validate(); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Validate = %v, want ErrInvalidConfig", err)
			}
			if _, err := Open(t.TempDir(), cfg); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Open = %v, want ErrInvalidConfig", err)
			}
		})
	}
}

func TestOpenCreatesDirAndLocks(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "a", "b")
	l := openLog(t, dir, testConfig(t))
	if l.Dir() != dir || l.HighWatermark() != 0 || l.StartOffset() != 0 || l.Size() != 0 {
		t.Fatalf("new log: dir %q hwm %d start %d size %d", l.Dir(), l.HighWatermark(), l.StartOffset(), l.Size())
	}
	if _, err := os.Stat(logFile(dir, 0)); err != nil {
		t.Fatalf("first segment: %v", err)
	}
	if _, err := Open(dir, testConfig(t)); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
}

func TestAppendAssignsOffsetsAndReads(t *testing.T) {
	t.Parallel()
	l := openLog(t, t.TempDir(), testConfig(t))
	orig := makeBatch(spec{records: 5, valueSize: 3})
	b := bytes.Clone(orig)
	base, err := l.Append(b)
	if err != nil || base != 0 {
		t.Fatalf("Append = %d, %v", base, err)
	}
	stored(b, base)
	if !bytes.Equal(b[8:], orig[8:]) {
		t.Fatal("Append changed more than the base offset")
	}
	want := append([][]byte{b}, appendBatches(t, l, specs(50, 3, 100)...)...)
	if l.HighWatermark() != 5+150 {
		t.Fatalf("HWM %d", l.HighWatermark())
	}
	if len(l.Segments()) < 3 {
		t.Fatalf("expected rolls, got %d segments", len(l.Segments()))
	}
	equalBatches(t, readAll(t, l), want)

	var total int64
	for _, s := range l.Segments() {
		total += s.Size
	}
	if total != l.Size() {
		t.Fatalf("Size %d, segments sum %d", l.Size(), total)
	}
	// Every offset inside a batch reads from that batch.
	for i, bt := range want {
		h, _ := ParseBatchHeader(bt)
		for off := h.BaseOffset; off <= h.LastOffset(); off++ {
			got, err := l.Read(off, 0)
			if err != nil || !bytes.Equal(got, bt) {
				t.Fatalf("Read(%d) of batch %d: %v", off, i, err)
			}
		}
	}
}

func TestReadMaxBytes(t *testing.T) {
	t.Parallel()
	l := openLog(t, t.TempDir(), testConfig(t))
	want := appendBatches(t, l, specs(40, 2, 100)...)
	size := len(want[0]) // all batches have the same size
	for _, tc := range []struct {
		name     string
		from     int
		maxBytes int
		batches  int
	}{
		{"zero gives one batch", 0, 0, 1},
		{"smaller than a batch gives one", 3, size - 1, 1},
		{"exactly one", 3, size, 1},
		{"one and a half", 3, size + size/2, 1},
		{"exactly five", 7, 5 * size, 5},
		{"across segments", 0, 39 * size, 39},
		{"up to the end", 30, 1 << 20, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := l.Read(int64(2*tc.from), tc.maxBytes)
			if err != nil {
				t.Fatal(err)
			}
			equalBatches(t, splitBatches(t, got), want[tc.from:tc.from+tc.batches])
		})
	}
	t.Run("ReadAppend appends", func(t *testing.T) {
		prefix := []byte("xyz")
		got, err := l.ReadAppend(prefix, 2, size)
		if err != nil || !bytes.Equal(got[:3], prefix) || !bytes.Equal(got[3:], want[1]) {
			t.Fatalf("ReadAppend: %v", err)
		}
	})
}

func TestReadRange(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.RetentionBytes = 1
	l := openLog(t, t.TempDir(), cfg)
	appendBatches(t, l, specs(60, 1, 200)...)
	if n, err := l.EnforceRetention(); err != nil || n == 0 {
		t.Fatalf("EnforceRetention = %d, %v", n, err)
	}
	start, hwm := l.StartOffset(), l.HighWatermark()
	for _, tc := range []struct {
		name   string
		offset int64
		err    error
	}{
		{"below start", start - 1, ErrOffsetOutOfRange},
		{"negative", -1, ErrOffsetOutOfRange},
		{"past hwm", hwm + 1, ErrOffsetOutOfRange},
		{"at start", start, nil},
		{"last", hwm - 1, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := l.Read(tc.offset, 100)
			if !errors.Is(err, tc.err) {
				t.Fatalf("Read(%d) = %v, want %v", tc.offset, err, tc.err)
			}
		})
	}
	if b, err := l.Read(hwm, 100); b != nil || err != nil {
		t.Fatalf("Read(hwm) = %d bytes, %v; want nil, nil", len(b), err)
	}
}

func TestAppendRejectsInvalid(t *testing.T) {
	t.Parallel()
	for _, policy := range []FsyncPolicy{FsyncNever, FsyncAlways} {
		t.Run(policy.String(), func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Fsync = policy
			dir := t.TempDir()
			l := openLog(t, dir, cfg)
			want := appendBatches(t, l, specs(3, 2, 10)...)
			hwm, size, fsize := l.HighWatermark(), l.Size(), fileSize(t, logFile(dir, 0))
			bigCfgBatch := makeBatch(spec{records: 2, valueSize: cfg.MaxBatchBytes})
			cases := badBatches()
			cases = append(cases, struct {
				name  string
				batch []byte
				max   int
				want  error
			}{"above MaxBatchBytes", bigCfgBatch, 0, ErrBatchTooLarge})
			for _, tc := range cases {
				if tc.max != 0 {
					continue // limits of CheckBatch's own argument
				}
				orig := bytes.Clone(tc.batch)
				if _, err := l.Append(tc.batch); !errors.Is(err, tc.want) {
					t.Fatalf("%s: Append = %v, want %v", tc.name, err, tc.want)
				}
				if !bytes.Equal(orig, tc.batch) {
					t.Fatalf("%s: rejected batch was modified", tc.name)
				}
				if l.HighWatermark() != hwm || l.Size() != size || fileSize(t, logFile(dir, 0)) != fsize {
					t.Fatalf("%s: something was written", tc.name)
				}
			}
			equalBatches(t, readAll(t, l), want)
		})
	}
}

func TestRoll(t *testing.T) {
	t.Parallel()
	t.Run("size", func(t *testing.T) {
		cfg := testConfig(t)
		l := openLog(t, t.TempDir(), cfg)
		appendBatches(t, l, specs(40, 1, 500)...)
		segs := l.Segments()
		for i, s := range segs {
			if s.Size > cfg.MaxSegmentBytes || (i < len(segs)-1 && !s.Sealed) || (i == len(segs)-1 && s.Sealed) {
				t.Fatalf("segment %d: %+v", i, s)
			}
			if i > 0 && segs[i-1].NextOffset != s.BaseOffset {
				t.Fatalf("segments %d and %d not contiguous", i-1, i)
			}
		}
	})
	t.Run("batch larger than a segment", func(t *testing.T) {
		cfg := testConfig(t)
		l := openLog(t, t.TempDir(), cfg)
		want := appendBatches(t, l, spec{records: 1, valueSize: 100}, spec{records: 1, valueSize: int(cfg.MaxSegmentBytes)},
			spec{records: 1, valueSize: 100})
		if n := len(l.Segments()); n != 3 {
			t.Fatalf("%d segments, want 3", n)
		}
		equalBatches(t, readAll(t, l), want)
	})
	t.Run("index full", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.MaxSegmentBytes = 1 << 20
		cfg.MaxIndexBytes = minIndexBytes // 4 entries
		cfg.IndexIntervalBytes = 1
		l := openLog(t, t.TempDir(), cfg)
		want := appendBatches(t, l, specs(12, 1, 10)...)
		segs := l.Segments()
		if len(segs) != 3 || segs[0].NextOffset != 5 || segs[1].NextOffset != 10 {
			t.Fatalf("segments %+v, want rolls every 5 batches", segs)
		}
		equalBatches(t, readAll(t, l), want)
	})
	t.Run("age", func(t *testing.T) {
		clock := newFakeClock()
		cfg := testConfig(t)
		cfg.MaxSegmentAge = time.Hour
		cfg.Now = clock.Now
		dir := t.TempDir()
		l := openLog(t, dir, cfg)
		appendBatches(t, l, specs(3, 1, 10)...)
		clock.Advance(59 * time.Minute)
		appendBatches(t, l, specs(1, 1, 10)...)
		if n := len(l.Segments()); n != 1 {
			t.Fatalf("rolled too early: %d segments", n)
		}
		clock.Advance(time.Minute)
		appendBatches(t, l, specs(1, 1, 10)...)
		if n := len(l.Segments()); n != 2 {
			t.Fatalf("%d segments, want 2", n)
		}
		// A restart keeps the age: it comes from the first batch's timestamp.
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		clock.Advance(2 * time.Hour)
		l = openLog(t, dir, cfg)
		appendBatches(t, l, spec{records: 1, firstTs: clock.Now().UnixMilli()})
		if n := len(l.Segments()); n != 3 {
			t.Fatalf("%d segments after restart, want 3", n)
		}
	})
}

func TestOffsetForTime(t *testing.T) {
	t.Parallel()
	l := openLog(t, t.TempDir(), testConfig(t))
	// Timestamps go up and down: the answer is the first batch (in offset
	// order) whose max timestamp reaches ts.
	ts := []int64{100, 300, 200, 200, 500, 400, 800, 700, 700, 900}
	var sp []spec
	for i := 0; i < 60; i++ {
		v := ts[i%len(ts)] + int64(i/len(ts))*1000
		sp = append(sp, spec{records: 2, valueSize: 150, firstTs: v - 50, maxTs: v})
	}
	appendBatches(t, l, sp...)
	if len(l.Segments()) < 2 {
		t.Fatal("want several segments")
	}
	for q := int64(-5); q <= 7000; q += 7 {
		want := l.HighWatermark()
		for i, s := range sp {
			if s.maxTs >= q {
				want = int64(2 * i)
				break
			}
		}
		got, err := l.OffsetForTime(q)
		if err != nil || got != want {
			t.Fatalf("OffsetForTime(%d) = %d, %v; want %d", q, got, err, want)
		}
	}
}

func TestWait(t *testing.T) {
	t.Parallel()
	for _, policy := range []FsyncPolicy{FsyncNever, FsyncAlways} {
		t.Run(policy.String(), func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Fsync = policy
			l := openLog(t, t.TempDir(), cfg)
			appendBatches(t, l, spec{records: 2})
			if err := l.Wait(context.Background(), 1); err != nil {
				t.Fatalf("Wait below hwm: %v", err)
			}
			done := make(chan error, 1)
			go func() { done <- l.Wait(context.Background(), 2) }()
			appendBatches(t, l, spec{records: 1})
			if err := <-done; err != nil {
				t.Fatalf("Wait: %v", err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			go func() { done <- l.Wait(ctx, 10) }()
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Fatalf("Wait after cancel = %v", err)
			}
			go func() { done <- l.Wait(context.Background(), 10) }()
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if err := <-done; !errors.Is(err, ErrClosed) {
				t.Fatalf("Wait after Close = %v", err)
			}
		})
	}
}

func TestClose(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := testConfig(t)
	cfg.Fsync = FsyncAlways
	l := openLog(t, dir, cfg)
	want := appendBatches(t, l, specs(30, 1, 300)...)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	// Index files are trimmed to their entries.
	for _, s := range []string{indexSuffix, timeIndexSuffix} {
		if n := fileSize(t, segmentStem(dir, 0)+s); n >= int64(cfg.MaxIndexBytes) {
			t.Fatalf("%s not trimmed: %d bytes", s, n)
		}
	}
	for name, err := range map[string]error{
		"Append": func() error { _, err := l.Append(makeBatch(spec{})); return err }(),
		"Read":   func() error { _, err := l.Read(0, 10); return err }(),
		"Time":   func() error { _, err := l.OffsetForTime(0); return err }(),
		"Trunc":  l.Truncate(0),
		"Ret":    func() error { _, err := l.EnforceRetention(); return err }(),
		"Sync":   l.Sync(),
		"Wait":   l.Wait(context.Background(), 0),
		"Verify": l.Verify(),
	} {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
	l = openLog(t, dir, cfg)
	equalBatches(t, readAll(t, l), want)
}

func TestUnknownFiles(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		file string
		want error
	}{
		{"stray file", "notes.txt", ErrUnknownFile},
		{"short name", "0.log", ErrUnknownFile},
		{"signed name", "-0000000000000000001.log", ErrUnknownFile},
		{"unknown suffix", "00000000000000000000.idx", ErrUnknownFile},
		{"tmp file", "00000000000000000000.log.tmp", ErrUnknownFile},
		{"orphan index", "00000000000000000100.index", ErrCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, tc.file), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := Open(dir, testConfig(t)); !errors.Is(err, tc.want) {
				t.Fatalf("Open = %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("subdirectory", func(t *testing.T) {
		dir := t.TempDir()
		os.Mkdir(filepath.Join(dir, "00000000000000000000.log"), 0o755)
		if _, err := Open(dir, testConfig(t)); !errors.Is(err, ErrUnknownFile) {
			t.Fatalf("Open = %v", err)
		}
	})
	t.Run("interrupted deletion is finished", func(t *testing.T) {
		dir := t.TempDir()
		l := openLog(t, dir, testConfig(t))
		want := appendBatches(t, l, specs(30, 1, 700)...)
		l.Close()
		// Segment 0 was being deleted by retention: its .log renamed.
		os.Rename(logFile(dir, 0), logFile(dir, 0)+deletedSuffix)
		l = openLog(t, dir, testConfig(t))
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if b, _ := parseBase(e.Name()[:20]); b == 0 {
				t.Fatalf("%s left behind", e.Name())
			}
		}
		got := readAll(t, l)
		equalBatches(t, got, want[len(want)-len(got):])
	})
}

func TestFsyncAlwaysHidesUnsyncedBatches(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.Fsync = FsyncAlways
	l := openLog(t, t.TempDir(), cfg)
	appendBatches(t, l, spec{records: 1})
	// Holding syncMu stands for an fsync that has not returned yet.
	l.syncMu.Lock()
	locked := true
	defer func() {
		if locked {
			l.syncMu.Unlock()
		}
	}()
	done := make(chan int64, 1)
	go func() {
		base, err := l.Append(makeBatch(spec{records: 2}))
		if err != nil {
			t.Error(err)
		}
		done <- base
	}()
	wait.For(t, 10*time.Second, "the batch to be written", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.next == 3
	})
	if hwm := l.HighWatermark(); hwm != 1 {
		t.Fatalf("HWM %d before fsync, want 1", hwm)
	}
	if b, err := l.Read(1, 1000); b != nil || err != nil {
		t.Fatalf("Read of unsynced batch = %d bytes, %v", len(b), err)
	}
	if segs := l.Segments(); segs[0].NextOffset != 1 {
		t.Fatalf("unsynced batch visible in Segments: %+v", segs)
	}
	select {
	case <-done:
		t.Fatal("Append returned before its fsync")
	default:
	}
	l.syncMu.Unlock()
	locked = false
	if base := <-done; base != 1 || l.HighWatermark() != 3 {
		t.Fatalf("base %d hwm %d", base, l.HighWatermark())
	}
}

func TestGroupCommit(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.Fsync = FsyncAlways
	cfg.MaxSegmentBytes = 1 << 20
	l := openLog(t, t.TempDir(), cfg)
	const appenders, each = 8, 40
	var wg sync.WaitGroup
	bases := make(chan int64, appenders*each)
	for g := 0; g < appenders; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				base, err := l.Append(makeBatch(spec{records: 3, valueSize: 10}))
				if err != nil {
					t.Error(err)
					return
				}
				if l.HighWatermark() < base+3 {
					t.Errorf("Append(%d) returned before its batch was readable", base)
				}
				bases <- base
			}
		}()
	}
	wg.Wait()
	close(bases)
	seen := map[int64]bool{}
	for b := range bases {
		if b%3 != 0 || seen[b] {
			t.Fatalf("bad or duplicate base offset %d", b)
		}
		seen[b] = true
	}
	if l.HighWatermark() != 3*appenders*each {
		t.Fatalf("HWM %d", l.HighWatermark())
	}
	if n := l.fsyncs.Load(); n >= appenders*each {
		t.Fatalf("%d fsync rounds for %d appends: no group commit", n, appenders*each)
	} else {
		t.Logf("%d appends, %d fsync rounds", appenders*each, n)
	}
	readAll(t, l)
}

func TestConcurrentReadersAndAppenders(t *testing.T) {
	t.Parallel()
	for _, policy := range []FsyncPolicy{FsyncNever, FsyncAlways} {
		t.Run(policy.String(), func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Fsync = policy
			cfg.RetentionBytes = 64 << 10
			l := openLog(t, t.TempDir(), cfg)
			const appenders, each = 4, 60
			ctx, cancel := context.WithCancel(context.Background())
			var wg, rg sync.WaitGroup
			for g := 0; g < appenders; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < each; i++ {
						if _, err := l.Append(makeBatch(spec{records: 2, valueSize: 100, fill: byte(g)})); err != nil {
							t.Error(err)
							return
						}
					}
				}()
			}
			total := int64(2 * appenders * each)
			for r := 0; r < 3; r++ {
				rg.Add(1)
				go func() {
					defer rg.Done()
					var off int64
					var buf []byte
					for off < total {
						if err := l.Wait(ctx, off); err != nil {
							t.Errorf("Wait(%d): %v", off, err)
							return
						}
						var err error
						buf, err = l.ReadAppend(buf[:0], off, 4096)
						if errors.Is(err, ErrOffsetOutOfRange) && off < l.StartOffset() {
							off = l.StartOffset() // retention passed us
							continue
						}
						if err != nil {
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
			for i := 0; i < 5; i++ {
				if _, err := l.EnforceRetention(); err != nil {
					t.Error(err)
				}
				if _, err := l.OffsetForTime(0); err != nil {
					t.Error(err)
				}
			}
			wg.Wait()
			rg.Wait()
			cancel()
			if l.HighWatermark() != 2*appenders*each {
				t.Fatalf("HWM %d", l.HighWatermark())
			}
		})
	}
}

func TestFsyncInterval(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.Fsync = FsyncInterval
	cfg.FsyncInterval = time.Millisecond
	l := openLog(t, t.TempDir(), cfg)
	appendBatches(t, l, specs(5, 1, 10)...)
	if l.HighWatermark() != 5 {
		t.Fatalf("batches not visible on write: HWM %d", l.HighWatermark())
	}
	wait.For(t, 10*time.Second, "a background fsync", func() bool { return l.fsyncs.Load() > 0 })
}
