package raftlog

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/hashicorp/raft"
)

// model is what the store should hold.
type model struct {
	logs        map[uint64]*raft.Log
	first, last uint64
}

func (m *model) check(t *testing.T, s *Store, rng *rand.Rand, step int) {
	t.Helper()
	if f, _ := s.FirstIndex(); f != m.first {
		t.Fatalf("step %d: FirstIndex %d, model %d", step, f, m.first)
	}
	if l, _ := s.LastIndex(); l != m.last {
		t.Fatalf("step %d: LastIndex %d, model %d", step, l, m.last)
	}
	var l raft.Log
	for range 8 {
		i := m.first + uint64(rng.IntN(int(m.last-m.first)+5)) - 2
		err := s.GetLog(i, &l)
		want, ok := m.logs[i]
		if m.first == 0 || i < m.first || i > m.last {
			ok = false
		}
		switch {
		case ok && err != nil:
			t.Fatalf("step %d: GetLog(%d): %v", step, i, err)
		case ok && !sameLog(&l, want):
			t.Fatalf("step %d: GetLog(%d) = %+v, want %+v", step, i, l, *want)
		case !ok && !errors.Is(err, raft.ErrLogNotFound):
			t.Fatalf("step %d: GetLog(%d) outside [%d, %d]: %v", step, i, m.first, m.last, err)
		}
	}
}

// TestModel runs random StoreLogs, DeleteRange of the head, of the tail and
// of everything, and reopens, against a map.
func TestModel(t *testing.T) {
	for _, tc := range []struct {
		seed  uint64
		steps int
		sync  bool
	}{{1, 4000, false}, {2, 4000, false}, {3, 4000, false}, {4, 600, true}} {
		t.Run(fmt.Sprintf("seed=%d/sync=%v", tc.seed, tc.sync), func(t *testing.T) {
			if testing.Short() && tc.sync {
				t.Skip("short")
			}
			runModel(t, tc.seed, tc.steps, tc.sync)
		})
	}
}

func runModel(t *testing.T, seed uint64, steps int, sync bool) {
	rng := rand.New(rand.NewPCG(seed, seed))
	dir := t.TempDir()
	cfg := testConfig(t, sync)
	cfg.SegmentBytes = MinSegmentBytes
	cfg.MaxEntryBytes = 1 << 10
	s := openTest(t, dir, cfg)
	m := &model{logs: map[uint64]*raft.Log{}}
	term := uint64(1)
	for step := range steps {
		switch op := rng.IntN(100); {
		case op < 55: // append
			next := m.last + 1
			if m.last == 0 {
				next = uint64(rng.IntN(1000)) + 1
			}
			n := rng.IntN(12) + 1
			if rng.IntN(10) == 0 {
				term++
			}
			batch := make([]*raft.Log, n)
			for k := range batch {
				batch[k] = entry(next+uint64(k), term, rng.IntN(900))
			}
			if err := s.StoreLogs(batch); err != nil {
				t.Fatalf("step %d: StoreLogs(%d..%d): %v", step, next, next+uint64(n)-1, err)
			}
			for _, l := range batch {
				m.logs[l.Index] = l
			}
			if m.last == 0 {
				m.first = next
			}
			m.last = next + uint64(n) - 1
		case op < 70 && m.last > 0: // head
			hi := m.first + uint64(rng.IntN(int(m.last-m.first)+1))
			if err := s.DeleteRange(m.first-uint64(rng.IntN(2)), hi); err != nil {
				t.Fatalf("step %d: DeleteRange head ..%d: %v", step, hi, err)
			}
			if hi >= m.last {
				m.first, m.last = 0, 0
			} else {
				m.first = hi + 1
			}
		case op < 85 && m.last > 0: // tail
			lo := m.first + uint64(rng.IntN(int(m.last-m.first)+1))
			if err := s.DeleteRange(lo, m.last+uint64(rng.IntN(3))); err != nil {
				t.Fatalf("step %d: DeleteRange tail %d..: %v", step, lo, err)
			}
			if lo == m.first {
				m.first, m.last = 0, 0
			} else {
				m.last = lo - 1
			}
		case op < 90 && m.last > m.first+2: // middle: refused, changes nothing
			if err := s.DeleteRange(m.first+1, m.last-1); !errors.Is(err, ErrNonContiguous) {
				t.Fatalf("step %d: DeleteRange middle: %v", step, err)
			}
		case op < 95: // reopen
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s2, err := Open(dir, cfg)
			if err != nil {
				t.Fatalf("step %d: reopen: %v", step, err)
			}
			s = s2
			t.Cleanup(func() { _ = s2.Close() })
		}
		for i := range m.logs {
			if m.first == 0 || i < m.first || i > m.last {
				delete(m.logs, i)
			}
		}
		m.check(t, s, rng, step)
	}
}
