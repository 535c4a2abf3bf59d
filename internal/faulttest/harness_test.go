package faulttest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stratalog/strata/api/client"
	"github.com/stratalog/strata/api/record"
	"github.com/stratalog/strata/cluster"
	"github.com/stratalog/strata/internal/agent"
	"github.com/stratalog/strata/internal/broker"
	"github.com/stratalog/strata/internal/history"
)

// long reports whether the long versions run (make test-cluster).
func long() bool { return os.Getenv("STRATA_CLUSTER_LONG") != "" }

// tnode is one node of a test cluster: a real agent (raft groups, broker,
// gRPC server) whose raft traffic goes through the cluster's FaultNet.
type tnode struct {
	id  string
	cfg agent.Config
	a   *agent.Agent // nil while down
}

// tcluster is a cluster of real agents in this process.
type tcluster struct {
	t     *testing.T
	net   *cluster.FaultNet
	nodes []*tnode
	mu    sync.Mutex // guards nodes[i].a
}

// startCluster starts n agents on 127.0.0.1 with short raft timeouts and
// small snapshot thresholds (so snapshots and log compaction happen during
// the test), and waits until each knows all of them.
func startCluster(t *testing.T, n int) *tcluster {
	t.Helper()
	c := &tcluster{t: t, net: cluster.NewFaultNet(uint64(time.Now().UnixNano()))}
	for i := range n {
		cfg := agent.DefaultConfig()
		cfg.NodeID, cfg.DataDir = fmt.Sprintf("n%d", i+1), t.TempDir()
		cfg.GRPCAddr, cfg.HTTPAddr, cfg.ClusterAddr, cfg.GossipAddr = "127.0.0.1:0", "", "127.0.0.1:0", "127.0.0.1:0"
		cfg.KafkaAddr = ""
		cfg.DataGroups, cfg.DeadNodeTimeout = 2, 0
		cfg.RaftHeartbeatTimeout = 400 * time.Millisecond
		cfg.SnapshotThreshold, cfg.RaftTrailingLogs = 64, 32
		cfg.LogLevel = "error"
		cfg.Faults = c.net
		if i > 0 {
			cfg.Join = []string{c.nodes[0].cfg.GossipAddr}
		}
		nd := &tnode{id: cfg.NodeID, cfg: cfg}
		c.nodes = append(c.nodes, nd)
		c.start(i)
	}
	t.Cleanup(c.stopAll)
	c.eventually(30*time.Second, "every node knows every node", func() error {
		for _, nd := range c.nodes {
			if got := len(nd.a.Broker().Nodes()); got != n {
				return fmt.Errorf("%s knows %d nodes", nd.id, got)
			}
		}
		return nil
	})
	return c
}

// start starts node i; after its first start it keeps its addresses, as
// a restarted real node does.
func (c *tcluster) start(i int) {
	c.t.Helper()
	nd := c.nodes[i]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a, err := agent.New(ctx, nd.cfg, nil)
	if err != nil {
		c.t.Fatalf("start %s: %v", nd.id, err)
	}
	nd.cfg.GRPCAddr, nd.cfg.ClusterAddr, nd.cfg.GossipAddr = a.GRPCAddr(), a.ClusterAddr(), a.GossipAddr()
	c.mu.Lock()
	nd.a = a
	c.mu.Unlock()
}

// stop stops node i (its process would end: every raft group, the broker
// and the gRPC server close).
func (c *tcluster) stop(i int) {
	c.mu.Lock()
	a := c.nodes[i].a
	c.nodes[i].a = nil
	c.mu.Unlock()
	if a != nil {
		if err := a.Close(); err != nil {
			c.t.Logf("close %s: %v", c.nodes[i].id, err)
		}
	}
}

func (c *tcluster) stopAll() {
	c.net.Heal()
	for i := range c.nodes {
		c.stop(i)
	}
}

// agent returns node i's agent, nil while it is down.
func (c *tcluster) agent(i int) *agent.Agent {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i].a
}

// addrs returns the gRPC addresses of every node.
func (c *tcluster) addrs() []string {
	out := make([]string, len(c.nodes))
	for i, nd := range c.nodes {
		out[i] = nd.cfg.GRPCAddr
	}
	return out
}

// client returns a Go client of the whole cluster, closed with the test.
func (c *tcluster) client() *client.Client {
	c.t.Helper()
	cfg := client.DefaultConfig()
	cfg.MaxRetries, cfg.MaxRetryBackoff = 40, 500*time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := client.Dial(ctx, c.addrs(), client.WithConfig(cfg))
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { cl.Close() })
	return cl
}

