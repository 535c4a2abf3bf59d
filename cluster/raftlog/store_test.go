package raftlog

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/hashicorp/raft"
)

// The tests named after raft-boltdb's (bolt_store_test.go) check the same
// LogStore contract on this store.

func TestStore_FirstIndexLastIndex(t *testing.T) {
	s := openTest(t, t.TempDir(), testConfig(t, false))
	if i, err := s.FirstIndex(); err != nil || i != 0 {
		t.Fatalf("empty FirstIndex = %d, %v", i, err)
	}
	if i, err := s.LastIndex(); err != nil || i != 0 {
		t.Fatalf("empty LastIndex = %d, %v", i, err)
	}
	if err := s.StoreLogs(entries(1, 3, 1, 10)); err != nil {
		t.Fatal(err)
	}
	checkRange(t, s, 1, 3, func(i uint64) *raft.Log { return entry(i, 1, 10) })
}

func TestStore_GetLog(t *testing.T) {
	s := openTest(t, t.TempDir(), testConfig(t, false))
	var l raft.Log
	if err := s.GetLog(1, &l); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("GetLog on empty store: %v", err)
	}
	if err := s.StoreLogs(entries(1, 3, 1, 10)); err != nil {
		t.Fatal(err)
	}
	if err := s.GetLog(2, &l); err != nil || !sameLog(&l, entry(2, 1, 10)) {
		t.Fatalf("GetLog(2) = %+v, %v", l, err)
	}
	for _, i := range []uint64{0, 4, 1 << 63} {
		if err := s.GetLog(i, &l); !errors.Is(err, raft.ErrLogNotFound) {
			t.Fatalf("GetLog(%d): %v, want ErrLogNotFound", i, err)
		}
	}
}

func TestStore_SetLog(t *testing.T) {
	s := openTest(t, t.TempDir(), testConfig(t, false))
	l := &raft.Log{Index: 1, Term: 1, Data: []byte("log1")}
	if err := s.StoreLog(l); err != nil {
		t.Fatal(err)
	}
	var got raft.Log
	if err := s.GetLog(1, &got); err != nil || !sameLog(&got, l) {
		t.Fatalf("GetLog(1) = %+v, %v", got, err)
	}
	// An entry with no data, no extensions and a zero time round-trips.
	if err := s.StoreLog(&raft.Log{Index: 2, Term: 2, Type: raft.LogNoop}); err != nil {
		t.Fatal(err)
	}
	if err := s.GetLog(2, &got); err != nil || got.Data != nil || got.Extensions != nil || !got.AppendedAt.IsZero() || got.Type != raft.LogNoop {
		t.Fatalf("GetLog(2) = %+v, %v", got, err)
	}
}

func TestStore_SetLogs(t *testing.T) {
	s := openTest(t, t.TempDir(), testConfig(t, false))
	if err := s.StoreLogs(entries(1, 2, 1, 100)); err != nil {
		t.Fatal(err)
	}
	checkRange(t, s, 1, 2, func(i uint64) *raft.Log { return entry(i, 1, 100) })
}

func TestStore_StoreLogsRejects(t *testing.T) {
	tests := []struct {
		name string
		logs []*raft.Log
		want error
	}{
		{"gap after last", entries(5, 6, 1, 1), ErrNonContiguous},
		{"overlap", entries(3, 4, 1, 1), ErrNonContiguous},
		{"gap inside batch", []*raft.Log{entry(4, 1, 1), entry(6, 1, 1)}, ErrNonContiguous},
		{"too large", []*raft.Log{entry(4, 1, 4<<10)}, ErrEntryTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTest(t, t.TempDir(), testConfig(t, false))
			if err := s.StoreLogs(entries(1, 3, 1, 10)); err != nil {
				t.Fatal(err)
			}
			if err := s.StoreLogs(tt.logs); !errors.Is(err, tt.want) {
				t.Fatalf("StoreLogs: %v, want %v", err, tt.want)
			}
			// A refused batch changes nothing and does not fail the store.
			if err := s.StoreLogs(entries(4, 4, 1, 10)); err != nil {
				t.Fatal(err)
			}
			checkRange(t, s, 1, 4, func(i uint64) *raft.Log { return entry(i, 1, 10) })
		})
	}
	t.Run("index 0", func(t *testing.T) {
		s := openTest(t, t.TempDir(), testConfig(t, false))
		if err := s.StoreLog(&raft.Log{}); !errors.Is(err, ErrNonContiguous) {
			t.Fatalf("StoreLog(index 0): %v", err)
		}
	})
}

