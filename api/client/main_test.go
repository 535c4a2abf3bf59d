package client_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/agent"
)

// brokers is the address of a real single-node broker that TestMain starts
// for the examples and the benchmarks (127.0.0.1:7400 in a default setup).
var brokers []string

// TestMain runs the package's tests beside a real broker: one node with
// its raft groups and storage in a temporary directory, fsync before ack.
func TestMain(m *testing.M) {
	os.Exit(runWithBroker(m))
}

func runWithBroker(m *testing.M) int {
	dir, err := os.MkdirTemp("", "strata-client-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	cfg := agent.DefaultConfig()
	cfg.DataDir, cfg.NodeID = dir, "client-test"
	cfg.GRPCAddr, cfg.HTTPAddr, cfg.ClusterAddr, cfg.GossipAddr = "127.0.0.1:0", "", "127.0.0.1:0", "127.0.0.1:0"
	cfg.KafkaAddr = ""
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	a, err := agent.New(ctx, cfg, nil)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start broker:", err)
		return 1
	}
	defer a.Close()
	brokers = []string{a.GRPCAddr()}
	return m.Run()
}
