package broker

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/wait"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratalog/strata/api/record"
	"github.com/stratalog/strata/cluster"
	"github.com/stratalog/strata/internal/queue"
	"github.com/stratalog/strata/internal/topic"
)

// scrape gathers b's metrics through a pedantic registry (which also
// checks that every metric collected was described) and returns each
// series' value by name and sorted labels ("k=v,k=v"); a histogram's
// value is its count.
func scrape(t *testing.T, b *Broker) map[string]map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(b.Metrics())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]map[string]float64{}
	for _, mf := range mfs {
		m := map[string]float64{}
		for _, s := range mf.GetMetric() {
			var ls []string
			for _, lp := range s.GetLabel() {
				ls = append(ls, lp.GetName()+"="+lp.GetValue())
			}
			sort.Strings(ls)
			var v float64
			switch {
			case s.Gauge != nil:
				v = s.GetGauge().GetValue()
			case s.Counter != nil:
				v = s.GetCounter().GetValue()
			case s.Histogram != nil:
				v = float64(s.GetHistogram().GetSampleCount())
			}
			m[strings.Join(ls, ",")] = v
		}
		out[mf.GetName()] = m
	}
	return out
}

// reporters returns the ids of the nodes whose scrape has the series, and
// its values there.
func reporters(scrapes map[string]map[string]map[string]float64, name, labels string) ([]string, []float64) {
	var ids []string
	var vals []float64
	for _, id := range slices.Sorted(maps.Keys(scrapes)) {
		if v, ok := scrapes[id][name][labels]; ok {
			ids = append(ids, id)
			vals = append(vals, v)
		}
	}
	return ids, vals
}

// TestMetricsReportedByOneNode: on a 3-node cluster where every node holds
// a replica of the partition and has applied everything, a group's lag and
// a queue group's series come from the partition's leader alone (followers
// would count leased records as available), the offline count and the
// group's members from the metadata leader alone, and an under-replicated
// partition from its leader alone. Summing over the nodes counts each
// once.
func TestMetricsReportedByOneNode(t *testing.T) {
	nodes := startBrokerCluster(t, 3)
	tp := ordersEverywhere(t, nodes)
	gid := fmt.Sprint(tp.Partitions[0].DataGroup)
	wants := []reportedOnce{
		{"strata_group_lag_records", "group=readers,partition=0,topic=orders", 3, "partition"},
		{"strata_queue_backlog_records", "group=workers,partition=0,topic=orders", 5, "partition"},
		{"strata_queue_in_flight_records", "group=workers,partition=0,topic=orders", 2, "partition"},
		{"strata_queue_deliveries_total", "group=workers,partition=0,topic=orders", 2, "partition"},
		{"strata_group_members", "group=readers", 0, "meta"},
		{"strata_offline_partitions", "", 0, "meta"},
		{"strata_raft_is_leader", "raft_group=" + gid, 1, "partition"},
	}
	// Leadership may move while the nodes are scraped (the reconcile loop
	// hands it to the preferred leader): the check is on a round that
	// saw no move.
	wait.NoError(t, 20*time.Second, "every series reported by one node", func() error {
		if last := checkReportedOnce(t, nodes, wants); last != "" {
			return errors.New(last)
		}
		return nil
	})

	// A follower stops: the partition is under-replicated, and only its
	// leader says so.
	ml := metaLeaderOf(t, nodes)
	var follower *clusterBroker
	for _, cb := range nodes {
		if cb != ml && !cb.node.DataGroup(tp.Partitions[0].DataGroup).Group.IsLeader() {
			follower = cb
			break
		}
	}
	if follower == nil {
		t.Fatal("no follower of the partition other than the metadata leader") // 3 replicas: there is one
	}
	if err := errors.Join(follower.b.Close(), follower.node.Close()); err != nil {
		t.Fatal(err)
	}
	rest := slices.DeleteFunc(slices.Clone(nodes), func(cb *clusterBroker) bool { return cb == follower })
	wait.For(t, 20*time.Second, "the partition's leader alone reports it under-replicated", func() bool {
		pl, _ := partitionLeader(t, rest, "orders")
		for _, cb := range rest {
			want := 0.0
			if cb == pl {
				want = 1
			}
			if scrape(t, cb.b)["strata_under_replicated_partitions"][""] != want {
				return false
			}
		}
		return true
	})
}

