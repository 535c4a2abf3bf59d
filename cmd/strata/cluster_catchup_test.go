package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/wait"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/stratalog/strata/api/client"
	"github.com/stratalog/strata/api/record"
	stratav1 "github.com/stratalog/strata/api/v1"
)

// installedSnapshotLog is what a node logs (at info) when it installs a
// snapshot's segments in place of a partition that holds less.
const installedSnapshotLog = "installing the snapshot's segments"

// raftIndex reads a strata_raft_* gauge of one raft group from a node's
// metrics endpoint.
func raftIndex(httpAddr, metric, group string) (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+httpAddr+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	prefix := fmt.Sprintf("%s{raft_group=%q} ", metric, group)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			f, err := strconv.ParseFloat(v, 64)
			return uint64(f), err
		}
	}
	return 0, fmt.Errorf("%s has no %s for raft group %s", httpAddr, metric, group)
}

// replicaHW returns a node's high watermark of topic/0 (followers serve
// reads up to what they have applied).
func replicaHW(addr, topic string) (int64, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := stratav1.NewStrataClient(conn).Fetch(ctx, &stratav1.FetchRequest{Topic: topic, Partition: 0, Offset: 0, MaxBytes: 1})
	if err != nil {
		return 0, err
	}
	return resp.HighWatermark, nil
}

// replicaDigest hashes every record value of topic/0 on one node.
func replicaDigest(addr, topic string) (string, int64, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		return "", 0, err
	}
	defer conn.Close()
	s := stratav1.NewStrataClient(conn)
	h := sha256.New()
	var off, n int64
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp, err := s.Fetch(ctx, &stratav1.FetchRequest{Topic: topic, Partition: 0, Offset: off, MaxBytes: 16 << 20})
		cancel()
		if err != nil {
			return "", 0, err
		}
		next, err := record.DecodeBatchesFrom(resp.Records, off, func(r record.Record) bool {
			fmt.Fprintf(h, "%d:", r.Offset)
			h.Write(r.Value)
			n++
			return true
		})
		if err != nil {
			return "", 0, err
		}
		if next >= resp.HighWatermark || next == off {
			return fmt.Sprintf("%x", h.Sum(nil)), n, nil
		}
		off = next
	}
}

// Issue 4, test 5 (STRATA_CLUSTER_LONG only; STRATA_CATCHUP_MB sets the
// size, default 1024, at least 128 so that the leader's raft log passes
// the snapshot threshold): a follower's data is wiped while the leader's raft
// log has been compacted, and the follower restarted: it catches up through
// a snapshot (the only way: the log no longer holds what it misses) and
// then holds the same records as the leader.
func TestE2EClusterCatchUpWipedNode(t *testing.T) {
	if !clusterLong() {
		t.Skip("long cluster test: make test-cluster")
	}
	mb := 1024
	if v, err := strconv.Atoi(os.Getenv("STRATA_CATCHUP_MB")); err == nil && v > 0 {
		mb = v
	}
	nodes := startCluster(t, 3, "--snapshot-threshold", "64", "--raft-trailing-logs", "16",
		"--max-segment-bytes", strconv.Itoa(128<<20))
	var addrs []string
	for _, n := range nodes {
		addrs = append(addrs, n.GRPC)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cl, err := client.Dial(ctx, addrs)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	admin := client.NewAdmin(cl)
	if _, err := admin.CreateTopic(ctx, "catchup", client.TopicConfig{Partitions: 1, ReplicationFactor: 3}); err != nil {
		t.Fatal(err)
	}
	pcfg := client.DefaultProducerConfig()
	pcfg.MaxBufferedRecords = 2000
	p, err := client.NewProducer(cl, pcfg)
	if err != nil {
		t.Fatal(err)
	}
	value := make([]byte, 64<<10)
	start := time.Now()
	for i := range mb * 16 {
		copy(value, strconv.Itoa(i))
		p.ProduceAsync(&client.Record{Topic: "catchup", Value: append([]byte(nil), value...)}, func(_ client.Result, err error) {
			if err != nil {
				t.Errorf("produce: %v", err)
			}
		})
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	p.Close()
	t.Logf("produced %d MiB with replication factor 3 in %v", mb, time.Since(start).Round(time.Millisecond))

	d, err := describeTopic(nodes[0].node, "catchup")
	if err != nil {
		t.Fatal(err)
	}
	leader := nodeByID(nodes, d.Partitions[0].Leader)
	var victim *clusterNode
	for _, n := range nodes {
		if n != leader {
			victim = n
		}
	}
	victim.stop()
	if err := os.RemoveAll(victim.dataDir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(victim.dataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	leaderHW, err := replicaHW(leader.GRPC, "catchup")
	if err != nil {
		t.Fatal(err)
	}
	// The wiped node holds nothing: once the leader's raft log no longer
	// starts at entry 1 (a snapshot was taken and the log compacted behind
	// it), the node can only catch up by installing a snapshot. With a
	// snapshot threshold of 64 entries, checked every 5-10 s, this usually
	// holds as soon as the writes are done.
	gid := strconv.Itoa(int(d.Partitions[0].RaftGroup))
	start = time.Now()
	var first uint64
	wait.NoError(t, time.Minute, "the leader's raft log compacted", func() error {
		var err error
		first, err = raftIndex(leader.HTTP, "strata_raft_first_log_index", gid)
		if err == nil && first <= 1 {
			err = fmt.Errorf("data group %s's log on %s starts at entry %d", gid, leader.ID, first)
		}
		return err
	})
	t.Logf("data group %s's log on the leader starts at entry %d (waited %v)", gid, first, time.Since(start).Round(time.Millisecond))
	// At info the node logs the install of a snapshot's segments.
	victim.args = append(victim.args, "--log-level", "info")
	start = time.Now()
	victim.start()
	wait.NoError(t, 5*time.Minute, "the wiped node catches up", func() error {
		hw, err := replicaHW(victim.GRPC, "catchup")
		if err != nil {
			return err
		}
		if hw < leaderHW {
			return fmt.Errorf("hw %d of %d", hw, leaderHW)
		}
		return nil
	})
	took := time.Since(start)
	if f := os.Getenv("STRATA_DUMP"); f != "" {
		_ = os.WriteFile(f, []byte(victim.log.String()+"\n=== leader\n"+leader.log.String()), 0o644)
	}
	t.Logf("wiped node caught up on %d MiB in %v (restart included)", mb, took.Round(time.Millisecond))
	if !strings.Contains(victim.log.String(), installedSnapshotLog) {
		t.Errorf("the wiped node did not install a snapshot: no %q in its log", installedSnapshotLog)
	}
	got, gn, err := replicaDigest(victim.GRPC, "catchup")
	if err != nil {
		t.Fatal(err)
	}
	want, wn, err := replicaDigest(leader.GRPC, "catchup")
	if err != nil {
		t.Fatal(err)
	}
	if got != want || gn != wn {
		t.Fatalf("the caught-up node holds %d records (digest %s), the leader %d (%s)", gn, got[:12], wn, want[:12])
	}
	if took > 10*time.Second && mb <= 1024 {
		t.Errorf("catch-up took %v, want within 10 s", took)
	}
}
