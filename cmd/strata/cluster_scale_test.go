package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
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
	waitFor(t, 60*time.Second, "1000 partitions led", func() error {
		d, err := describeTopic(nodes[1].node, "wide")
		if err != nil {
			return err
		}
		if c := leaderCounts(d); c[""] != 0 {
			return fmt.Errorf("%d partitions without a leader", c[""])
		}
		return nil
	})
	time.Sleep(10 * time.Second) // leadership transfers and first reconciles settle
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
