package broker

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/stratalog/strata/internal/topic"
)

func TestFetchBufClasses(t *testing.T) {
	for _, tc := range []struct{ n, class int }{
		{1, 0}, {64 << 10, 0}, {64<<10 + 1, 1}, {1 << 20, 4}, {1<<20 + 1, 5}, {16 << 20, 8}, {16<<20 + 1, 9},
	} {
		if got := classFor(tc.n); got != tc.class {
			t.Errorf("classFor(%d) = %d, want %d", tc.n, got, tc.class)
		}
	}
}

func TestBufPoolBounds(t *testing.T) {
	var p bufPool
	small := make([]byte, 10, 1000) // below every class: not kept
	p.put(small)
	big := p.get(1 << 20)
	if cap(big) != 1<<20 || len(big) != 0 {
		t.Fatalf("get(1 MiB): len %d cap %d", len(big), cap(big))
	}
	p.put(append(big, 1, 2, 3))
	if again := p.get(1<<19 + 1); cap(again) != 1<<20 || len(again) != 0 {
		t.Fatalf("get after put: len %d cap %d, want the kept 1 MiB buffer, empty", len(again), cap(again))
	}
	// A grown buffer goes to the largest class it fills.
	p.put(make([]byte, 0, 3<<20))
	if got := p.get(2 << 20); cap(got) != 3<<20 {
		t.Fatalf("get(2 MiB) cap %d, want the kept 3 MiB buffer", cap(got))
	}
	for range fetchPoolKeepBytes/(16<<20) + 2 {
		p.put(make([]byte, 0, 16<<20))
	}
	if p.kept > fetchPoolKeepBytes {
		t.Fatalf("pool keeps %d bytes, bound %d", p.kept, fetchPoolKeepBytes)
	}
	if p.dropped.Load() < 2 {
		t.Fatalf("dropped %d buffers past the bound, want 2", p.dropped.Load())
	}
}

// TestFetchLeased checks that a leased fetch returns what Fetch returns,
// that its buffer goes back once however often it is released, and that
// the next fetch reuses it.
func TestFetchLeased(t *testing.T) {
	tn := openTestNode(t, t.TempDir())
	ctx := context.Background()
	if _, err := tn.b.CreateTopic(ctx, "t", topic.Config{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := tn.b.Produce(ctx, "t", 0, batchOf(t, plain, strings.Repeat(string(rune('a'+i)), 500))); err != nil {
			t.Fatal(err)
		}
	}
	want, err := tn.b.Fetch(ctx, "t", 0, 0, 1<<20, 0)
	if err != nil {
		t.Fatal(err)
	}
	got, lease, err := tn.b.FetchLeased(ctx, "t", 0, 0, 1<<20, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Records, want.Records) || got.HighWatermark != want.HighWatermark || lease == nil {
		t.Fatalf("leased fetch: %d bytes, hwm %d, lease %v; want %d bytes, hwm %d, a lease",
			len(got.Records), got.HighWatermark, lease, len(want.Records), want.HighWatermark)
	}
	first := &got.Records[0]
	fetchBufs.mu.Lock()
	kept := fetchBufs.kept
	fetchBufs.mu.Unlock()
	lease.Release()
	lease.Release() // a second release must not put the buffer back again
	fetchBufs.mu.Lock()
	if added := fetchBufs.kept - kept; added != 1<<20 {
		t.Errorf("two releases added %d bytes to the pool, want one buffer (%d)", added, 1<<20)
	}
	fetchBufs.mu.Unlock()
	again, lease2, err := tn.b.FetchLeased(ctx, "t", 0, 1, 1<<20, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer lease2.Release()
	if &again.Records[0] != first {
		t.Errorf("the next fetch did not reuse the released buffer")
	}

	// At the high watermark: no records, no lease, nothing held.
	empty, lease3, err := tn.b.FetchLeased(ctx, "t", 0, 3, 1<<20, 0)
	if err != nil || empty.Records != nil || lease3 != nil {
		t.Fatalf("fetch at the high watermark: records %v, lease %v, err %v; want nil, nil, nil", empty.Records, lease3, err)
	}
	var nilLease *FetchLease
	nilLease.Release()
}
