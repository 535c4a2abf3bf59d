package segment

import (
	"bytes"
	"context"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// crashedLog appends batches, crashes, and returns the directory, the
// batches, and the base offset of the active segment and its batches'
// positions in it.
func crashedLog(t *testing.T, cfg Config, sp []spec) (dir string, want [][]byte, activeBase int64, pos []int64) {
	t.Helper()
	dir = t.TempDir()
	l, err := Open(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	want = appendBatches(t, l, sp...)
	segs := l.Segments()
	activeBase = segs[len(segs)-1].BaseOffset
	crash(l)
	var p int64
	for _, b := range want {
		if h, _ := ParseBatchHeader(b); h.BaseOffset >= activeBase {
			pos = append(pos, p)
			p += int64(len(b))
		}
	}
	if len(segs) < 2 || len(pos) < 3 {
		t.Fatalf("test log too small: %d segments, %d batches in the active one", len(segs), len(pos))
	}
	return dir, want, activeBase, pos
}

// checkLog checks that l holds exactly want, and that it verifies.
func checkLog(t *testing.T, l *Log, want [][]byte) {
	t.Helper()
	equalBatches(t, readAll(t, l), want)
	hwm := int64(0)
	if len(want) > 0 {
		h, _ := ParseBatchHeader(want[len(want)-1])
		hwm = h.NextOffset()
	}
	if l.HighWatermark() != hwm {
		t.Fatalf("HWM %d, want %d", l.HighWatermark(), hwm)
	}
	if err := l.Verify(); err != nil {
		t.Fatalf("Verify: %v", err)
	}
}

func crashConfig(t *testing.T) Config {
	cfg := testConfig(t)
	cfg.MaxSegmentBytes = 4 << 10
	cfg.IndexIntervalBytes = 100
	cfg.Logger = slog.New(slog.DiscardHandler)
	return cfg
}

// TestCrashCutEveryByte cuts the active .log at every byte of its last two
// batches after a crash (the index still has entries for them): everything
// before the cut batch is there, nothing after it, and the log takes appends.
func TestCrashCutEveryByte(t *testing.T) {
	t.Parallel()
	for _, policy := range []FsyncPolicy{FsyncNever, FsyncAlways} {
		t.Run(policy.String(), func(t *testing.T) {
			cfg := crashConfig(t)
			cfg.Fsync = policy
			dir, want, base, pos := crashedLog(t, cfg, specs(40, 2, 60))
			end := fileSize(t, logFile(dir, base))
			firstActive := len(want) - len(pos)
			step := int64(1)
			if policy == FsyncAlways {
				step = 11 // the files are the same; this checks reopening under FsyncAlways
			}
			for cut := pos[len(pos)-2]; cut <= end; cut += step {
				d := copyDir(t, dir)
				if err := os.Truncate(logFile(d, base), cut); err != nil {
					t.Fatal(err)
				}
				kept := firstActive
				for i, p := range pos {
					if p+int64(len(want[firstActive+i])) <= cut {
						kept = firstActive + i + 1
					}
				}
				l, err := Open(d, cfg)
				if err != nil {
					t.Fatalf("cut at %d: Open: %v", cut, err)
				}
				checkLog(t, l, want[:kept])
				if fileSize(t, logFile(d, base)) != pos[kept-firstActive-1]+int64(len(want[kept-1])) {
					t.Fatalf("cut at %d: torn tail not cut off", cut)
				}
				if cut%7 == 0 || cut+step > end {
					more := appendBatches(t, l, spec{records: 3, valueSize: 9})
					l.Close()
					l, err = Open(d, cfg)
					if err != nil {
						t.Fatal(err)
					}
					checkLog(t, l, append(want[:kept:kept], more...))
				}
				l.Close()
			}
		})
	}
}

type recordingHandler struct {
	mu   sync.Mutex
	msgs []string
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler            { return h }
func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	var sb strings.Builder
	sb.WriteString(r.Level.String() + " " + r.Message)
	r.Attrs(func(a slog.Attr) bool { sb.WriteString(" " + a.String()); return true })
	h.mu.Lock()
	h.msgs = append(h.msgs, sb.String())
	h.mu.Unlock()
	return nil
}

func (h *recordingHandler) find(s string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range h.msgs {
		if strings.Contains(m, s) {
			return m
		}
	}
	return ""
}

// TestCrashFlipBits flips a bit in every byte of the last batch: recovery
// drops that batch, and only it, and says so.
func TestCrashFlipBits(t *testing.T) {
	t.Parallel()
	cfg := crashConfig(t)
	dir, want, base, pos := crashedLog(t, cfg, specs(40, 2, 60))
	last := pos[len(pos)-1]
	size := int64(len(want[len(want)-1]))
	for i := int64(0); i < size; i++ {
		d := copyDir(t, dir)
		path := logFile(d, base)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		data[last+i] ^= 1 << (i % 8)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		rec := &recordingHandler{}
		cfg.Logger = slog.New(rec)
		l, err := Open(d, cfg)
		if err != nil {
			t.Fatalf("flip at byte %d: %v", i, err)
		}
		if i >= offLeaderEpoch && i < offMagic {
			// partitionLeaderEpoch, like baseOffset, is outside the CRC (Kafka
			// brokers rewrite it), and unlike baseOffset no invariant checks
			// it: the flip goes undetected.
			flipped := append(want[:len(want)-1:len(want)-1], data[last:last+size])
			checkLog(t, l, flipped)
			l.Close()
			continue
		}
		checkLog(t, l, want[:len(want)-1])
		if m := rec.find("dropped torn or corrupt tail"); m == "" || !strings.Contains(m, "dropped_bytes=") {
			t.Fatalf("flip at byte %d: drop not logged: %q", i, rec.msgs)
		}
		l.Close()
	}
}

func TestZeroFilledTail(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		keep  int // bytes of the last batch kept before the zeros
		zeros int
	}{
		{"whole batches then zeros", -1, 64 << 10},
		{"fewer zeros than a header", -1, 30},
		{"torn batch then zeros", 40, 8 << 10},
		{"torn header then zeros", 5, 8 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := crashConfig(t)
			dir, want, base, pos := crashedLog(t, cfg, specs(40, 2, 60))
			path := logFile(dir, base)
			cut := fileSize(t, path)
			kept := want
			if tc.keep >= 0 {
				cut = pos[len(pos)-1] + int64(tc.keep)
				kept = want[:len(want)-1]
			}
			data, _ := os.ReadFile(path)
			data = append(data[:cut], make([]byte, tc.zeros)...)
			os.WriteFile(path, data, 0o644)
			l := openLog(t, dir, cfg)
			checkLog(t, l, kept)
			if got, want := fileSize(t, path), l.Segments()[len(l.Segments())-1].Size; got != want {
				t.Fatalf("file is %d bytes, data %d: zero tail not cut", got, want)
			}
			more := appendBatches(t, l, spec{records: 1})
			l.Close()
			l = openLog(t, dir, cfg)
			checkLog(t, l, append(kept[:len(kept):len(kept)], more...))
		})
	}
}