// ordersEverywhere creates topic orders (1 partition on every node) with 5
// records, a group readers committed at 2 and a queue group workers with 2
// records leased, and waits until every node has applied all of it.
func ordersEverywhere(t *testing.T, nodes []*clusterBroker) topic.Topic {
	t.Helper()
	ml := metaLeaderOf(t, nodes)
	ctx := ctxT(t)
	if _, err := ml.b.CreateTopic(ctx, "orders", topic.Config{Partitions: 1, ReplicationFactor: 3}); err != nil {
		t.Fatal(err)
	}
	mustQueue(t, ml.b, "orders", "workers", queue.Settings{AckTimeoutMs: time.Minute.Milliseconds(), MaxDeliveries: 5})
	leader, _ := partitionLeader(t, nodes, "orders")
	produceRecords(t, leader.b, "orders", []record.Record{{Value: []byte("a")}, {Value: []byte("b")}, {Value: []byte("c")},
		{Value: []byte("d")}, {Value: []byte("e")}})
	if err := ml.b.CommitOffsets(ctx, "readers", "", 0, []topic.PartitionOffset{{Topic: "orders", Partition: 0, Offset: 2}}); err != nil {
		t.Fatal(err)
	}
	if msgs, err := leader.b.QueueReceive(ctx, ReceiveRequest{Topic: "orders", Group: "workers", Member: "m1", Max: 2}); err != nil || len(msgs) != 2 {
		t.Fatalf("receive: %d records, %v", len(msgs), err)
	}
	tp := topicOf(t, ml.b, "orders")
	wait.For(t, 20*time.Second, "every node applied the records, the commit and the queue group", func() bool {
		for _, cb := range nodes {
			dg := cb.node.DataGroup(tp.Partitions[0].DataGroup)
			if dg == nil {
				return false
			}
			p := dg.FSM.Partition(cluster.PartKey{TopicID: tp.ID})
			if p == nil || p.Log.HighWatermark() != 5 || p.Queue("workers") == nil || cb.node.MetaFSM.GroupOffsets("readers")["orders"][0] != 2 {
				return false
			}
		}
		return true
	})
	return tp
}

// reportedOnce is a series that one node must report: the leader of the
// partition (orders/0) or of the metadata.
type reportedOnce struct {
	name, labels string
	value        float64
	from         string // "partition" or "meta"
}

// checkReportedOnce scrapes every node and returns what is wrong with
// wants ("" when all is right, or when a leadership moved meanwhile:
// "moved").
func checkReportedOnce(t *testing.T, nodes []*clusterBroker, wants []reportedOnce) string {
	t.Helper()
	pl, _ := partitionLeader(t, nodes, "orders")
	meta := metaLeaderOf(t, nodes)
	scrapes := map[string]map[string]map[string]float64{}
	for _, cb := range nodes {
		scrapes[cb.id] = scrape(t, cb.b)
	}
	if now, _ := partitionLeader(t, nodes, "orders"); now != pl || metaLeaderOf(t, nodes) != meta {
		return "a leader moved during the scrapes"
	}
	var bad []string
	for _, w := range wants {
		ids, vals := reporters(scrapes, w.name, w.labels)
		from := pl.id
		if w.from == "meta" {
			from = meta.id
		}
		if w.name == "strata_raft_is_leader" {
			// Every voter reports the group; one says it leads.
			ids, vals = idsWhere(ids, vals, 1)
		}
		if len(ids) != 1 || ids[0] != from || vals[0] != w.value {
			bad = append(bad, fmt.Sprintf("%s{%s} on %v = %v, want on %s only = %v", w.name, w.labels, ids, vals, from, w.value))
		}
	}
	return strings.Join(bad, "\n")
}

