package kafka_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stratalog/strata/internal/agent"
)

// node is the single node TestMain starts: a real agent (raft, segment
// logs, the gRPC service) with its Kafka listener.
var node *agent.Agent

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "strata-kafka-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cfg := agent.DefaultConfig()
	cfg.DataDir, cfg.NodeID, cfg.MetadataVoters = dir, "k1", 1
	cfg.GRPCAddr, cfg.HTTPAddr, cfg.ClusterAddr, cfg.GossipAddr = "127.0.0.1:0", "", "127.0.0.1:0", ""
	cfg.KafkaAddr = "127.0.0.1:0"
	cfg.MinFreeDiskBytes = -1
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	node, err = agent.New(ctx, cfg, nil)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start node:", err)
		os.Exit(1)
	}
	code := m.Run()
	node.Close()
	os.RemoveAll(dir)
	os.Exit(code)
}

// newClient returns a franz-go client of the node.
func newClient(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(node.KafkaAddr())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
