package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The example file in testdata documents every key: it must load and
// validate, and an unknown key must be refused.
func TestConfigFile(t *testing.T) {
	cfg := DefaultConfig()
	if err := cfg.LoadFile(filepath.Join("..", "..", "testdata", "strata.example.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.NodeID != "strata-1" || cfg.MaxSegmentBytes != 512<<20 {
		t.Fatalf("loaded %+v", cfg)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("data_dri: /x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg = DefaultConfig()
	if err := cfg.LoadFile(bad); err == nil || !strings.Contains(err.Error(), "data_dri") {
		t.Fatalf("typo in a key: err %v, want it named", err)
	}
	cfg = DefaultConfig()
	cfg.DataGroups = 0
	if err := cfg.Validate(); err == nil {
		t.Fatal("0 data groups validated")
	}
}

// Nothing in a config file turns durability off: the test-only switch
// that acknowledged before commit is a failpoint of test binaries now
// (internal/broker/failpoint.go), and its old key is refused.
func TestConfigFileNoUnsafeAck(t *testing.T) {
	path := filepath.Join(t.TempDir(), "unsafe.yaml")
	if err := os.WriteFile(path, []byte("unsafe_ack_before_commit: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	if err := cfg.LoadFile(path); err == nil || !strings.Contains(err.Error(), "unsafe_ack_before_commit") {
		t.Fatalf("unsafe_ack_before_commit: err %v, want the key refused", err)
	}
}
