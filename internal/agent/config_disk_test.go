package agent

import (
	"os"
	"path/filepath"
	"testing"
)

// TestDiskMinFreeBytes: the free-space minimum follows the segment size by
// default, can be set in the file, and turned off.
func TestDiskMinFreeBytes(t *testing.T) {
	cfg := DefaultConfig()
	if got := cfg.DiskMinFreeBytes(); got != 1<<30 {
		t.Fatalf("default with 512 MiB segments: %d, want 1 GiB", got)
	}
	cfg.MaxSegmentBytes = 1 << 20
	if got := cfg.DiskMinFreeBytes(); got != 64<<20 {
		t.Fatalf("default with 1 MiB segments: %d, want 64 MiB", got)
	}
	f := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(f, []byte("min_free_disk_bytes: 268435456\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cfg.LoadFile(f); err != nil {
		t.Fatal(err)
	}
	if got := cfg.DiskMinFreeBytes(); got != 256<<20 {
		t.Fatalf("from the file: %d, want 256 MiB", got)
	}
	cfg.MinFreeDiskBytes = -1
	if got := cfg.DiskMinFreeBytes(); got != 0 {
		t.Fatalf("negative: %d, want 0 (off)", got)
	}
}
