package bufpool

import "testing"

func TestPool(t *testing.T) {
	var p Pool
	for _, n := range []int{0, 1, 255, 256, 257, 4096, 1<<20 + 1, 1 << maxShift} {
		b := p.Get(n)
		if len(*b) != n {
			t.Fatalf("Get(%d) gave length %d", n, len(*b))
		}
		if c := cap(*b); c < n || c&(c-1) != 0 {
			t.Fatalf("Get(%d) gave capacity %d, want a power of two that holds it", n, c)
		}
		p.Put(b)
	}
	// Larger than the largest tier: allocated to size, never kept.
	big := p.Get(1<<maxShift + 1)
	if len(*big) != 1<<maxShift+1 {
		t.Fatalf("Get beyond the tiers gave length %d", len(*big))
	}
	p.Put(big)
	// A buffer that is not a tier's is dropped, not handed out later.
	odd := make([]byte, 1000)
	p.Put(&odd)
	for range 100 {
		if b := p.Get(700); cap(*b) == 1000 {
			t.Fatal("a buffer of a capacity no tier has came back from Get")
		}
	}
	// What is put back is handed out again, at the length asked for.
	b := p.Get(3000)
	(*b)[0] = 42
	arr := &(*b)[:1][0]
	p.Put(b)
	for range 100 {
		c := p.Get(2500)
		if &(*c)[:1][0] == arr {
			if len(*c) != 2500 {
				t.Fatalf("reused buffer has length %d, want 2500", len(*c))
			}
			return
		}
		defer p.Put(c)
	}
	t.Log("the buffer was not reused (sync.Pool may drop it); nothing more to check")
}
