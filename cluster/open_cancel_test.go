package cluster

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/wait"
)

// openResult is what an open that runs in a goroutine returned.
type openResult[T any] struct {
	v   T
	err error
}

// waitOpen waits for an open run in the background, at most d: a
// cancellation that is not honoured fails the test instead of hanging it.
func waitOpen[T any](t *testing.T, ch <-chan openResult[T], d time.Duration) openResult[T] {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(d):
		t.Fatalf("still opening %v after its context ended", d)
		panic("unreachable")
	}
}

// Canceling NewMembership's context ends a join that waits between its
// attempts; serf is shut down and its goroutines end.
func TestMembershipJoinCanceled(t *testing.T) {
	baseline := runtime.NumGoroutine()
	cfg := membTestConfig("patient")
	cfg.Join = []string{deadAddr(t)}
	cfg.JoinAttempts = 100
	cfg.JoinBackoff = 10 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	ch := make(chan openResult[*Membership], 1)
	go func() {
		m, err := NewMembership(ctx, cfg)
		ch <- openResult[*Membership]{m, err}
	}()
	r := waitOpen(t, ch, 5*time.Second)
	if r.err == nil {
		r.v.Close()
		t.Fatal("joined a dead address")
	}
	if !errors.Is(r.err, ErrJoinFailed) || !errors.Is(r.err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want ErrJoinFailed and the context's error", r.err)
	}
	wait.Goroutines(t, 5*time.Second, baseline)
}

// Canceling OpenNode's context aborts an open whose join waits, and
// releases what it opened: the directory opens again at once.
func TestOpenNodeCanceled(t *testing.T) {
	dir := t.TempDir()
	cfg := testNodeConfig("n1", dir, []string{deadAddr(t)})
	cfg.Gossip.JoinAttempts = 100
	cfg.Gossip.JoinBackoff = 10 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	ch := make(chan openResult[*Node], 1)
	go func() {
		n, err := OpenNode(ctx, cfg, nil)
		ch <- openResult[*Node]{n, err}
	}()
	r := waitOpen(t, ch, 5*time.Second)
	if r.err == nil {
		r.v.Close()
		t.Fatal("opened a node whose join cannot succeed")
	}
	if !errors.Is(r.err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the context's error", r.err)
	}

	// A node with data groups on disk: a context that has ended stops the
	// open before it recovers them.
	cfg.Join = nil
	n, err := OpenNode(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("open again after a canceled open: %v", err)
	}
	sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer scancel()
	if err := errors.Join(n.Start(sctx), n.Close()); err != nil {
		t.Fatal(err)
	}
	done, stop := context.WithCancel(context.Background())
	stop()
	if n, err := OpenNode(done, cfg, nil); !errors.Is(err, context.Canceled) {
		if err == nil {
			n.Close()
		}
		t.Fatalf("open with a canceled context: %v, want context.Canceled", err)
	}
	n, err = OpenNode(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("open again after a canceled open: %v", err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
}
