package main

// A cluster of real strata processes on 127.0.0.1. Each node keeps its
// ports across restarts (a restarted node comes back at the address its
// peers know), so the ports are picked once, free at that moment.

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/wait"
)

// freePort returns a port free for TCP and UDP on 127.0.0.1.
func freePort(t testing.TB) int {
	t.Helper()
	for range 50 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		uc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		ln.Close()
		if err == nil {
			uc.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

type clusterNode struct {
	*node
	ID     string
	Gossip string
}

// startCluster starts n nodes; the first bootstraps, the others join it.
// It waits until every node sees all of them registered.
func startCluster(t testing.TB, n int, extra ...string) []*clusterNode {
	t.Helper()
	return startClusterEnv(t, n, nil, extra...)
}

// startClusterEnv is startCluster with env added to every CLI run of the
// nodes; "{id}" in extra becomes each node's id.
func startClusterEnv(t testing.TB, n int, env []string, extra ...string) []*clusterNode {
	t.Helper()
	return startClusterSpec(t, n, serverSpec{}, env, extra...)
}

// startClusterSpec is startClusterEnv with the servers that spec says.
func startClusterSpec(t testing.TB, n int, spec serverSpec, env []string, extra ...string) []*clusterNode {
	t.Helper()
	var nodes []*clusterNode
	var seed string
	for i := range n {
		id := fmt.Sprintf("n%d", i+1)
		// The ports are free when picked but may be taken before the
		// server binds them (other tests run on this machine): pick again.
		for attempt := 1; ; attempt++ {
			gossip := fmt.Sprintf("127.0.0.1:%d", freePort(t))
			args := []string{"--node-id", id,
				"--grpc-addr", fmt.Sprintf("127.0.0.1:%d", freePort(t)),
				"--cluster-addr", fmt.Sprintf("127.0.0.1:%d", freePort(t)),
				"--gossip-addr", gossip, "--kafka-addr", "127.0.0.1:0"}
			if seed != "" {
				args = append(args, "--join", seed)
			}
			for _, a := range extra {
				args = append(args, strings.ReplaceAll(a, "{id}", id))
			}
			nd := &node{t: t, dataDir: t.TempDir(), args: args, env: env, server: spec}
			err := nd.tryStart()
			if err != nil && attempt < 3 && strings.Contains(err.Error(), "address already in use") {
				t.Logf("%s: port taken, picking others", id)
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(nd.stop)
			if seed == "" {
				seed = gossip
			}
			nodes = append(nodes, &clusterNode{node: nd, ID: id, Gossip: gossip})
			break
		}
	}
	wait.NoError(t, 30*time.Second, "all nodes registered", func() error {
		st, err := clusterStatus(nodes[0].node)
		if err != nil {
			return err
		}
		if len(st.Nodes) != n {
			return fmt.Errorf("%d nodes registered", len(st.Nodes))
		}
		return nil
	})
	return nodes
}

// statusJSON is `strata cluster status --output json`.
type statusJSON struct {
	Nodes []struct {
		ID       string `json:"id"`
		State    string `json:"state"`
		MetaRole string `json:"meta_role"`
		Leads    int    `json:"partitions_led"`
		Follows  int    `json:"partitions_followed"`
		Cluster  string `json:"cluster_addr"`
	} `json:"nodes"`
	Lagging []string `json:"lagging"`
}

func clusterStatus(n *node) (statusJSON, error) {
	var st statusJSON
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := n.cli(ctx, nil, "cluster", "status", "--output", "json")
	if r.Code != 0 {
		return st, fmt.Errorf("cluster status: exit %d: %s", r.Code, r.Stderr)
	}
	if err := json.Unmarshal([]byte(r.Stdout), &st); err != nil {
		return st, fmt.Errorf("cluster status output %q: %w", r.Stdout, err)
	}
	return st, nil
}

// describeJSON is `strata topic describe --output json`.
type describeJSON struct {
	Partitions []struct {
		Partition int32    `json:"partition"`
		Leader    string   `json:"leader"`
		Replicas  []string `json:"replicas"`
		InSync    []string `json:"in_sync"`
		HW        int64    `json:"high_watermark"`
		RaftGroup uint32   `json:"raft_group"`
	} `json:"partitions"`
}

func describeTopic(n *node, topic string) (describeJSON, error) {
	var d describeJSON
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := n.cli(ctx, nil, "topic", "describe", topic, "--output", "json")
	if r.Code != 0 {
		return d, fmt.Errorf("topic describe: exit %d: %s", r.Code, r.Stderr)
	}
	if err := json.Unmarshal([]byte(r.Stdout), &d); err != nil {
		return d, fmt.Errorf("describe output %q: %w", r.Stdout, err)
	}
	return d, nil
}

// leaderCounts counts partitions per leader; "" counts leaderless ones.
func leaderCounts(d describeJSON) map[string]int {
	out := map[string]int{}
	for _, p := range d.Partitions {
		out[p.Leader]++
	}
	return out
}

func (c *clusterNode) String() string { return c.ID }

func nodeByID(nodes []*clusterNode, id string) *clusterNode {
	for _, n := range nodes {
		if n.ID == id {
			return n
		}
	}
	return nil
}
