package broker

import (
	"cmp"
	"context"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratalog/strata/cluster"
	"github.com/stratalog/strata/internal/queue"
)

// QueuePartition is a queue group's progress on one partition, as its
// leader has it.
type QueuePartition struct {
	Partition     int32
	Floor         int64 // every offset below is done
	HighWatermark int64
	// Backlog counts records not yet done (acked or dead-lettered):
	// available, leased, waiting for a backoff or a delay.
	Backlog int64
	// Leased counts records leased now.
	Leased int64
	// Available is Backlog less Leased and less records being
	// dead-lettered.
	Available   int64
	Acked       uint64
	DeadLetters uint64
	Deliveries  uint64
	// Redeliveries counts deliveries after the first of a record.
	Redeliveries uint64
	// Delayed counts the records not yet due, waiting for a deliver-at
	// time or a retry backoff.
	Delayed int64
	// OldestUnacked is the age of the record at the floor (0 when none).
	OldestUnacked time.Duration
	// Unknown says the partition's leader could not be asked (none is
	// known, or it did not answer in time): the signed numbers are then
	// -1 (OldestUnacked -1 s) and the counters 0.
	Unknown bool
}

// unknownQueuePartition is partition p when its leader could not be asked.
func unknownQueuePartition(p int32) QueuePartition {
	return QueuePartition{Partition: p, Unknown: true, Floor: -1, HighWatermark: -1, Backlog: -1, Leased: -1,
		Available: -1, Delayed: -1, OldestUnacked: -time.Second}
}

// QueueDescription describes a queue group.
type QueueDescription struct {
	Def        queue.Def
	Partitions []QueuePartition // by partition
	// Members counts the records leased to each member ("" for leases of
	// an earlier leader), over the partitions described.
	Members map[string]int64
}

// DescribeQueueGroup returns a queue group's settings and each
// partition's counts as its leader has them: this node describes the
// partitions it leads and asks the leaders of the others
// (describe_leaders.go); only the leader knows the leases, a follower
// would count leased records as available.
func (b *Broker) DescribeQueueGroup(ctx context.Context, topic, group string) (QueueDescription, error) {
	d, err := b.DescribeQueueGroupLed(ctx, topic, group)
	if err != nil {
		return d, err
	}
	t, err := b.knownTopic(d.Def.Topic) // the queue group's: known
	if err != nil {
		return d, err
	}
	here := map[int32]bool{}
	for _, p := range d.Partitions {
		here[p.Partition] = true
	}
	asks := map[string][]int32{} // partitions by leader address
	for i, a := range t.Partitions {
		p := int32(i)
		if here[p] {
			continue
		}
		if id, addr := b.groupLeader(a.DataGroup); id != b.NodeID() && addr != "" && b.peers != nil {
			asks[addr] = append(asks[addr], p)
		} else {
			d.Partitions = append(d.Partitions, unknownQueuePartition(p))
		}
	}
	answers := askLeaders(ctx, b, asks, func(ctx context.Context, addr string, _ []int32) (QueueDescription, error) {
		return b.peers.DescribeQueueLed(ctx, addr, topic, group)
	})
	for addr, parts := range asks {
		a, answered := answers[addr]
		got := map[int32]QueuePartition{}
		for _, qp := range a.Partitions {
			got[qp.Partition] = qp
		}
		for _, p := range parts {
			qp, ok := got[p]
			if !ok || qp.Unknown {
				qp = unknownQueuePartition(p)
			}
			d.Partitions = append(d.Partitions, qp)
		}
		if answered {
			for m, n := range a.Members {
				d.Members[m] += n
			}
		}
	}
	slices.SortFunc(d.Partitions, func(x, y QueuePartition) int { return cmp.Compare(x.Partition, y.Partition) })
	return d, nil
}

// DescribeQueueGroupLed describes a queue group on the partitions this
// node leads: what another node's DescribeQueueGroup asks the leaders
// (Peers.DescribeQueueLed).
func (b *Broker) DescribeQueueGroupLed(ctx context.Context, topic, group string) (QueueDescription, error) {
	def, err := b.QueueGroup(ctx, topic, group)
	if err != nil {
		return QueueDescription{}, err
	}
	return b.describeQueue(ctx, def, true, func(lp *cluster.Partition, off int64) (time.Time, bool) {
		return recordTimeAt(lp.Log, off)
	})
}

