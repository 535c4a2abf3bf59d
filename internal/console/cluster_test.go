package console_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	stratav1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/internal/agent"
	"github.com/stratalog/strata/internal/console"
)

// startCluster starts 3 agents in this process, joined by gossip, and
// returns their consoles' nodes, the metadata leader's first.
func startCluster(t *testing.T) []*node {
	t.Helper()
	var agents []*agent.Agent
	for i := range 3 {
		cfg := baseConfig(t)
		cfg.NodeID, cfg.GossipAddr, cfg.MetadataVoters = fmt.Sprintf("c%d", i+1), "127.0.0.1:0", 3
		cfg.RaftHeartbeatTimeout, cfg.DataGroups, cfg.DeadNodeTimeout = 400*time.Millisecond, 3, 0
		if i > 0 {
			cfg.Join = []string{agents[0].GossipAddr()}
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		a, err := agent.New(ctx, cfg, nil)
		cancel()
		if err != nil {
			t.Fatalf("start %s: %v", cfg.NodeID, err)
		}
		t.Cleanup(func() { a.Close() })
		agents = append(agents, a)
	}
	var out []*node
	for _, a := range agents {
		conn, err := grpc.NewClient(a.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		out = append(out, &node{t: t, a: a, base: "http://" + a.HTTPAddr(), hc: newClient(nil), grpc: stratav1.NewStrataClient(conn)})
	}
	waitFor(t, 30*time.Second, "3 nodes and a metadata leader", func() string {
		var o console.Overview
		r := out[0].get("/api/v1/overview")
		if r.code != http.StatusOK {
			return r.body
		}
		r.json(t, &o)
		if len(o.Nodes) != 3 || o.MetadataLeader == "" {
			return fmt.Sprintf("%d nodes, metadata leader %q", len(o.Nodes), o.MetadataLeader)
		}
		for i, n := range out {
			if n.a.Broker().NodeID() == o.MetadataLeader {
				out[0], out[i] = out[i], out[0]
			}
		}
		return ""
	})
	return out
}

// TestClusterForwarding: the console of a node that leads neither the
// metadata nor the partitions answers as the leaders would: it produces
// to and browses partitions it holds no replica of, shows their offsets,
// and shows a consumer group's members (held by the coordinator only).
func TestClusterForwarding(t *testing.T) {
	nodes := startCluster(t)
	leader, follower := nodes[0], nodes[2]
	mustOK(t, "create through a follower", follower.post("/api/v1/topics",
		map[string]any{"name": "spread", "partitions": 6, "replication_factor": 1}), nil)
	var tp console.Topic
	waitFor(t, 20*time.Second, "the topic's leaders, as the follower knows them", func() string {
		r := follower.get("/api/v1/topics/spread")
		if r.code != http.StatusOK {
			return r.body
		}
		r.json(t, &tp)
		for _, p := range tp.Partitions {
			if p.Offline {
				return fmt.Sprintf("partition %d has no leader yet", p.Partition)
			}
		}
		return ""
	})
	elsewhere := 0
	for p := range 6 {
		// A 503 (a partition still being made on its leader) is
		// retryable; anything else fails.
		waitFor(t, 20*time.Second, "a produce through the follower", func() string {
			r := follower.post("/api/v1/topics/spread/messages", map[string]any{"partition": p, "key": fmt.Sprintf("k%d", p), "value": "v"})
			if r.code == http.StatusServiceUnavailable {
				return r.body
			}
			mustOK(t, "produce", r, nil)
			return ""
		})
	}
	mustOK(t, "topic", follower.get("/api/v1/topics/spread"), &tp)
	self := follower.a.Broker().NodeID()
	for _, p := range tp.Partitions {
		if p.End != 1 || p.Source != "leader" {
			t.Fatalf("partition %d as the follower shows it: %+v", p.Partition, p)
		}
		if p.Leader != self {
			elsewhere++
		}
	}
	if elsewhere == 0 {
		t.Fatal("every partition is on the follower: nothing was forwarded")
	}
	var b console.Browse
	mustOK(t, "browse all", follower.get("/api/v1/topics/spread/messages?from=earliest"), &b)
	if len(b.Records) != 6 || !b.Complete {
		t.Fatalf("the follower browses %d of 6 records (complete %v): %+v", len(b.Records), b.Complete, b.Scanned)
	}
	mustOK(t, "key search", follower.get("/api/v1/topics/spread/messages?from=earliest&key=k4"), &b)
	if len(b.Records) != 1 || b.Records[0].Partition != 4 {
		t.Fatalf("key k4: %+v", b.Records)
	}

	ctx := ctxT(t)
	j, err := leader.grpc.JoinGroup(ctx, &stratav1.JoinGroupRequest{Group: "readers", ClientId: "r1", Topics: []string{"spread"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leader.grpc.CommitOffsets(ctx, &stratav1.CommitOffsetsRequest{Group: "readers", MemberId: j.MemberId,
		Generation: j.Generation, Offsets: []*stratav1.PartitionOffset{{Topic: "spread", Partition: 0, Offset: 1}}}); err != nil {
		t.Fatal(err)
	}
	var g console.Group
	mustOK(t, "group on the follower", follower.get("/api/v1/groups/readers"), &g)
	if len(g.Members) != 1 || g.Members[0].ClientID != "r1" || g.LagRecords != 5 {
		t.Fatalf("the follower shows the group as %+v", g)
	}
	var plan console.ResetPlan
	mustOK(t, "dry run on the follower", follower.post("/api/v1/groups/readers/reset",
		map[string]any{"topic": "spread", "to": "earliest", "dry_run": true}), &plan)
	if len(plan.Partitions) != 6 || plan.Partitions[0].Current != 1 || plan.Partitions[0].Target != 0 || plan.LiveMembers != 1 {
		t.Fatalf("dry run %+v", plan)
	}
}
