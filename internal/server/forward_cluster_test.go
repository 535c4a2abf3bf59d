package server_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/wait"

	"github.com/stratalog/strata/api/record"
	"github.com/stratalog/strata/internal/agent"
	"github.com/stratalog/strata/internal/broker"
	"github.com/stratalog/strata/internal/server"
	"github.com/stratalog/strata/internal/topic"
)

// startTwoNodes starts two real agents (raft groups, broker, gRPC server)
// on 127.0.0.1, the second joining the first, and returns them once each
// knows both.
func startTwoNodes(t *testing.T) [2]*agent.Agent {
	t.Helper()
	var as [2]*agent.Agent
	for i := range as {
		cfg := agent.DefaultConfig()
		cfg.NodeID, cfg.DataDir = fmt.Sprintf("n%d", i+1), t.TempDir()
		cfg.GRPCAddr, cfg.HTTPAddr, cfg.ClusterAddr, cfg.GossipAddr = "127.0.0.1:0", "", "127.0.0.1:0", "127.0.0.1:0"
		cfg.KafkaAddr, cfg.DataGroups, cfg.LogLevel = "", 1, "error"
		cfg.RaftHeartbeatTimeout = 400 * time.Millisecond
		if i > 0 {
			cfg.Join = []string{as[0].GossipAddr()}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		a, err := agent.New(ctx, cfg, nil)
		cancel()
		if err != nil {
			t.Fatalf("start %s: %v", cfg.NodeID, err)
		}
		t.Cleanup(func() { a.Close() })
		as[i] = a
	}
	wait.For(t, 30*time.Second, "both nodes know both", func() bool {
		return len(as[0].Broker().Nodes()) == 2 && len(as[1].Broker().Nodes()) == 2
	})
	return as
}

// TestForwardedErrorsKeepTheirReason: a request one node forwards to
// another (through Peers, over gRPC) fails with the same domain error as
// it would have there: an unknown queue group stays one, an unknown
// partition stays one, and neither becomes an unknown topic.
func TestForwardedErrorsKeepTheirReason(t *testing.T) {
	as := startTwoNodes(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	leader, follower := as[0], as[1]
	wait.For(t, 30*time.Second, "a metadata leader", func() bool {
		return leader.Broker().ClusterStatus().MetadataLeader != ""
	})
	if leader.Broker().ClusterStatus().MetadataLeader != "n1" {
		leader, follower = follower, leader
	}
	wait.For(t, 30*time.Second, `topic "jobs"`, func() bool {
		_, err := leader.Broker().CreateTopic(ctx, "jobs", topic.Config{Partitions: 1, ReplicationFactor: 1})
		return err == nil || errors.Is(err, topic.ErrTopicExists)
	})

	peers := server.NewPeers()
	t.Cleanup(func() { peers.Close() })
	addr := leader.GRPCAddr()
	batch, err := record.AppendBatch(nil, []record.Record{{Value: []byte("v")}}, record.BatchOptions{ProducerID: -1})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		call func() error
		want error
	}{
		{"unknown queue group", func() error {
			_, err := peers.ResetQueuePartition(ctx, addr, "jobs", "nobody", 0, broker.ResetSpec{Spec: broker.SpecEarliest})
			return err
		}, broker.ErrUnknownQueueGroup},
		{"unknown partition", func() error {
			_, err := peers.Produce(ctx, addr, "jobs", 7, batch)
			return err
		}, topic.ErrUnknownPartition},
		{"unknown topic", func() error {
			_, err := peers.Produce(ctx, addr, "nothing-here", 0, batch)
			return err
		}, topic.ErrUnknownTopic},
		{"unknown producer", func() error {
			_, _, err := peers.InitProducer(ctx, addr, 1<<40)
			return err
		}, topic.ErrUnknownProducer},
		{"topic exists", func() error {
			return peers.CreateTopic(ctx, addr, "jobs", topic.Config{Partitions: 1, ReplicationFactor: 1})
		}, topic.ErrTopicExists},
		{"invalid config", func() error {
			return peers.CreateTopic(ctx, addr, "wide", topic.Config{Partitions: 1, ReplicationFactor: 9})
		}, broker.ErrInvalidConfig},
		{"invalid batch", func() error {
			_, err := peers.Produce(ctx, addr, "jobs", 0, batch[:len(batch)-1])
			return err
		}, broker.ErrInvalidBatch},
		// Through the follower's own broker, which forwards to the
		// metadata leader by itself.
		{"invalid config through the follower", func() error {
			_, err := follower.Broker().CreateTopicAnywhere(ctx, "wide", topic.Config{Partitions: 1, ReplicationFactor: 9})
			return err
		}, broker.ErrInvalidConfig},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if !errors.Is(err, tc.want) {
				t.Fatalf("forwarded error %v, want %v", err, tc.want)
			}
			if tc.want != topic.ErrUnknownTopic && errors.Is(err, topic.ErrUnknownTopic) {
				t.Fatalf("forwarded error %v is also an unknown topic", err)
			}
		})
	}
}