func TestStore_DeleteRange(t *testing.T) {
	all := func(i uint64) *raft.Log { return entry(i, 1, 300) }
	tests := []struct {
		name        string
		min, max    uint64
		first, last uint64
		wantErr     error
	}{
		{"head", 1, 2, 3, 100, nil},
		{"head across segments", 1, 80, 81, 100, nil},
		{"head from below the first", 0, 50, 51, 100, nil},
		{"tail", 99, 100, 1, 98, nil},
		{"tail across segments", 20, 100, 1, 19, nil},
		{"tail from a segment's first entry", 0, 0, 0, 0, nil}, // filled in below
		{"tail past the last", 50, 1 << 40, 1, 49, nil},
		{"all", 1, 100, 0, 0, nil},
		{"all and more", 0, 1000, 0, 0, nil},
		{"nothing: above", 101, 200, 1, 100, nil},
		{"nothing: empty range", 5, 4, 1, 100, nil},
		{"middle", 10, 20, 1, 100, ErrNonContiguous},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig(t, false)
			s := openTest(t, dir, cfg)
			if err := s.StoreLogs(entries(1, 100, 1, 300)); err != nil {
				t.Fatal(err)
			}
			if tt.min == 0 && tt.max == 0 {
				// The first entry of the second segment.
				tt.min, tt.first = s.segs[1].base, 1
				tt.max, tt.last = 100, s.segs[1].base-1
			}
			if err := s.DeleteRange(tt.min, tt.max); !errors.Is(err, tt.wantErr) {
				t.Fatalf("DeleteRange(%d, %d): %v, want %v", tt.min, tt.max, err, tt.wantErr)
			}
			checkRange(t, s, tt.first, tt.last, all)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openTest(t, dir, cfg)
			checkRange(t, s, tt.first, tt.last, all)
			// The log goes on from its end (anywhere, if empty).
			next := tt.last + 1
			if tt.last == 0 {
				next = 500
			}
			if err := s.StoreLogs(entries(next, next+30, 2, 300)); err != nil {
				t.Fatal(err)
			}
			first := tt.first
			if first == 0 {
				first = next
			}
			want := func(i uint64) *raft.Log {
				if i >= next {
					return entry(i, 2, 300)
				}
				return all(i)
			}
			checkRange(t, s, first, next+30, want)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openTest(t, dir, cfg)
			checkRange(t, s, first, next+30, want)
		})
	}
}

func TestStore_HeadCompactionRemovesSegments(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, testConfig(t, true))
	if err := s.StoreLogs(entries(1, 200, 1, 300)); err != nil {
		t.Fatal(err)
	}
	before := len(segFiles(t, dir))
	if before < 4 {
		t.Fatalf("%d segments, want several", before)
	}
	if err := s.DeleteRange(1, 150); err != nil {
		t.Fatal(err)
	}
	after := segFiles(t, dir)
	if len(after) >= before {
		t.Fatalf("segments %d -> %d after compaction", before, len(after))
	}
	// The first kept segment starts at or below the new first index.
	if base, _ := parseSegName(filepath.Base(after[0])); base > 151 {
		t.Fatalf("first segment starts at %d, after the first index 151", base)
	}
}

// A crash after the first-index marker is written and before the segments
// below it are removed must not bring their entries back.
func TestStore_HeadMarkerWithoutRemoval(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, true)
	s := openTest(t, dir, cfg)
	if err := s.StoreLogs(entries(1, 200, 1, 300)); err != nil {
		t.Fatal(err)
	}
	n := len(segFiles(t, dir))
	s.wmu.Lock()
	err := s.writeHead(120) // the first step of DeleteRange(1, 119) only
	s.wmu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir, cfg)
	checkRange(t, s, 120, 200, func(i uint64) *raft.Log { return entry(i, 1, 300) })
	if m := len(segFiles(t, dir)); m >= n {
		t.Fatalf("open left %d of %d segments", m, n)
	}
}

func TestOpenRejectsUnknownFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "1.seg"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, testConfig(t, false)); !errors.Is(err, ErrUnknownFile) {
		t.Fatalf("Open: %v, want ErrUnknownFile", err)
	}
}

func TestOpenLocksDir(t *testing.T) {
	dir := t.TempDir()
	_ = openTest(t, dir, testConfig(t, false))
	if _, err := Open(dir, testConfig(t, false)); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
		ok   bool
	}{
		{"default", func(*Config) {}, true},
		{"segment too small", func(c *Config) { c.SegmentBytes = 100 }, false},
		{"segment too large", func(c *Config) { c.SegmentBytes = 1 << 33 }, false},
		{"entry too small", func(c *Config) { c.MaxEntryBytes = 10 }, false},
		{"entry does not fit", func(c *Config) { c.MaxEntryBytes = int(c.SegmentBytes) }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.mod(&c)
			err := c.Validate()
			if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrInvalidConfig)) {
				t.Fatalf("Validate: %v", err)
			}
		})
	}
}

