package cluster

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
)

// A snapshot that a crash cut short (its raft directory still <id>.tmp)
// is removed on open, with the segment links made for it; a finished
// snapshot keeps its links.
func TestSnapshotStoreRemovesUnfinishedSnapshots(t *testing.T) {
	dir := t.TempDir()
	fs, err := raft.NewFileSnapshotStore(dir, 2, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	sink, err := fs.Create(raft.SnapshotVersionMax, 10, 1, raft.Configuration{}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sink.Write([]byte("manifest")); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	done := sink.ID()
	const cut = "1-20-999"
	snapData := filepath.Join(dir, "snapdata")
	files := map[string]bool{ // path → kept
		filepath.Join(dir, "snapshots", cut+".tmp", "meta.json"):            false,
		filepath.Join(snapData, cut, "7", "0", "00000000000000000000.log"):  false,
		filepath.Join(snapData, done, "7", "0", "00000000000000000000.log"): true,
	}
	for f := range files {
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := newDataSnapshotStore(fs, snapData); err != nil {
		t.Fatal(err)
	}
	for f, kept := range files {
		_, err := os.Stat(f)
		if kept && err != nil {
			t.Errorf("%s: removed (%v), want kept", f, err)
		}
		if !kept && err == nil {
			t.Errorf("%s: still there, want removed", f)
		}
	}
}