func TestCorruptSealedSegment(t *testing.T) {
	t.Parallel()
	build := func(t *testing.T) (string, [][]byte, []int64) {
		dir := t.TempDir()
		cfg := crashConfig(t)
		l := openLog(t, dir, cfg)
		want := appendBatches(t, l, specs(70, 2, 60)...)
		if len(l.Segments()) < 3 {
			t.Fatal("want 3 segments")
		}
		l.Close()
		var pos []int64 // positions of the batches of segment 0
		var p int64
		for _, b := range want {
			if p+int64(len(b)) > fileSize(t, logFile(dir, 0)) {
				break
			}
			pos = append(pos, p)
			p += int64(len(b))
		}
		return dir, want, pos
	}
	patch := func(t *testing.T, path string, at int64, f func(byte) byte) {
		data, _ := os.ReadFile(path)
		data[at] = f(data[at])
		os.WriteFile(path, data, 0o644)
	}
	t.Run("payload byte: Read and Verify report it", func(t *testing.T) {
		dir, want, pos := build(t)
		bad := len(pos) / 2
		patch(t, logFile(dir, 0), pos[bad]+BatchHeaderSize+3, func(b byte) byte { return b ^ 0x10 })
		l := openLog(t, dir, crashConfig(t)) // sealed segments are not scanned
		h, _ := ParseBatchHeader(want[bad])
		for _, off := range []int64{h.BaseOffset, h.LastOffset(), 0} {
			_, err := l.Read(off, 1<<20)
			ce, ok := isCorrupt(err)
			if !ok || ce.Path != logFile(dir, 0) || ce.Pos != pos[bad] {
				t.Fatalf("Read(%d) = %v, want corruption in %s at %d", off, err, logFile(dir, 0), pos[bad])
			}
			if !strings.Contains(err.Error(), logFile(dir, 0)) {
				t.Fatalf("error does not name the file: %v", err)
			}
		}
		if ce, ok := isCorrupt(l.Verify()); !ok || ce.Pos != pos[bad] {
			t.Fatalf("Verify = %v", l.Verify())
		}
		// The rest stays readable.
		if b, err := l.Read(0, 1); err != nil || !bytes.Equal(b, want[0]) {
			t.Fatalf("Read(0): %v", err)
		}
		if b, err := l.Read(h.NextOffset(), 1); err != nil || !bytes.Equal(b, want[bad+1]) {
			t.Fatalf("Read after the bad batch: %v", err)
		}
	})
	for _, tc := range []struct {
		name string
		f    func(t *testing.T, dir string, pos []int64)
	}{
		{"length of last batch", func(t *testing.T, dir string, pos []int64) {
			patch(t, logFile(dir, 0), pos[len(pos)-1]+offBatchLength+3, func(b byte) byte { return b + 1 })
		}},
		{"base offset of last batch", func(t *testing.T, dir string, pos []int64) {
			patch(t, logFile(dir, 0), pos[len(pos)-1]+7, func(b byte) byte { return b ^ 4 })
		}},
		{"cut sealed segment", func(t *testing.T, dir string, pos []int64) {
			os.Truncate(logFile(dir, 0), fileSize(t, logFile(dir, 0))-1)
		}},
		{"missing middle segment", func(t *testing.T, dir string, pos []int64) {
			segs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
			stem := strings.TrimSuffix(segs[1], logSuffix)
			for _, s := range []string{logSuffix, indexSuffix, timeIndexSuffix} {
				os.Remove(stem + s)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, _, pos := build(t)
			tc.f(t, dir, pos)
			_, err := Open(dir, crashConfig(t))
			if _, ok := isCorrupt(err); !ok {
				t.Fatalf("Open = %v, want ErrCorrupt", err)
			}
		})
	}
}

// TestBadIndexes damages the index files of a sealed and of the active
// segment in many ways: the log must read exactly as before.
func TestBadIndexes(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, path string, other string)
	}{
		{"garbage", func(t *testing.T, p, _ string) { os.WriteFile(p, random(4096), 0o644) }},
		{"zeros", func(t *testing.T, p, _ string) { os.WriteFile(p, make([]byte, 4096), 0o644) }},
		{"empty", func(t *testing.T, p, _ string) { os.WriteFile(p, nil, 0o644) }},
		{"missing", func(t *testing.T, p, _ string) { os.Remove(p) }},
		{"odd size", func(t *testing.T, p, _ string) {
			b, _ := os.ReadFile(p)
			os.WriteFile(p, append(b, 1, 2, 3), 0o644)
		}},
		{"half the entries", func(t *testing.T, p, _ string) {
			b, _ := os.ReadFile(p)
			es := offEntrySize
			if strings.HasSuffix(p, timeIndexSuffix) {
				es = timeEntrySize
			}
			os.WriteFile(p, b[:len(b)/es/2*es], 0o644)
		}},
		{"stale index of another log", func(t *testing.T, p, other string) { copyFile(t, other, p) }},
		{"positions shifted", func(t *testing.T, p, _ string) {
			if !strings.HasSuffix(p, indexSuffix) {
				return
			}
			b, _ := os.ReadFile(p)
			for i := 7; i < len(b); i += offEntrySize {
				b[i]++
			}
			os.WriteFile(p, b, 0o644)
		}},
		{"timestamps too low", func(t *testing.T, p, _ string) {
			if !strings.HasSuffix(p, timeIndexSuffix) {
				return
			}
			b, _ := os.ReadFile(p)
			for i := 0; i+timeEntrySize <= len(b); i += timeEntrySize {
				if b[i+7] != 0 || b[i+6] != 0 {
					b[i+6] = 0 // lower each non-zero timestamp
				}
			}
			os.WriteFile(p, b, 0o644)
		}},
	} {
		for _, which := range []string{"sealed", "active"} {
			for _, crashed := range []bool{false, true} {
				name := tc.name + "/" + which
				if crashed {
					name += "/crashed"
				}
				t.Run(name, func(t *testing.T) {
					testBadIndex(t, which == "sealed", crashed, tc.damage)
				})
			}
		}
	}
}

