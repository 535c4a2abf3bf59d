package faulttest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stratalog/strata/api/client"
	"github.com/stratalog/strata/internal/history"
)

// A fault schedule runs for a while against a cluster whose clients are
// busy, and returns once it has healed what it broke. It logs what it did.
type schedule func(t *testing.T, c *tcluster, topic string)

// rounds is how many times a schedule repeats its fault.
func rounds() int {
	if long() {
		return 20
	}
	return 2
}

// isolateLeader cuts the leader of partition 0 from every other node, for
// long enough that the others elect a new one, then heals.
func isolateLeader(t *testing.T, c *tcluster, topic string) {
	for r := range rounds() {
		li := c.currentLeader(topic, 0)
		id := c.nodes[li].id
		t.Logf("round %d: isolating %s, the leader of %s/0", r, id, topic)
		c.net.Isolate(id)
		c.waitNewLeader(topic, 0, li)
		hold(time.Second)
		c.net.Heal()
		hold(time.Second)
	}
}

// splitMinority puts one node (a leader, then a follower, in turn) on the
// minority side of a split and the two others on the majority side.
func splitMinority(t *testing.T, c *tcluster, topic string) {
	for r := range rounds() {
		li := c.currentLeader(topic, 0)
		minority := li
		if r%2 == 1 {
			minority = (li + 1) % len(c.nodes)
		}
		var majority []string
		for i, nd := range c.nodes {
			if i != minority {
				majority = append(majority, nd.id)
			}
		}
		t.Logf("round %d: split %s | %v (leader of %s/0: %s)", r, c.nodes[minority].id, majority, topic, c.nodes[li].id)
		c.net.Partition([]string{c.nodes[minority].id}, majority)
		if minority == li {
			c.waitNewLeader(topic, 0, li)
		}
		hold(1500 * time.Millisecond)
		c.net.Heal()
		hold(time.Second)
	}
}

// flap cuts and heals random links every few hundred milliseconds.
func flap(t *testing.T, c *tcluster, _ string) {
	rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	end := time.Now().Add(time.Duration(rounds()) * 2 * time.Second)
	n := 0
	for time.Now().Before(end) {
		a, b := rnd.IntN(len(c.nodes)), rnd.IntN(len(c.nodes)-1)
		if b >= a {
			b++
		}
		c.net.Cut(c.nodes[a].id, c.nodes[b].id)
		n++
		hold(time.Duration(100+rnd.IntN(300)) * time.Millisecond)
		c.net.Heal()
		hold(time.Duration(50+rnd.IntN(200)) * time.Millisecond)
	}
	t.Logf("flapped %d links; %d connections broken", n, c.net.Broken())
	hold(time.Second)
}

// killLeader stops the node that leads partition 0 and starts it again.
func killLeader(t *testing.T, c *tcluster, topic string) {
	var gaps []time.Duration
	for r := range rounds() {
		li := c.currentLeader(topic, 0)
		t.Logf("round %d: stopping %s, the leader of %s/0", r, c.nodes[li].id, topic)
		start := time.Now()
		c.stop(li)
		c.waitNewLeader(topic, 0, li)
		gaps = append(gaps, time.Since(start))
		hold(500 * time.Millisecond)
		c.start(li)
		hold(time.Second)
	}
	t.Logf("time to a new leader per kill: %v", gaps)
}

// stallLeader holds every byte to and from the leader of partition 0 (as a
// paused process) until another node leads, then lets it go: the old
// leader wakes up still believing it leads.
func stallLeader(t *testing.T, c *tcluster, topic string) {
	for r := range rounds() {
		li := c.currentLeader(topic, 0)
		t.Logf("round %d: stalling %s, the leader of %s/0", r, c.nodes[li].id, topic)
		c.net.Stall(c.nodes[li].id)
		c.waitNewLeader(topic, 0, li)
		hold(500 * time.Millisecond)
		c.net.Unstall(c.nodes[li].id)
		hold(time.Second)
	}
}

// hold lets the workload run for d: under a fault just made, or healthy
// after a heal. It is the fault's length, not a wait for a condition (those
// go through tcluster.eventually).
func hold(d time.Duration) { time.Sleep(d) }

// currentLeader waits until a node leads partition p of topic (by its own
// account) and returns its index.
func (c *tcluster) currentLeader(topic string, p int32) int {
	c.t.Helper()
	li := -1
	c.eventually(20*time.Second, "a leader of "+topic, func() error {
		if li = c.leaderOf(topic, p); li < 0 {
			return errors.New("none yet")
		}
		return nil
	})
	return li
}

// waitNewLeader waits until a node other than old leads partition p (by
// its own account).
func (c *tcluster) waitNewLeader(topic string, p int32, old int) {
	c.t.Helper()
	c.eventually(20*time.Second, "a new leader", func() error {
		for i, nd := range c.nodes {
			a := c.agent(i)
			if i == old || a == nil {
				continue
			}
			tp, err := a.Broker().Topic(context.Background(), topic)
			if err == nil && a.Broker().PartitionStates(tp)[p].LeaderID == nd.id {
				return nil
			}
		}
		return errors.New("none yet")
	})
}