// leaderOf returns the index of the node that leads partition p of topic
// by its own account (a deposed leader may still think so), or -1.
func (c *tcluster) leaderOf(topic string, p int32) int {
	for i, nd := range c.nodes {
		a := c.agent(i)
		if a == nil {
			continue
		}
		b := a.Broker()
		tp, err := b.Topic(context.Background(), topic)
		if err != nil || int(p) >= len(tp.Partitions) {
			continue
		}
		if b.PartitionStates(tp)[p].LeaderID == nd.id {
			return i
		}
	}
	return -1
}

// eventually waits until fn returns nil, failing the test after d.
func (c *tcluster) eventually(d time.Duration, what string, fn func() error) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out after %v waiting for %s: %v", d, what, err)
		}
		<-tick.C
	}
}

// readAll reads every record of every partition of topic, from offset 0,
// through the partitions' leaders, once the cluster has healed.
func (c *tcluster) readAll(cl *client.Client, topic string, parts int) map[int32][]record.Record {
	c.t.Helper()
	out := map[int32][]record.Record{}
	admin := client.NewAdmin(cl)
	for p := range int32(parts) {
		tp := client.TopicPartition{Topic: topic, Partition: p}
		var hw int64
		c.eventually(30*time.Second, "the high watermark of "+tp.String(), func() error {
			var err error
			hw, err = admin.ListOffsets(context.Background(), tp, client.AtEnd())
			return err
		})
		if hw == 0 {
			continue
		}
		co, err := client.NewConsumer(cl, client.DefaultConsumerConfig())
		if err != nil {
			c.t.Fatal(err)
		}
		if err := co.Assign(client.AtStart(), tp); err != nil {
			c.t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		for int64(len(out[p])) < hw {
			fs, err := co.Poll(ctx)
			if err != nil {
				cancel()
				c.t.Fatalf("read %s: %v (have %d of %d)", tp, err, len(out[p]), hw)
			}
			for _, r := range fs.All() {
				if r.Offset != int64(len(out[p])) {
					c.t.Fatalf("read %s: offset %d after %d records", tp, r.Offset, len(out[p]))
				}
				rc := *r
				rc.Key, rc.Value = append([]byte(nil), r.Key...), append([]byte(nil), r.Value...)
				out[p] = append(out[p], rc)
			}
		}
		cancel()
		co.Close()
	}
	return out
}

// values returns the values of records, per partition.
func values(recs map[int32][]record.Record) map[int32][]string {
	out := map[int32][]string{}
	for p, rs := range recs {
		for _, r := range rs {
			out[p] = append(out[p], string(r.Value))
		}
	}
	return out
}

// producer writes unique values to every partition of a topic in turn,
// at most rate records per second, recording each outcome, until stop.
func producer(cl *client.Client, rec *history.Recorder, id int, topic string, parts int, rate int, stop <-chan struct{}, acked *maxAcked) error {
	pcfg := client.DefaultProducerConfig()
	pcfg.MaxRetries, pcfg.MaxRetryBackoff, pcfg.CloseTimeout = 60, 500*time.Millisecond, 60*time.Second
	pr, err := client.NewProducer(cl, pcfg)
	if err != nil {
		return err
	}
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-stop:
			return pr.Close()
		case <-tick.C:
		}
		p := int32(i % parts)
		v := "p" + strconv.Itoa(id) + "-" + strconv.Itoa(i)
		call := rec.Now()
		pr.ProduceAsync(&client.Record{Topic: topic, Partition: p, HasPartition: true, Value: []byte(v)}, func(r client.Result, err error) {
			op := history.Produce{Client: id, Partition: p, Value: v, Call: call, Return: rec.Now()}
			switch {
			case err != nil:
				op.Outcome, op.Err = history.Unknown, err.Error()
			case r.Offset < 0:
				op.Outcome = history.Unknown // a duplicate whose offset is forgotten
			default:
				op.Outcome, op.Offset = history.OK, r.Offset
				acked.note(p, r.Offset)
			}
			rec.Produce(op)
		})
	}
}

// maxAcked tracks the highest acknowledged offset per partition.
type maxAcked struct {
	mu sync.Mutex
	m  map[int32]int64
}

func (m *maxAcked) note(p int32, off int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		m.m = map[int32]int64{}
	}
	if off > m.m[p] {
		m.m[p] = off
	}
}

func (m *maxAcked) get(p int32) (int64, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	off, ok := m.m[p]
	return off, ok
}

