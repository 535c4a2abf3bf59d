package cluster

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/wait"
)

// TestGroupLogStore runs a group on each log store, restarts it on the
// same one, and checks that OpenGroup refuses to switch a written group to
// the other store instead of leaving its log behind.
func TestGroupLogStore(t *testing.T) {
	for _, tt := range []struct{ store, other string }{
		{LogStoreWAL, LogStoreBolt},
		{LogStoreBolt, LogStoreWAL},
		{"", LogStoreBolt}, // empty means wal
	} {
		t.Run("store="+tt.store, func(t *testing.T) {
			dir := t.TempDir()
			m := newTestMux(t)
			ctx := testCtx(t)
			cfg := testGroupConfig("meta", "n1", dir)
			cfg.LogStore = tt.store
			g := openTestGroup(t, cfg, newTestFSM(), m)
			if err := g.BootstrapIfNew(nil); err != nil {
				t.Fatal(err)
			}
			wait.For(t, 10*time.Second, "leadership", g.IsLeader)
			if _, err := g.Apply(ctx, []byte("a")); err != nil {
				t.Fatal(err)
			}
			if err := g.Close(); err != nil {
				t.Fatal(err)
			}
			_, err := os.Stat(filepath.Join(dir, raftLogDir))
			if wal := tt.store != LogStoreBolt; wal != (err == nil) {
				t.Fatalf("LogStore %q: raftlog/ exists: %v", tt.store, err == nil)
			}

			other := cfg
			other.LogStore = tt.other
			if _, err := OpenGroup(other, newTestFSM(), m.Layer("meta")); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("reopen with LogStore %q: %v, want ErrInvalidConfig", tt.other, err)
			}

			fsm := newTestFSM()
			g = openTestGroup(t, cfg, fsm, m)
			wait.For(t, 10*time.Second, "leadership after restart", g.IsLeader)
			if err := g.Barrier(ctx); err != nil {
				t.Fatal(err)
			}
			if got := fsm.commands(); !slices.Equal(got, []string{"a"}) {
				t.Fatalf("after restart FSM holds %q", got)
			}
		})
	}
	t.Run("invalid", func(t *testing.T) {
		cfg := testGroupConfig("meta", "n1", t.TempDir())
		cfg.LogStore = "rocks"
		if err := cfg.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("Validate: %v", err)
		}
	})
}
