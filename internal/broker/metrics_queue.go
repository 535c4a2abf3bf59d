package broker

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratalog/strata/internal/queue"
)

// queueCounters count what this node did to queue groups' records: the
// node that settles, expires or redrives a record is the leader of its
// partition, so each event is counted once in the cluster.
type queueCounters struct {
	acks, nacks, rejects, expiries, redrives *prometheus.CounterVec
	processing                               *prometheus.HistogramVec
}

func newQueueCounters() queueCounters {
	l := []string{"group", "topic"}
	counter := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, l)
	}
	return queueCounters{
		acks:     counter("strata_queue_acks_total", "Records of a queue group acked."),
		nacks:    counter("strata_queue_nacks_total", "Records of a queue group nacked (retried later, or dead-lettered at max deliveries)."),
		rejects:  counter("strata_queue_rejects_total", "Records of a queue group rejected (sent straight to the dead-letter topic)."),
		expiries: counter("strata_queue_lease_expiries_total", "Leases of a queue group's records that ran out before an ack, nack or reject."),
		redrives: counter("strata_queue_redriven_records_total", "Dead letters of a queue group moved back to its topic."),
		processing: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "strata_queue_processing_seconds",
			Help:    "Time from a record's delivery (its lease) to its ack, by queue group.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 12), // 1 ms to about 70 min
		}, l),
	}
}

func (qc queueCounters) collectors() []prometheus.Collector {
	return []prometheus.Collector{qc.acks, qc.nacks, qc.rejects, qc.expiries, qc.redrives, qc.processing}
}

// observeAcks counts acked records and the time each was leased, when this
// leader delivered it.
func (m *Metrics) observeAcks(def queue.Def, s []queue.Settling, now time.Time) {
	m.qc.acks.WithLabelValues(def.Name, def.Topic).Add(float64(len(s)))
	h := m.qc.processing.WithLabelValues(def.Name, def.Topic)
	for _, r := range s {
		if !r.LeasedAt.IsZero() {
			h.Observe(max(now.Sub(r.LeasedAt), 0).Seconds())
		}
	}
}

// countQueue adds n to one of the queue counters.
func countQueue(c *prometheus.CounterVec, def queue.Def, n int) {
	if n > 0 {
		c.WithLabelValues(def.Name, def.Topic).Add(float64(n))
	}
}