// describeQueue describes def on the partitions this node holds, or only
// on those whose data group it leads (leaderOnly: the leader alone knows
// the leases, and a follower would count leased records as available).
// stampAt gives the timestamp of the record at the floor.
func (b *Broker) describeQueue(ctx context.Context, def queue.Def, leaderOnly bool,
	stampAt func(*cluster.Partition, int64) (time.Time, bool)) (QueueDescription, error) {
	d := QueueDescription{Def: def, Members: map[string]int64{}}
	t, err := b.knownTopic(def.Topic) // the queue group's: known
	if err != nil {
		return d, err
	}
	now := b.now()
	for i, a := range t.Partitions {
		if leaderOnly {
			if dg := b.node.DataGroup(a.DataGroup); dg == nil || !dg.Group.IsLeader() {
				continue
			}
		}
		lp, err := b.localPartition(ctx, def.Topic, int32(i))
		if err != nil {
			continue
		}
		qp := QueuePartition{Partition: int32(i), HighWatermark: lp.Log.HighWatermark(), Floor: lp.Log.StartOffset()}
		if q := lp.Queue(def.Name); q != nil {
			st := q.Stats(now, b.queue.leads.leaderOf(lp.Key, def.Name, q))
			qp.Floor = st.Floor
			qp.Leased, qp.Acked, qp.DeadLetters, qp.Delayed = st.Leased, st.Acked, st.Dead, st.Delayed
			qp.Deliveries, qp.Redeliveries = st.Delivered, st.Redelivered
			qp.Backlog = max(qp.HighWatermark-st.Floor-st.AckedInWindow, 0)
			qp.Available = max(qp.Backlog-st.Leased-st.DeadPending, 0)
			for m, n := range st.Members {
				d.Members[m] += int64(n)
			}
		} else {
			qp.Backlog = qp.HighWatermark - qp.Floor
			qp.Available = qp.Backlog
		}
		if qp.Backlog > 0 {
			if ts, ok := stampAt(lp, qp.Floor); ok {
				qp.OldestUnacked = max(now.Sub(ts), 0)
			}
		}
		d.Partitions = append(d.Partitions, qp)
	}
	return d, nil
}

// queueMetrics are the per-partition queue metrics, read at scrape time
// from the replicated counters and the leader's leases, and reported by
// the partition's leader only: it alone knows the leases (a follower
// counts leased records as available), and one node per series keeps sums
// over the nodes right. A series moves with the leadership, so counters
// never go back on a node.
type queueMetrics struct {
	backlog, inFlight, delayed, oldest, deliveries, redeliveries, deadLetters *prometheus.Desc
}

func newQueueMetrics() queueMetrics {
	l := []string{"group", "topic", "partition"}
	return queueMetrics{
		backlog:      prometheus.NewDesc("strata_queue_backlog_records", "Records of a queue group not yet acked or dead-lettered.", l, nil),
		inFlight:     prometheus.NewDesc("strata_queue_in_flight_records", "Records of a queue group leased now.", l, nil),
		delayed:      prometheus.NewDesc("strata_queue_delayed_records", "Records of a queue group waiting for a deliver-at time or a retry backoff.", l, nil),
		oldest:       prometheus.NewDesc("strata_queue_oldest_unacked_seconds", "Age of a queue group's oldest record not yet done.", l, nil),
		deliveries:   prometheus.NewDesc("strata_queue_deliveries_total", "Deliveries of a queue group's records.", l, nil),
		redeliveries: prometheus.NewDesc("strata_queue_redeliveries_total", "Deliveries after the first of a record.", l, nil),
		deadLetters:  prometheus.NewDesc("strata_queue_dead_letters_total", "Records written to the dead-letter topic.", l, nil),
	}
}

func (qm queueMetrics) describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{qm.backlog, qm.inFlight, qm.delayed, qm.oldest, qm.deliveries, qm.redeliveries, qm.deadLetters} {
		ch <- d
	}
}

// collect reports the partitions this node leads. The age of the oldest
// record comes from the stamp cache (lag_stamps.go), never from a read; it
// is left out while the cache does not know it.
func (qm queueMetrics) collect(b *Broker, ch chan<- prometheus.Metric) {
	now := time.Now()
	for _, def := range b.QueueGroups() {
		key := "q:" + def.Name
		oldestKnown := map[int32]bool{}
		stampAt := func(lp *cluster.Partition, off int64) (time.Time, bool) {
			ts, ok := b.stamp.lookup(stampKey{owner: key, part: lp.Key}, lp.Log, off, now)
			oldestKnown[lp.Key.Partition] = ok
			return ts, ok
		}
		d, err := b.describeQueue(context.Background(), def, true, stampAt) // known here: no wait
		if err != nil {
			continue
		}
		g, t := def.Name, def.Topic
		for _, p := range d.Partitions {
			part := strconv.Itoa(int(p.Partition))
			gauge := func(d *prometheus.Desc, v float64) {
				ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, g, t, part)
			}
			counter := func(d *prometheus.Desc, v uint64) {
				ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), g, t, part)
			}
			gauge(qm.backlog, float64(p.Backlog))
			gauge(qm.inFlight, float64(p.Leased))
			gauge(qm.delayed, float64(p.Delayed))
			if p.Backlog == 0 || oldestKnown[p.Partition] {
				gauge(qm.oldest, p.OldestUnacked.Seconds())
			}
			counter(qm.deliveries, p.Deliveries)
			counter(qm.redeliveries, p.Redeliveries)
			counter(qm.deadLetters, p.DeadLetters)
		}
	}
}
