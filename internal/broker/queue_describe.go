package broker

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratalog/strata/internal/queue"
)

// QueuePartition is a queue group's progress on one partition.
type QueuePartition struct {
	Partition     int32
	Floor         int64 // every offset below is done
	HighWatermark int64
	// Backlog counts records not yet done (acked or dead-lettered):
	// available, leased, waiting for a backoff or a delay.
	Backlog int64
	// Leased counts records leased now (on the leader; a follower cannot
	// tell and counts them as available).
	Leased int64
	// Available is Backlog less Leased and less records being
	// dead-lettered.
	Available   int64
	Acked       uint64
	DeadLetters uint64
	Deliveries  uint64
	// Redeliveries counts deliveries after the first of a record.
	Redeliveries uint64
	// OldestUnacked is the age of the record at the floor (0 when none).
	OldestUnacked time.Duration
	Members       map[string]int
}

// QueueDescription describes a queue group.
type QueueDescription struct {
	Def        queue.Def
	Partitions []QueuePartition
}

// DescribeQueueGroup returns a queue group's settings and, for each
// partition this node holds, its counts.
func (b *Broker) DescribeQueueGroup(ctx context.Context, topic, group string) (QueueDescription, error) {
	def, err := b.QueueGroup(ctx, topic, group)
	if err != nil {
		return QueueDescription{}, err
	}
	d := QueueDescription{Def: def}
	t, err := b.knownTopic(topic) // the queue group's: known
	if err != nil {
		return d, err
	}
	now := b.now()
	for i := range t.Partitions {
		lp, err := b.localPartition(ctx, topic, int32(i))
		if err != nil {
			continue
		}
		qp := QueuePartition{Partition: int32(i), HighWatermark: lp.Log.HighWatermark(), Floor: lp.Log.StartOffset()}
		if q := lp.Queue(group); q != nil {
			st := q.Stats(now, b.queue.leads.leaderOf(lp.Key, group, q))
			qp.Floor = st.Floor
			qp.Leased, qp.Acked, qp.DeadLetters = st.Leased, st.Acked, st.Dead
			qp.Deliveries, qp.Redeliveries, qp.Members = st.Delivered, st.Redelivered, st.Members
			qp.Backlog = max(qp.HighWatermark-st.Floor-st.AckedInWindow, 0)
			qp.Available = max(qp.Backlog-st.Leased-st.DeadPending, 0)
		} else {
			qp.Backlog = qp.HighWatermark - qp.Floor
			qp.Available = qp.Backlog
		}
		if qp.Backlog > 0 {
			if ts, ok := recordTimeAt(lp.Log, qp.Floor); ok {
				qp.OldestUnacked = max(now.Sub(ts), 0)
			}
		}
		d.Partitions = append(d.Partitions, qp)
	}
	return d, nil
}

// queueMetrics are the per-group queue metrics, read at scrape time from
// the replicated counters and the leader's leases.
type queueMetrics struct {
	backlog, inFlight, oldest, deliveries, redeliveries, deadLetters *prometheus.Desc
}

func newQueueMetrics() queueMetrics {
	l := []string{"group", "topic"}
	return queueMetrics{
		backlog:      prometheus.NewDesc("strata_queue_backlog_records", "Records of a queue group not yet acked or dead-lettered.", l, nil),
		inFlight:     prometheus.NewDesc("strata_queue_in_flight_records", "Records of a queue group leased now.", l, nil),
		oldest:       prometheus.NewDesc("strata_queue_oldest_unacked_seconds", "Age of a queue group's oldest record not yet done.", l, nil),
		deliveries:   prometheus.NewDesc("strata_queue_deliveries_total", "Deliveries of a queue group's records.", l, nil),
		redeliveries: prometheus.NewDesc("strata_queue_redeliveries_total", "Deliveries after the first of a record.", l, nil),
		deadLetters:  prometheus.NewDesc("strata_queue_dead_letters_total", "Records written to the dead-letter topic.", l, nil),
	}
}

func (qm queueMetrics) describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{qm.backlog, qm.inFlight, qm.oldest, qm.deliveries, qm.redeliveries, qm.deadLetters} {
		ch <- d
	}
}

func (qm queueMetrics) collect(b *Broker, ch chan<- prometheus.Metric) {
	for _, def := range b.QueueGroups() {
		d, err := b.DescribeQueueGroup(context.Background(), def.Topic, def.Name) // known here: no wait
		if err != nil || len(d.Partitions) == 0 {
			continue
		}
		var backlog, leased int64
		var oldest time.Duration
		var deliv, redeliv, dead uint64
		for _, p := range d.Partitions {
			backlog += p.Backlog
			leased += p.Leased
			oldest = max(oldest, p.OldestUnacked)
			deliv += p.Deliveries
			redeliv += p.Redeliveries
			dead += p.DeadLetters
		}
		g, t := def.Name, def.Topic
		ch <- prometheus.MustNewConstMetric(qm.backlog, prometheus.GaugeValue, float64(backlog), g, t)
		ch <- prometheus.MustNewConstMetric(qm.inFlight, prometheus.GaugeValue, float64(leased), g, t)
		ch <- prometheus.MustNewConstMetric(qm.oldest, prometheus.GaugeValue, oldest.Seconds(), g, t)
		ch <- prometheus.MustNewConstMetric(qm.deliveries, prometheus.CounterValue, float64(deliv), g, t)
		ch <- prometheus.MustNewConstMetric(qm.redeliveries, prometheus.CounterValue, float64(redeliv), g, t)
		ch <- prometheus.MustNewConstMetric(qm.deadLetters, prometheus.CounterValue, float64(dead), g, t)
	}
}
