package raftlog

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
)

// crashFixture writes n entries of size bytes one StoreLog at a time, with
// preallocation and fsync, and returns the directory's files as a crash
// would leave them (no Close), the last segment's name and the positions of
// the frames of its last two entries and the end of its data.
func crashFixture(t *testing.T, n uint64, size int) (files map[string][]byte, last string, pos [3]int64) {
	t.Helper()
	dir := t.TempDir()
	s := openTest(t, dir, testConfig(t, true))
	for i := uint64(1); i <= n; i++ {
		if err := s.StoreLog(entry(i, 1, size)); err != nil {
			t.Fatal(err)
		}
	}
	seg := s.segs[len(s.segs)-1]
	if len(s.segs) < 2 || len(seg.offsets) < 3 {
		t.Fatalf("fixture: %d segments, %d entries in the last", len(s.segs), len(seg.offsets))
	}
	k := len(seg.offsets)
	pos = [3]int64{int64(seg.offsets[k-2]), int64(seg.offsets[k-1]), seg.end}
	files = map[string][]byte{}
	for _, p := range segFiles(t, dir) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		files[filepath.Base(p)] = b
	}
	return files, filepath.Base(seg.path), pos
}

// writeFiles replaces the contents of dir with files.
func writeFiles(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o640); err != nil {
			t.Fatal(err)
		}
	}
}

