package cluster

import (
	"bytes"
	"testing"

	"github.com/hashicorp/raft"
)

// countingStore counts the reads that reach the store under a logCache.
type countingStore struct {
	*raft.InmemStore
	gets int
}

func (s *countingStore) GetLog(idx uint64, l *raft.Log) error {
	s.gets++
	return s.InmemStore.GetLog(idx, l)
}

func entries(from, to uint64, size int) []*raft.Log {
	var ls []*raft.Log
	for i := from; i <= to; i++ {
		ls = append(ls, &raft.Log{Index: i, Term: 1, Data: bytes.Repeat([]byte{byte(i)}, size)})
	}
	return ls
}

// cached reports which of the indexes from..to a GetLog answers without
// the store, checking every answer's data.
func cached(t *testing.T, c *logCache, s *countingStore, from, to uint64) []uint64 {
	t.Helper()
	var hits []uint64
	for i := from; i <= to; i++ {
		before := s.gets
		var l raft.Log
		if err := c.GetLog(i, &l); err != nil {
			t.Fatalf("GetLog(%d): %v", i, err)
		}
		if l.Index != i || len(l.Data) == 0 || l.Data[0] != byte(i) {
			t.Fatalf("GetLog(%d) = index %d data %v", i, l.Index, l.Data[:1])
		}
		if s.gets == before {
			hits = append(hits, i)
		}
	}
	return hits
}

func TestLogCacheBounds(t *testing.T) {
	s := &countingStore{InmemStore: raft.NewInmemStore()}
	// 4 entries or 3 entries of 1000 bytes, whichever is less.
	c, err := newLogCache(s, 4, 3*(1000+logCacheEntryOverhead))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.StoreLogs(entries(1, 10, 1000)); err != nil {
		t.Fatal(err)
	}
	if got := cached(t, c, s, 1, 10); len(got) != 3 || got[0] != 8 {
		t.Fatalf("byte bound: cached %v, want 8..10", got)
	}
	if err := c.StoreLogs(entries(11, 20, 10)); err != nil {
		t.Fatal(err)
	}
	if got := cached(t, c, s, 1, 20); len(got) != 4 || got[0] != 17 {
		t.Fatalf("entry bound: cached %v, want 17..20", got)
	}
	// raft rewrites the tail from 19 (a new leader's entries): what was
	// cached from there on must not be served.
	rewrite := entries(19, 19, 10)
	rewrite[0].Data[0] = 19
	rewrite[0].Term = 2
	if err := s.DeleteRange(19, 20); err != nil {
		t.Fatal(err)
	}
	if err := c.StoreLogs(rewrite); err != nil {
		t.Fatal(err)
	}
	var l raft.Log
	if err := c.GetLog(20, &l); err == nil {
		t.Fatalf("GetLog(20) after the tail was rewritten: %+v", l)
	}
	if err := c.GetLog(19, &l); err != nil || l.Term != 2 {
		t.Fatalf("GetLog(19) = term %d, %v; want the rewritten entry", l.Term, err)
	}
	if err := c.DeleteRange(1, 10); err != nil {
		t.Fatal(err)
	}
	if got := cached(t, c, s, 11, 19); len(got) != 0 {
		t.Fatalf("after DeleteRange: cached %v, want none", got)
	}
}