func testBadIndex(t *testing.T, sealed, crashed bool, damage func(t *testing.T, path, other string)) {
	cfg := crashConfig(t)
	cfg.Logger = testConfig(t).Logger
	sp := specs(40, 2, 60)
	for i := range sp {
		sp[i].firstTs, sp[i].maxTs = int64(1000+(i%7)*100), int64(1000+(i%7)*100+i) // up and down
	}
	dir := t.TempDir()
	l := openLog(t, dir, cfg)
	want := appendBatches(t, l, sp...)
	segs := l.Segments()
	if crashed {
		crash(l)
	} else {
		l.Close()
	}
	// Another log with other batch sizes provides stale index files.
	odir := t.TempDir()
	ol := openLog(t, odir, cfg)
	appendBatches(t, ol, specs(60, 1, 37)...)
	ol.Close()
	base := segs[len(segs)-1].BaseOffset
	if sealed {
		base = segs[0].BaseOffset
	}
	for _, suffix := range []string{indexSuffix, timeIndexSuffix} {
		damage(t, segmentStem(dir, base)+suffix, segmentStem(odir, 0)+suffix)
	}
	l = openLog(t, dir, cfg)
	checkLog(t, l, want)
	for i, b := range want {
		h, _ := ParseBatchHeader(b)
		if got, err := l.Read(h.LastOffset(), 1); err != nil || !bytes.Equal(got, b) {
			t.Fatalf("Read(%d) of batch %d: %v", h.LastOffset(), i, err)
		}
	}
	for q := int64(900); q < 1800; q += 13 {
		wantOff := l.HighWatermark()
		for i, s := range sp {
			if s.maxTs >= q {
				wantOff = int64(2 * i)
				break
			}
		}
		if got, err := l.OffsetForTime(q); err != nil || got != wantOff {
			t.Fatalf("OffsetForTime(%d) = %d, %v; want %d", q, got, err, wantOff)
		}
	}
	l.Close()
	// On disk, indexes are consistent again: whole entries, well formed.
	for _, s := range segs {
		st := segmentStem(dir, s.BaseOffset)
		if fileSize(t, st+indexSuffix)%offEntrySize != 0 || fileSize(t, st+timeIndexSuffix)%timeEntrySize != 0 {
			t.Fatalf("segment %d: index sizes not whole entries", s.BaseOffset)
		}
	}
}