// reopenCheck opens dir and checks that it holds entries 1..want of term 1,
// then that an entry appended after them survives another reopen.
func reopenCheck(t *testing.T, dir string, want uint64, size int) {
	t.Helper()
	cfg := testConfig(t, false)
	s, err := Open(dir, cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	orig := func(i uint64) *raft.Log { return entry(i, 1, size) }
	checkRange(t, s, 1, want, orig)
	// A shorter entry of another term where the cut one was: nothing stale
	// behind it may come back.
	if err := s.StoreLog(entry(want+1, 2, size/2)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(dir, cfg)
	if err != nil {
		t.Fatalf("second Open: %v", err)
	}
	t.Cleanup(func() { _ = s2.Close() })
	s = s2
	checkRange(t, s, 1, want+1, func(i uint64) *raft.Log {
		if i == want+1 {
			return entry(i, 2, size/2)
		}
		return orig(i)
	})
}

// TestCrashCutTail cuts the last segment at every byte of its last two
// entries, as zeros (preallocated space not yet overwritten), as the end of
// the file, and as garbage: every entry written whole before the cut must be
// there, and nothing after it.
func TestCrashCutTail(t *testing.T) {
	const n, size = 60, 300
	files, last, pos := crashFixture(t, n, size)
	dir := t.TempDir()
	for _, mode := range []string{"zeros", "eof", "garbage"} {
		t.Run(mode, func(t *testing.T) {
			for c := pos[0]; c <= pos[2]; c++ {
				mod := map[string][]byte{}
				for k, v := range files {
					mod[k] = v
				}
				b := append([]byte(nil), files[last]...)
				switch mode {
				case "zeros":
					clear(b[c:pos[2]])
				case "eof":
					b = b[:c]
				case "garbage":
					for i := c; i < pos[2]; i++ {
						b[i] = byte(i*7 + 1)
					}
				}
				mod[last] = b
				writeFiles(t, dir, mod)
				// An entry survives if its frame is unchanged (zeroing
				// bytes that were zeros cuts nothing).
				intact := func(k int) bool {
					return int64(len(b)) >= pos[k+1] && string(b[pos[k]:pos[k+1]]) == string(files[last][pos[k]:pos[k+1]])
				}
				want := uint64(n - 2)
				if intact(0) {
					want++
					if intact(1) {
						want++
					}
				}
				t.Run(fmt.Sprint(c), func(t *testing.T) { reopenCheck(t, dir, want, size) })
				if t.Failed() {
					return
				}
			}
		})
	}
}

// TestCrashStaleFrameNotResurrected: a torn write lost the length of entry 9
// but not entry 10 behind it. Recovery ends the log at 8; a new entry 9 of
// the same size must not make the stale 10 readable after a reopen.
// (With cleanTail switched off, this test fails: LastIndex is 10.)
func TestCrashStaleFrameNotResurrected(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, true)
	s := openTest(t, dir, cfg)
	if err := s.StoreLogs(entries(1, 10, 1, 100)); err != nil {
		t.Fatal(err)
	}
	seg := s.segs[0]
	p := int64(seg.offsets[8])
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(seg.path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(make([]byte, 4), p); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()

	s = openTest(t, dir, cfg)
	checkRange(t, s, 1, 8, func(i uint64) *raft.Log { return entry(i, 1, 100) })
	if err := s.StoreLog(entry(9, 2, 100)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir, cfg)
	checkRange(t, s, 1, 9, func(i uint64) *raft.Log {
		if i == 9 {
			return entry(9, 2, 100)
		}
		return entry(i, 1, 100)
	})
}

// TestCrashBitFlips flips a bit in every byte of the last two entries, each
// written by a StoreLog of its own. A flip in the last entry is a torn tail:
// nothing after it tells it from a write that no fsync completed, so it is
// cut. A flip in the entry before is corruption, because the last entry was
// written only after that one was fsynced (acknowledged): Open fails with
// the file and the position of the bad entry instead of dropping it.
func TestCrashBitFlips(t *testing.T) {
	const n, size = 60, 300
	files, last, pos := crashFixture(t, n, size)
	dir := t.TempDir()
	for c := pos[0]; c < pos[2]; c++ {
		mod := map[string][]byte{}
		for k, v := range files {
			mod[k] = v
		}
		b := append([]byte(nil), files[last]...)
		b[c] ^= 1 << (c % 8)
		mod[last] = b
		writeFiles(t, dir, mod)
		s, err := Open(dir, testConfig(t, false))
		if c < pos[1] {
			var ce *CorruptError
			if !errors.As(err, &ce) || ce.File != filepath.Join(dir, last) || ce.Pos != pos[0] {
				t.Fatalf("flip at %d: Open: %v; want a *CorruptError in %s at %d", c, err, last, pos[0])
			}
			continue
		}
		if err != nil {
			t.Fatalf("flip at %d: Open: %v", c, err)
		}
		checkRange(t, s, 1, n-1, func(i uint64) *raft.Log { return entry(i, 1, size) })
		_ = s.Close()
	}
}

// frameOffsets walks the frames of a segment file by their length fields.
func frameOffsets(b []byte) []int64 {
	var out []int64
	for pos := int64(segHeaderSize); pos+frameHeader <= int64(len(b)); {
		n, err := frameLen(b[pos:], 1<<30)
		if err != nil {
			break
		}
		out = append(out, pos)
		pos += frameHeader + int64(n)
	}
	return out
}

// TestCrashFlipBitLastSegment flips one bit in the last segment of a log
// written one StoreLog at a time (each entry acknowledged before the next
// was written): in a middle entry or in the segment's header that is
// corruption, reported with the file and position, never a silent cut; in
// the last entry it is a torn tail. Entries written by one StoreLogs call
// share one fsync, so a bad one followed by good ones of the same call is
// a torn write: cut there.
func TestCrashFlipBitLastSegment(t *testing.T) {
	const n, size = 60, 300
	files, last, _ := crashFixture(t, n, size)
	offs := frameOffsets(files[last])
	base, _ := parseSegName(last)
	mid := len(offs) / 2
	tests := []struct {
		name    string
		at      int64
		corrupt int64  // position of the error; -1: opens
		keep    uint64 // last index kept when it opens
	}{
		{"middle entry", offs[mid] + frameHeader + 40, offs[mid], 0},
		{"middle entry's length", offs[mid] + 2, offs[mid], 0},
		{"header", 3, 0, 0},
		{"header's first index", 12, 0, 0},
		{"header's salt", 18, 0, 0},
		{"header's CRC", 21, 0, 0},
		{"last entry", offs[len(offs)-1] + frameHeader + 40, -1, n - 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			mod := map[string][]byte{}
			for k, v := range files {
				mod[k] = v
			}
			b := append([]byte(nil), files[last]...)
			b[tt.at] ^= 0x10
			mod[last] = b
			writeFiles(t, dir, mod)
			s, err := Open(dir, testConfig(t, false))
			if tt.corrupt >= 0 {
				var ce *CorruptError
				if !errors.As(err, &ce) || ce.File != filepath.Join(dir, last) || ce.Pos != tt.corrupt {
					t.Fatalf("Open: %v; want a *CorruptError in %s at %d", err, last, tt.corrupt)
				}
				if _, err := os.Stat(filepath.Join(dir, last)); err != nil {
					t.Fatalf("the corrupt segment was removed: %v", err)
				}
				if got := mustRead(t, filepath.Join(dir, last)); string(got) != string(b) {
					t.Fatal("Open changed the corrupt segment")
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer s.Close()
			checkRange(t, s, 1, tt.keep, func(i uint64) *raft.Log { return entry(i, 1, size) })
		})
	}
	if base+uint64(len(offs))-1 != n {
		t.Fatalf("fixture: last segment holds %d..%d, want up to %d", base, base+uint64(len(offs))-1, n)
	}

	t.Run("one call", func(t *testing.T) {
		dir := t.TempDir()
		s := openTest(t, dir, testConfig(t, true))
		if err := s.StoreLogs(entries(1, 3, 1, 100)); err != nil {
			t.Fatal(err)
		}
		if err := s.StoreLogs(entries(4, 20, 1, 100)); err != nil {
			t.Fatal(err)
		}
		seg := s.segs[0]
		at := int64(seg.offsets[10]) + frameHeader + 30 // entry 11, written with 4..20
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		b := mustRead(t, seg.path)
		b[at] ^= 0x10
		if err := os.WriteFile(seg.path, b, 0o640); err != nil {
			t.Fatal(err)
		}
		s = openTest(t, dir, testConfig(t, false))
		checkRange(t, s, 1, 10, func(i uint64) *raft.Log { return entry(i, 1, 100) })
	})
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCorruptSealedSegment: in a segment that is not the last, a bad length
// fails Open with the file and position, and a bad payload fails GetLog.
func TestCorruptSealedSegment(t *testing.T) {
	const n, size = 60, 300
	files, _, _ := crashFixture(t, n, size)
	first := segName(1)
	frame1 := int64(segHeaderSize + entrySize(entry(1, 1, size))) // entry 2's frame
	tests := []struct {
		name    string
		at      int64
		openErr bool
	}{
		{"length", frame1 + 1, true},
		{"index", frame1 + frameHeader + 7, true},
		{"data", frame1 + frameHeader + 50, false},
		{"header", 3, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			mod := map[string][]byte{}
			for k, v := range files {
				mod[k] = v
			}
			b := append([]byte(nil), files[first]...)
			b[tt.at] ^= 0x40
			mod[first] = b
			writeFiles(t, dir, mod)
			s, err := Open(dir, testConfig(t, false))
			var ce *CorruptError
			if tt.openErr {
				if !errors.As(err, &ce) || ce.File != filepath.Join(dir, first) {
					t.Fatalf("Open: %v, want a *CorruptError in %s", err, first)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			var l raft.Log
			if err := s.GetLog(2, &l); !errors.As(err, &ce) || ce.Pos != frame1 {
				t.Fatalf("GetLog(2): %v, want a *CorruptError at %d", err, frame1)
			}
			if err := s.GetLog(3, &l); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestCrashInterruptedRoll: a last segment with no valid header (the spare
// renamed, its header never synced) or with no entries is removed.
func TestCrashInterruptedRoll(t *testing.T) {
	const n, size = 60, 300
	files, _, _ := crashFixture(t, n, size)
	for _, tt := range []struct {
		name string
		body []byte
	}{
		{"zero header", make([]byte, 4096)},

		{"short", []byte{1, 2}},
		{"header only", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			mod := map[string][]byte{}
			for k, v := range files {
				mod[k] = v
			}
			writeFiles(t, dir, mod)
			s, err := Open(dir, testConfig(t, false))
			if err != nil {
				t.Fatal(err)
			}
			want, _ := s.LastIndex()
			_ = s.Close()
			body := tt.body
			if body == nil { // a valid header, no entries
				body = append(segHeader(want+1, newSalt()), make([]byte, 100)...)
			}
			mod[segName(want+1)] = body
			writeFiles(t, dir, mod)
			s, err = Open(dir, testConfig(t, false))
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer s.Close()
			checkRange(t, s, 1, want, func(i uint64) *raft.Log { return entry(i, 1, size) })
			if _, err := os.Stat(filepath.Join(dir, segName(want+1))); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the empty segment is still there: %v", err)
			}
		})
	}
}
