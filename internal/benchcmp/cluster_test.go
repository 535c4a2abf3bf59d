package benchcmp

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"
)

func TestClusterWorkloadsAreDistinctAndStartOnlyTheirServers(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Sizes = []int{128, 1024}
	e := newEnv(cfg)
	seen := map[string]bool{}
	for _, w := range e.workloads() {
		k := fmt.Sprintf("%s/%d", w.key(), w.size)
		if seen[k] {
			t.Fatalf("two workloads share the key %q at %d B: their runs would be mixed", w.key(), w.size)
		}
		seen[k] = true
		for _, tg := range w.targets {
			if targetLabels[tg] == "" || targetColors[tg] == "" {
				t.Errorf("target %q has no label or colour", tg)
			}
		}
	}
	e.cfg.Only = []string{"e"}
	ws := e.selected()
	if len(ws) != 4 {
		t.Fatalf("%d (e) workloads, want 4 (asynchronous and one at a time, 2 sizes)", len(ws))
	}
	for _, w := range ws {
		if w.notRun != "" || w.run == nil || w.targets[0] != tStrataR3 {
			t.Errorf("(e)%s %d B: notRun %q, targets %v", w.variant, w.size, w.notRun, w.targets)
		}
	}
	got := slices.Sorted(maps.Keys(targetsOf(ws)))
	if want := []string{tNATSR3, tNATSR3Always, tStrataR3}; !slices.Equal(got, want) {
		t.Fatalf("-only e starts %v, want %v", got, want)
	}
}

func TestNodeArgs(t *testing.T) {
	got := nodeArgs([]string{"--cpuprofile=/x/s-{node}.prof", "--log-level", "info"}, "n2")
	if want := []string{"--cpuprofile=/x/s-n2.prof", "--log-level", "info"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestWaitFor(t *testing.T) {
	calls := 0
	err := waitFor(context.Background(), 5*time.Second, "third call", func() error {
		calls++
		if calls < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("err %v after %d calls", err, calls)
	}
	err = waitFor(context.Background(), 150*time.Millisecond, "never", func() error { return errors.New("no") })
	if err == nil {
		t.Fatal("no error after the deadline")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = waitFor(ctx, time.Minute, "cancelled", func() error { return errors.New("no") })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}
