package agent

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

// New's context reaches the join: a node whose members do not answer
// stops waiting for them when the context ends, and releases its ports
// and its data directory.
func TestNewCanceledJoin(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String() // nobody answers there once closed
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.DataDir, cfg.NodeID = t.TempDir(), "n2"
	cfg.GRPCAddr, cfg.HTTPAddr, cfg.ClusterAddr, cfg.GossipAddr = "127.0.0.1:0", "", "127.0.0.1:0", "127.0.0.1:0"
	cfg.KafkaAddr = ""
	cfg.Join = []string{dead}
	cfg.MinFreeDiskBytes = -1
	// Without the context, the join would give up only after its attempts
	// and backoffs (about 3 s by default) and say nothing of the context.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	a, err := New(ctx, cfg, nil)
	if err == nil {
		a.Close()
		t.Fatal("a node joined members that do not exist")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("New = %v, want the context's error", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("New returned %v after its context ended", d)
	}
	// Everything it opened is closed: the same directory opens again.
	cfg.Join, cfg.GossipAddr, cfg.NodeID, cfg.MetadataVoters = nil, "", "n2", 1
	a, err = New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("New again after a canceled New: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
}