// TestUntrimmedSealedIndex: a crash right after a roll created the next
// segment would leave the sealed segment's index preallocated. Open accepts
// the zero tail and trims it.
func TestUntrimmedSealedIndex(t *testing.T) {
	t.Parallel()
	cfg := crashConfig(t)
	cfg.MaxSegmentBytes = 1 << 20
	dir := t.TempDir()
	l := openLog(t, dir, cfg)
	want := appendBatches(t, l, specs(30, 2, 60)...)
	hwm := l.HighWatermark()
	crash(l)
	if n := fileSize(t, segmentStem(dir, 0)+indexSuffix); n != int64(cfg.MaxIndexBytes) {
		t.Fatalf("index of crashed active segment is %d bytes, want preallocated %d", n, cfg.MaxIndexBytes)
	}
	if err := os.WriteFile(logFile(dir, hwm), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	rec := &recordingHandler{}
	cfg.Logger = slog.New(rec)
	l = openLog(t, dir, cfg)
	checkLog(t, l, want)
	if m := rec.find("rebuilding"); m != "" {
		t.Fatalf("a valid untrimmed index was rebuilt: %s", m)
	}
	if n := fileSize(t, segmentStem(dir, 0)+indexSuffix); n >= int64(cfg.MaxIndexBytes) || n == 0 {
		t.Fatalf("sealed index not trimmed: %d bytes", n)
	}
	more := appendBatches(t, l, spec{records: 4})
	l.Close()
	l = openLog(t, dir, cfg)
	checkLog(t, l, append(want, more...))
}

// TestCrashHoleBeforeIndexedBatch: after a crash, pages of the log may have
// reached the disk out of order, so a batch can be torn while later ones,
// and index entries pointing at them, survived. Those later batches were
// never acknowledged (their fsync did not complete): recovery verifies the
// whole active segment and cuts the log at the hole. After a clean Close the
// same damage is bit rot in data that was durable: it is kept and reported
// as corruption when read, like in a sealed segment.
func TestCrashHoleBeforeIndexedBatch(t *testing.T) {
	t.Parallel()
	for _, crashed := range []bool{true, false} {
		t.Run(map[bool]string{true: "crashed", false: "closed"}[crashed], func(t *testing.T) {
			cfg := crashConfig(t)
			cfg.MaxSegmentBytes = 1 << 20
			dir := t.TempDir()
			l := openLog(t, dir, cfg)
			want := appendBatches(t, l, specs(30, 2, 60)...)
			if crashed {
				crash(l)
			} else {
				l.Close()
			}
			hole := 10
			var pos int64
			for _, b := range want[:hole] {
				pos += int64(len(b))
			}
			data, _ := os.ReadFile(logFile(dir, 0))
			clear(data[pos+20 : pos+40]) // a zeroed sector inside batch 10
			os.WriteFile(logFile(dir, 0), data, 0o644)
			l = openLog(t, dir, cfg)
			if crashed {
				checkLog(t, l, want[:hole])
				return
			}
			if l.HighWatermark() != 60 {
				t.Fatalf("HWM %d: a cleanly closed segment must not be cut", l.HighWatermark())
			}
			if _, err := l.Read(int64(2*hole), 1); err == nil {
				t.Fatal("Read of the damaged batch succeeded")
			} else if ce, ok := isCorrupt(err); !ok || ce.Pos != pos {
				t.Fatalf("Read = %v, want corruption at %d", err, pos)
			}
		})
	}
}

// TestCrashFlipBitBelowDurableOffset: a flipped bit in a batch of the
// active segment below Config.DurableOffset (the caller's checkpoint) is
// corruption: Open fails with the file and position and cuts nothing. At or
// above it the same damage is a torn tail, cut off as before.
func TestCrashFlipBitBelowDurableOffset(t *testing.T) {
	t.Parallel()
	cfg := crashConfig(t)
	dir, want, base, pos := crashedLog(t, cfg, specs(40, 2, 60))
	firstActive := len(want) - len(pos)
	hwm := int64(2 * len(want))
	for _, i := range []int{len(pos) / 2, len(pos) - 1} { // a middle batch, the last one
		batch := firstActive + i
		h, _ := ParseBatchHeader(want[batch])
		for _, durable := range []int64{hwm, h.BaseOffset + 1, h.BaseOffset} {
			d := copyDir(t, dir)
			path := logFile(d, base)
			data, _ := os.ReadFile(path)
			data[pos[i]+offAttributes+3] ^= 0x20
			os.WriteFile(path, data, 0o644)
			c := cfg
			c.DurableOffset = durable
			l, err := Open(d, c)
			if durable > h.BaseOffset {
				ce, ok := isCorrupt(err)
				if !ok || ce.Path != path || ce.Pos != pos[i] {
					t.Fatalf("batch %d, durable offset %d: Open: %v; want corruption in %s at %d", batch, durable, err, path, pos[i])
				}
				if got, _ := os.ReadFile(path); !bytes.Equal(got, data) {
					t.Fatalf("batch %d: Open changed the file", batch)
				}
				continue
			}
			if err != nil {
				t.Fatalf("batch %d, durable offset %d: Open: %v", batch, durable, err)
			}
			checkLog(t, l, want[:batch])
			l.Close()
		}
	}
}