// createTopic creates a topic with 3 replicas, retrying while the cluster
// settles.
func createTopic(c *tcluster, cl *client.Client, name string, parts int) {
	c.t.Helper()
	admin := client.NewAdmin(cl)
	c.eventually(30*time.Second, "topic "+name, func() error {
		_, err := admin.CreateTopic(context.Background(), name, client.TopicConfig{Partitions: int32(parts), ReplicationFactor: 3})
		if errors.Is(err, client.ErrTopicExists) {
			return nil
		}
		return err
	})
}

// TestFaultsLog runs producers, leader readers and a stream consumer
// against a 3-node cluster under each fault schedule and checks the
// history: every acknowledged record once at its offset, a linearizable
// log per partition (no out-of-range answer for an offset committed before
// the read), the consumer's offsets contiguous from 0 to the end, and a
// stream group (one member, auto-commit) that received every offset and
// whose committed offsets never went back.
func TestFaultsLog(t *testing.T) {
	schedules := []struct {
		name string
		run  schedule
	}{
		{"isolated leader", isolateLeader},
		{"minority split", splitMinority},
		{"flapping links", flap},
		{"leader killed", killLeader},
		{"leader stalled", stallLeader},
	}
	for _, s := range schedules {
		t.Run(s.name, func(t *testing.T) { runLogHistory(t, s.run) })
	}
}

func runLogHistory(t *testing.T, sched schedule) {
	const topic, parts = "log", 3
	c := startCluster(t, 3)
	cl := c.client()
	createTopic(c, cl, topic, parts)
	rec := history.NewRecorder()
	stopWrites, stopStream := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	var acked maxAcked
	errs := make(chan error, 8)
	for id := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := producer(cl, rec, id, topic, parts, 150, stopWrites, &acked); err != nil {
				errs <- fmt.Errorf("producer %d: %w", id, err)
			}
		}()
	}
	for p := range int32(parts) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			reader(c, rec, 10+int(p), topic, p, &acked, stopWrites)
		}()
	}
	var swg sync.WaitGroup
	swg.Add(3)
	go func() {
		defer swg.Done()
		if err := streamer(cl, rec, "stream", topic, parts, stopStream); err != nil {
			errs <- fmt.Errorf("streamer: %w", err)
		}
	}()
	go func() {
		defer swg.Done()
		if err := groupMember(cl, rec, "group", topic, stopStream); err != nil {
			errs <- fmt.Errorf("group member: %w", err)
		}
	}()
	var wentBack []string
	go func() {
		defer swg.Done()
		wentBack = watchCommits(cl, "group", stopStream)
	}()
	hold(500 * time.Millisecond)
	sched(t, c, topic)
	hold(500 * time.Millisecond)
	close(stopWrites)
	wg.Wait()

	final := c.readAll(cl, topic, parts)
	hw := map[int32]int64{}
	for p := range int32(parts) {
		hw[p] = int64(len(final[p]))
	}
	c.eventually(30*time.Second, "the stream consumer and the group at the end of the log", func() error {
		for p, end := range hw {
			for _, name := range []string{"stream", "group"} {
				if got := rec.StreamPosition(name, p); got < end {
					return fmt.Errorf("%s: partition %d at %d of %d", name, p, got, end)
				}
			}
		}
		return nil
	})
	close(stopStream)
	swg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	res := history.CheckLog(values(final), rec.Produces(), rec.Reads())
	t.Logf("log: %v", res.Counts)
	for _, v := range res.Violations {
		t.Error(v)
	}
	zero := map[int32]int64{0: 0, 1: 0, 2: 0}
	sres := rec.CheckStream(zero, hw, "stream")
	t.Logf("stream consumer: %d records received", sres.Received)
	for _, v := range sres.Violations {
		t.Error(v)
	}
	for _, v := range rec.StreamCoverage(hw, "group") {
		t.Error(v)
	}
	for _, v := range wentBack {
		t.Error(v)
	}
	t.Logf("longest time without an acknowledged produce: %v", longestAckGap(rec.Produces()))
	if res.Counts.Acknowledged == 0 {
		t.Error("nothing was acknowledged: the workload did not run")
	}
}

// longestAckGap is the longest time between two acknowledgements of the
// history: the write outage a fault caused, as the producers saw it.
func longestAckGap(ps []history.Produce) time.Duration {
	var rets []int64
	for _, p := range ps {
		if p.Outcome == history.OK {
			rets = append(rets, p.Return)
		}
	}
	slices.Sort(rets)
	var gap int64
	for i := 1; i < len(rets); i++ {
		gap = max(gap, rets[i]-rets[i-1])
	}
	return time.Duration(gap)
}
