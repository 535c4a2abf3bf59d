package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stratalog/strata/api/client"
)

// cpuTicks returns a process's user+system CPU time in clock ticks.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name (which may hold spaces) start past ')'.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	return ut + st, nil
}

// Issue 4, test 8, first half (STRATA_CLUSTER_LONG only): a 3-node cluster
// holding 1,000 partitions with replication factor 3 idles under 10% of
// one core per node.
func TestE2EClusterIdleThousandPartitions(t *testing.T) {
	if !clusterLong() {
		t.Skip("long cluster test: make test-cluster")
	}
	nodes := startCluster(t, 3)
	nodes[0].mustCLI(nil, "topic", "create", "wide", "--partitions", "1000", "--replication-factor", "3")
	// Leadership transfers to preferred leaders must be over before the
	// idle window starts.
	waitPreferredLeaders(t, nodes[1], "wide")
	const window = 20 * time.Second
	var before []int64
	for _, n := range nodes {
		c, err := cpuTicks(n.cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		before = append(before, c)
	}
	time.Sleep(window)
	for i, n := range nodes {
		c, err := cpuTicks(n.cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		share := float64(c-before[i]) / 100 / window.Seconds() // 100 ticks per second
		t.Logf("%s idle with 1000 partitions: %.1f%% of one core", n.ID, 100*share)
		if share >= 0.10 {
			t.Errorf("%s uses %.1f%% of a core while idle, want < 10%%", n.ID, 100*share)
		}
	}
}

// Issue 4, tests 8 (second half) and 9 (STRATA_CLUSTER_LONG only):
// produce throughput with replication factor 3, three nodes and the client
// sharing this machine's cores: asynchronous to 1, 6 and 100 partitions,
// and one record at a time. It reports figures; it fails only when a
// produce fails.
func TestE2EClusterProduceThroughput(t *testing.T) {
	if !clusterLong() {
		t.Skip("long cluster test: make test-cluster")
	}
	nodes := startCluster(t, 3)
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
	value := make([]byte, 128)
	rates := map[int]float64{}
	for _, parts := range []int{1, 6, 100} {
		topic := fmt.Sprintf("tp%d", parts)
		if _, err := admin.CreateTopic(ctx, topic, client.TopicConfig{Partitions: int32(parts), ReplicationFactor: 3}); err != nil {
			t.Fatal(err)
		}
		waitPreferredLeaders(t, nodes[0], topic)
		cfg := client.DefaultProducerConfig()
		cfg.Partitioning = client.RoundRobin
		if parts > 1 {
			cfg.Partitioning = client.Sticky
		}
		p, err := client.NewProducer(cl, cfg)
		if err != nil {
			t.Fatal(err)
		}
		const n = 1_000_000
		var failed atomic.Int64
		start := time.Now()
		for range n {
			p.ProduceAsync(&client.Record{Topic: topic, Value: value}, func(_ client.Result, err error) {
				if err != nil {
					failed.Add(1)
				}
			})
		}
		if err := p.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		el := time.Since(start)
		p.Close()
		if failed.Load() > 0 {
			t.Fatalf("%d records failed", failed.Load())
		}
		rates[parts] = n / el.Seconds()
		t.Logf("RF3, %d partition(s), 128-byte records, asynchronous: %.0f records/s", parts, rates[parts])
	}
	t.Logf("100 partitions reach %.0f%% of the rate of 6", 100*rates[100]/rates[6])

	sc := client.DefaultProducerConfig()
	sc.Linger = 0 // a lone record goes at once
	p, err := client.NewProducer(cl, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var lat []time.Duration
	for range 2000 {
		start := time.Now()
		if _, err := p.Produce(ctx, &client.Record{Topic: "tp1", Value: value}); err != nil {
			t.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	t.Logf("RF3, one record at a time: p50 %v, p99 %v", lat[len(lat)/2].Round(time.Microsecond), lat[len(lat)*99/100].Round(time.Microsecond))
}