// reader fetches partition p from its leader (whichever node claims to
// lead it) at the last acknowledged offset and one past it, recording
// every answer, until stop.
func reader(c *tcluster, rec *history.Recorder, id int, topic string, p int32, acked *maxAcked, stop <-chan struct{}) {
	for n := 0; ; n++ {
		select {
		case <-stop:
			return
		case <-time.After(7 * time.Millisecond):
		}
		from, ok := acked.get(p)
		if !ok {
			continue
		}
		from += int64(n % 2)
		li := c.leaderOf(topic, p)
		if li < 0 {
			continue
		}
		a := c.agent(li)
		if a == nil {
			continue
		}
		call := rec.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		res, err := a.Broker().Fetch(ctx, topic, p, from, 64<<10, 0)
		cancel()
		rd := history.Read{Client: id, Partition: p, From: from, Call: call, Return: rec.Now(), HighWatermark: res.HighWatermark}
		switch {
		case errors.Is(err, broker.ErrOffsetOutOfRange):
			rd.OutOfRange = true
		case err != nil:
			continue // not leader, not ready, closed: no answer about the log
		default:
			_, derr := record.DecodeBatchesFrom(res.Records, from, func(r record.Record) bool {
				rd.Values = append(rd.Values, string(r.Value))
				return true
			})
			if derr != nil {
				continue
			}
		}
		rec.Read(rd)
	}
}

// streamer consumes every partition of topic from the start with the Go
// client's consumer (no group), recording the offsets it receives, until
// stop.
func streamer(cl *client.Client, rec *history.Recorder, name, topic string, parts int, stop <-chan struct{}) error {
	co, err := client.NewConsumer(cl, client.DefaultConsumerConfig())
	if err != nil {
		return err
	}
	defer co.Close()
	var tps []client.TopicPartition
	for p := range int32(parts) {
		tps = append(tps, client.TopicPartition{Topic: topic, Partition: p})
	}
	if err := co.Assign(client.AtStart(), tps...); err != nil {
		return err
	}
	return pollInto(co, rec, name, stop)
}

// pollInto polls co until stop, recording every record it returns under
// name. A partition's error does not stop it (records of the others may
// come with it); the checks find what was missed.
func pollInto(co *client.Consumer, rec *history.Recorder, name string, stop <-chan struct{}) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-stop:
		case <-ctx.Done():
		}
		cancel()
	}()
	for {
		fs, err := co.Poll(ctx)
		if ctx.Err() != nil {
			return nil
		}
		for tp, r := range fs.All() {
			rec.Streamed(name, tp.Partition, r.Offset)
		}
		if err != nil {
			select { // a partition failing: do not spin on it
			case <-ctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
}

// groupMember consumes topic as a member of stream group group with
// auto-commit every 200 ms, recording the offsets it receives under the
// group's name, until stop.
func groupMember(cl *client.Client, rec *history.Recorder, group, topic string, stop <-chan struct{}) error {
	cfg := client.DefaultConsumerConfig()
	cfg.Group, cfg.Topics, cfg.AutoCommitInterval, cfg.SessionTimeout = group, []string{topic}, 200*time.Millisecond, 3*time.Second
	co, err := client.NewConsumer(cl, cfg)
	if err != nil {
		return err
	}
	defer co.Close()
	return pollInto(co, rec, group, stop)
}

// watchCommits reads group's committed offsets every 100 ms until stop and
// returns every time one went back (a committed offset moves only forward,
// except by an explicit reset, which these tests never make).
func watchCommits(cl *client.Client, group string, stop <-chan struct{}) []string {
	admin := client.NewAdmin(cl)
	last := map[int32]int64{}
	var back []string
	for {
		select {
		case <-stop:
			return back
		case <-time.After(100 * time.Millisecond):
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		offs, err := admin.FetchOffsets(ctx, group)
		cancel()
		if err != nil {
			continue // no leader now: nothing was read
		}
		for _, o := range offs {
			if prev, ok := last[o.Partition]; ok && o.Offset < prev {
				back = append(back, fmt.Sprintf("group %s: committed offset of partition %d went back from %d to %d", group, o.Partition, prev, o.Offset))
			}
			last[o.Partition] = max(last[o.Partition], o.Offset)
		}
	}
}

// leaders describes which node claims each partition of topic, and
// whether it has caught up, for failure messages.
func (c *tcluster) leaders(topic string) string {
	out := ""
	for i, nd := range c.nodes {
		a := c.agent(i)
		if a == nil {
			out += nd.id + " down; "
			continue
		}
		tp, err := a.Broker().Topic(context.Background(), topic)
		if err != nil {
			out += fmt.Sprintf("%s: %v; ", nd.id, err)
			continue
		}
		for _, ps := range a.Broker().PartitionStates(tp) {
			out += fmt.Sprintf("%s sees %s/%d led by %q; ", nd.id, topic, ps.Partition, ps.LeaderID)
		}
	}
	return out
}