func TestCloseIdempotent(t *testing.T) {
	s := openTest(t, t.TempDir(), testConfig(t, true))
	if err := s.StoreLogs(entries(1, 100, 1, 300)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var l raft.Log
	if err := s.GetLog(1, &l); !errors.Is(err, ErrClosed) {
		t.Fatalf("GetLog after Close: %v", err)
	}
	if err := s.StoreLog(entry(101, 1, 1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("StoreLog after Close: %v", err)
	}
}

// GetLog runs concurrently with StoreLogs and DeleteRange (run with -race).
func TestConcurrentReadersAndWriter(t *testing.T) {
	s := openTest(t, t.TempDir(), testConfig(t, false))
	const n = 2000
	var wg sync.WaitGroup
	done := make(chan struct{})
	for range 3 {
		wg.Go(func() {
			var l raft.Log
			for {
				select {
				case <-done:
					return
				default:
				}
				first, _ := s.FirstIndex()
				last, _ := s.LastIndex()
				for i := first; i <= last && i < first+20; i++ {
					err := s.GetLog(i, &l)
					if err == nil && !sameLog(&l, entry(i, 1, 200)) {
						t.Errorf("GetLog(%d) = %+v", i, l)
						return
					}
					if err != nil && !errors.Is(err, raft.ErrLogNotFound) {
						t.Errorf("GetLog(%d): %v", i, err)
						return
					}
				}
			}
		})
	}
	for i := uint64(1); i <= n; i += 10 {
		if err := s.StoreLogs(entries(i, i+9, 1, 200)); err != nil {
			t.Fatal(err)
		}
		if i > 500 && i%100 == 1 {
			if err := s.DeleteRange(0, i-400); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(done)
	wg.Wait()
}

// TestSpareAskedWhenHalfFull: a spare is prepared for a store without
// segments and once the last segment is half full, not before; rolls use it.
func TestSpareAskedWhenHalfFull(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, true)
	s := openTest(t, dir, cfg)
	spare := filepath.Join(dir, spareName)
	if err := s.StoreLog(entry(1, 1, 100)); err != nil {
		t.Fatal(err)
	}
	// The first segment is the spare, zero-filled to its full size.
	seg := segFiles(t, dir)
	if st, err := os.Stat(seg[0]); err != nil || st.Size() != cfg.SegmentBytes {
		t.Fatalf("first segment: %v, %v; want %d bytes", st, err, cfg.SegmentBytes)
	}
	if _, err := os.Stat(spare); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a spare exists while the segment is almost empty: %v", err)
	}
	i := uint64(2)
	for ; s.segs[0].end < cfg.SegmentBytes/2; i++ {
		if err := s.StoreLog(entry(i, 1, 100)); err != nil {
			t.Fatal(err)
		}
	}
	s.wmu.Lock()
	asked := s.spare.asked
	s.wmu.Unlock()
	if !asked {
		t.Fatal("no spare asked for at half full")
	}
	for ; len(s.segs) < 3; i++ {
		if err := s.StoreLog(entry(i, 1, 100)); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range segFiles(t, dir) {
		if st, err := os.Stat(p); err != nil || st.Size() != cfg.SegmentBytes {
			t.Fatalf("segment %s: %v, %v; want %d bytes", p, st, err, cfg.SegmentBytes)
		}
	}
}

// After the whole log is deleted (raft does so after restoring a snapshot),
// the next StoreLogs may start anywhere, also below the old first-index
// marker, and a reopen keeps it.
func TestStore_RestartAfterDeleteAll(t *testing.T) {
	for _, start := range []uint64{3, 101, 5000} {
		t.Run(fmt.Sprint(start), func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig(t, true)
			s := openTest(t, dir, cfg)
			if err := s.StoreLogs(entries(1, 100, 1, 300)); err != nil {
				t.Fatal(err)
			}
			if err := s.DeleteRange(1, 100); err != nil {
				t.Fatal(err)
			}
			checkRange(t, s, 0, 0, nil)
			if n := len(segFiles(t, dir)); n != 0 {
				t.Fatalf("%d segments left after deleting everything", n)
			}
			if err := s.StoreLogs(entries(start, start+9, 2, 300)); err != nil {
				t.Fatal(err)
			}
			want := func(i uint64) *raft.Log { return entry(i, 2, 300) }
			checkRange(t, s, start, start+9, want)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s2 := openTest(t, dir, cfg)
			checkRange(t, s2, start, start+9, want)
		})
	}
}

// After a failed write the store takes no more writes until it is
// reopened, and the reopened store holds what was acknowledged.
func TestWriteFailureIsSticky(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, false)
	s, err := Open(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.StoreLogs(entries(1, 10, 1, 100)); err != nil {
		t.Fatal(err)
	}
	_ = s.segs[0].f.Close() // the next write fails
	if err := s.StoreLogs(entries(11, 11, 1, 100)); err == nil {
		t.Fatal("StoreLogs on a closed file succeeded")
	}
	if err := s.StoreLogs(entries(11, 11, 1, 100)); !errors.Is(err, ErrFailed) {
		t.Fatalf("StoreLogs after a failure: %v, want ErrFailed", err)
	}
	if err := s.DeleteRange(1, 5); !errors.Is(err, ErrFailed) {
		t.Fatalf("DeleteRange after a failure: %v, want ErrFailed", err)
	}
	_ = s.Close() // reports the file closed twice
	s = openTest(t, dir, cfg)
	checkRange(t, s, 1, 10, func(i uint64) *raft.Log { return entry(i, 1, 100) })
}
