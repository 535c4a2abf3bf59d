package raftlog

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// testConfig has small segments, and no fsync unless sync.
func testConfig(t testing.TB, sync bool) Config {
	t.Helper()
	c := DefaultConfig()
	c.SegmentBytes = 16 << 10
	c.MaxEntryBytes = 4 << 10
	c.NoSync = !sync
	if testing.Verbose() {
		c.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return c
}

// openTest opens a store in dir and closes it at the end of the test.
func openTest(t testing.TB, dir string, cfg Config) *Store {
	t.Helper()
	s, err := Open(dir, cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// entry returns a deterministic entry: its data depends on index and term.
func entry(index, term uint64, size int) *raft.Log {
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(index*31 + term*7 + uint64(i))
	}
	l := &raft.Log{Index: index, Term: term, Type: raft.LogCommand, Data: data,
		AppendedAt: time.Unix(1700000000, int64(index)).UTC()}
	if index%5 == 0 {
		l.Type = raft.LogConfiguration
		l.Extensions = []byte(fmt.Sprintf("ext-%d", index))
	}
	return l
}

// entries returns entries from to to inclusive of term, each of size bytes.
func entries(from, to, term uint64, size int) []*raft.Log {
	var out []*raft.Log
	for i := from; i <= to; i++ {
		out = append(out, entry(i, term, size))
	}
	return out
}

func sameLog(a, b *raft.Log) bool {
	return a.Index == b.Index && a.Term == b.Term && a.Type == b.Type &&
		bytes.Equal(a.Data, b.Data) && bytes.Equal(a.Extensions, b.Extensions) &&
		a.AppendedAt.Equal(b.AppendedAt)
}

// checkRange checks that s holds exactly want, first to last.
func checkRange(t testing.TB, s *Store, first, last uint64, want func(uint64) *raft.Log) {
	t.Helper()
	if got, err := s.FirstIndex(); err != nil || got != first {
		t.Fatalf("FirstIndex = %d, %v; want %d", got, err, first)
	}
	if got, err := s.LastIndex(); err != nil || got != last {
		t.Fatalf("LastIndex = %d, %v; want %d", got, err, last)
	}
	var l raft.Log
	lo := first
	if lo > 0 {
		lo--
	}
	for i := lo; i <= last+1; i++ {
		err := s.GetLog(i, &l)
		if first == 0 || i < first || i > last {
			if !errors.Is(err, raft.ErrLogNotFound) {
				t.Fatalf("GetLog(%d) outside [%d, %d]: %v, want ErrLogNotFound", i, first, last, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("GetLog(%d): %v", i, err)
		}
		if w := want(i); !sameLog(&l, w) {
			t.Fatalf("GetLog(%d) = %+v, want %+v", i, l, *w)
		}
	}
}

// segFiles lists the segment files of dir.
func segFiles(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+segSuffix))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// copyDir copies the files of src into a new temporary directory: the state
// a crash would leave, as the store writes with pwrite only.
func copyDir(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}