// idsWhere keeps the reporters whose value is v.
func idsWhere(ids []string, vals []float64, v float64) ([]string, []float64) {
	var oi []string
	var ov []float64
	for i := range ids {
		if vals[i] == v {
			oi, ov = append(oi, ids[i]), append(ov, vals[i])
		}
	}
	return oi, ov
}

// TestScrapeReadsNoBatches: a scrape reports lag in seconds (stream
// groups) and the age of the oldest record (queue groups) without reading
// a batch from disk, however many partitions lag and however their
// positions move: the timestamps come from the stamp cache, which its own
// loop fills at most once per interval.
func TestScrapeReadsNoBatches(t *testing.T) {
	const parts = 4
	nodes := startBrokerCluster(t, 1, func(cb *clusterBroker) {
		// No loop rounds: a nil channel is never ready, so lookups skip
		// the wake-up and the test runs each round itself.
		cb.b.stamp.wake = nil
	})
	b := nodes[0].b
	ctx := ctxT(t)
	if _, err := b.CreateTopic(ctx, "events", topic.Config{Partitions: parts, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	mustQueue(t, b, "events", "workers", queue.Settings{AckTimeoutMs: time.Minute.Milliseconds(), MaxDeliveries: 5})
	commit := func(off int64) {
		t.Helper()
		var offs []topic.PartitionOffset
		for p := range int32(parts) {
			offs = append(offs, topic.PartitionOffset{Topic: "events", Partition: p, Offset: off})
		}
		if err := b.CommitOffsets(ctx, "readers", "", 0, offs); err != nil {
			t.Fatal(err)
		}
	}
	produceEach(t, b, "events", parts, 10)
	commit(1)
	known := func(s map[string]map[string]float64) int {
		return len(s["strata_group_lag_seconds"]) + len(s["strata_queue_oldest_unacked_seconds"])
	}
	reads := func(what string, scrapes int, want int64) map[string]map[string]float64 {
		t.Helper()
		before := stampReads.Load()
		var s map[string]map[string]float64
		for range scrapes {
			s = scrape(t, b)
		}
		if n := stampReads.Load() - before; n != want {
			t.Fatalf("%s read %d batches for timestamps, want %d", what, n, want)
		}
		return s
	}
	// The first scrape asks the cache for every position and knows none.
	if s := reads("the first scrape", 1, 0); known(s) != 0 {
		t.Fatalf("the first scrape reports %d lag ages, want none yet", known(s))
	}
	before := stampReads.Load()
	b.stamp.refresh(time.Now())
	if n := stampReads.Load() - before; n != 2*parts {
		t.Fatalf("a round read %d batches, want %d (a group's and a queue group's position on each partition)", n, 2*parts)
	}
	if s := reads("3 scrapes", 3, 0); known(s) != 2*parts {
		t.Fatalf("scrapes after a round report %d lag ages, want %d", known(s), 2*parts)
	}

	// The group's positions move: scrapes still read nothing and report
	// every lag (the older age until the next round); the next round
	// reads the moved positions only.
	commit(5)
	if s := reads("3 scrapes after the positions moved", 3, 0); known(s) != 2*parts {
		t.Fatalf("scrapes after the positions moved report %d lag ages, want %d", known(s), 2*parts)
	}
	before = stampReads.Load()
	b.stamp.refresh(time.Now())
	if n := stampReads.Load() - before; n != parts {
		t.Fatalf("a round after the group's positions moved read %d batches, want %d", n, parts)
	}
}

// produceEach writes n records, one per batch, to each of parts partitions
// of topic.
func produceEach(t *testing.T, b *Broker, topic string, parts int32, n int) {
	t.Helper()
	for p := range parts {
		for i := range n {
			batch, err := record.AppendBatch(nil, []record.Record{{Value: []byte(fmt.Sprint(i)), Timestamp: time.Now()}},
				record.BatchOptions{ProducerID: -1, BaseSequence: -1})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := b.Produce(ctxT(t), topic, p, batch); err != nil {
				t.Fatal(err)
			}
		}
	}
}
