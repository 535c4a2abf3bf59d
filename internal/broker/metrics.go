package broker

import (
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratalog/strata/cluster"
)

// Metrics are the broker's Prometheus metrics. Rates come from counters;
// partition sizes, group lag, queue counts and the cluster's health are
// read at scrape time, without reading the logs (lag_stamps.go). A series
// that counts something cluster-wide comes from one node only (see
// collectGroupLag, queueMetrics and clusterMetrics), so that a sum over
// the nodes counts it once.
type Metrics struct {
	b *Broker

	produceRecords *prometheus.CounterVec
	produceBytes   *prometheus.CounterVec
	produceLatency prometheus.Histogram
	fetchBytes     *prometheus.CounterVec
	fetchRequests  *prometheus.CounterVec
	fetchLatency   prometheus.Histogram
	queueSkipped   *prometheus.CounterVec
	qc             queueCounters // metrics_queue.go

	partitionBytes *prometheus.Desc
	partitionHWM   *prometheus.Desc
	partitionStart *prometheus.Desc
	groupLag       *prometheus.Desc
	groupLagSec    *prometheus.Desc
	groupMembers   *prometheus.Desc
	cluster        clusterMetrics // metrics_cluster.go
	queue          queueMetrics   // queue_describe.go
}

func newMetrics(b *Broker) *Metrics {
	pl := []string{"topic", "partition"}
	return &Metrics{
		b: b,
		produceRecords: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_produce_records_total", Help: "Records appended, by topic."}, []string{"topic"}),
		produceBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_produce_bytes_total", Help: "Batch bytes appended, by topic."}, []string{"topic"}),
		produceLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "strata_produce_latency_seconds", Help: "Time from a produce request to its commit.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}),
		fetchBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_fetch_bytes_total", Help: "Batch bytes returned by fetches, by topic."}, []string{"topic"}),
		fetchRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_fetch_requests_total", Help: "Fetch requests answered, by topic."}, []string{"topic"}),
		fetchLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "strata_fetch_latency_seconds", Help: "Time to answer a fetch (gRPC or Kafka), without its long-poll wait.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}),
		queueSkipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_queue_retention_skipped_records_total",
			Help: "Records retention deleted before a queue group delivered them, by group and topic."}, []string{"group", "topic"}),
		qc:             newQueueCounters(),
		partitionBytes: prometheus.NewDesc("strata_partition_size_bytes", "Bytes on disk of a partition replica.", pl, nil),
		partitionHWM:   prometheus.NewDesc("strata_partition_high_watermark", "Next offset to be written.", pl, nil),
		partitionStart: prometheus.NewDesc("strata_partition_log_start_offset", "First readable offset.", pl, nil),
		groupLag: prometheus.NewDesc("strata_group_lag_records",
			"Records not yet consumed by a group (reported by the partition's leader).", []string{"group", "topic", "partition"}, nil),
		groupLagSec: prometheus.NewDesc("strata_group_lag_seconds",
			"Age of the oldest record a group has not consumed (reported by the partition's leader).", []string{"group", "topic", "partition"}, nil),
		groupMembers: prometheus.NewDesc("strata_group_members", "Live members of a group (reported by the metadata leader).", []string{"group"}, nil),
		cluster:      newClusterMetrics(),
		queue:        newQueueMetrics(),
	}
}

func (m *Metrics) observeProduce(topic string, records, bytes int, d time.Duration) {
	m.produceRecords.WithLabelValues(topic).Add(float64(records))
	m.produceBytes.WithLabelValues(topic).Add(float64(bytes))
	m.produceLatency.Observe(d.Seconds())
}

func (m *Metrics) observeFetch(topic string, bytes int) {
	m.fetchBytes.WithLabelValues(topic).Add(float64(bytes))
	m.fetchRequests.WithLabelValues(topic).Inc()
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	m.produceRecords.Describe(ch)
	m.produceBytes.Describe(ch)
	m.produceLatency.Describe(ch)
	m.fetchBytes.Describe(ch)
	m.fetchRequests.Describe(ch)
	m.fetchLatency.Describe(ch)
	m.queueSkipped.Describe(ch)
	for _, c := range m.qc.collectors() {
		c.Describe(ch)
	}
	for _, d := range []*prometheus.Desc{m.partitionBytes, m.partitionHWM, m.partitionStart, m.groupLag, m.groupLagSec, m.groupMembers} {
		ch <- d
	}
	m.cluster.describe(ch)
	m.queue.describe(ch)
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.produceRecords.Collect(ch)
	m.produceBytes.Collect(ch)
	m.produceLatency.Collect(ch)
	m.fetchBytes.Collect(ch)
	m.fetchRequests.Collect(ch)
	m.fetchLatency.Collect(ch)
	m.queueSkipped.Collect(ch)
	for _, c := range m.qc.collectors() {
		c.Collect(ch)
	}
	m.cluster.collect(m.b, ch)
	for _, dg := range m.b.node.DataGroups() {
		for _, p := range dg.FSM.Partitions() {
			part := strconv.Itoa(int(p.Key.Partition))
			ch <- prometheus.MustNewConstMetric(m.partitionBytes, prometheus.GaugeValue, float64(p.Log.Size()), p.Topic, part)
			ch <- prometheus.MustNewConstMetric(m.partitionHWM, prometheus.GaugeValue, float64(p.Log.HighWatermark()), p.Topic, part)
			ch <- prometheus.MustNewConstMetric(m.partitionStart, prometheus.GaugeValue, float64(p.Log.StartOffset()), p.Topic, part)
		}
	}
	if m.b.node.Meta.IsLeader() { // the coordinator: members live there
		for _, g := range m.b.ListGroups() {
			ch <- prometheus.MustNewConstMetric(m.groupMembers, prometheus.GaugeValue, float64(g.Members), g.Name)
		}
	}
	m.collectGroupLag(ch)
	m.queue.collect(m.b, ch)
}

// collectGroupLag reports the lag of each group's committed offsets on the
// partitions whose data group this node leads: each series comes from one
// node, the one that holds the partition's log as it is committed. Lag in
// seconds comes from the stamp cache (lag_stamps.go), never from a read;
// it is left out while the cache does not know it. Groups named "__…"
// (the queue groups' redrive positions) are internal and left out.
func (m *Metrics) collectGroupLag(ch chan<- prometheus.Metric) {
	b := m.b
	led := map[uint32]*cluster.DataGroup{}
	for _, dg := range b.node.DataGroups() {
		if dg.Group.IsLeader() {
			led[dg.ID] = dg
		}
	}
	if len(led) == 0 {
		return
	}
	now := time.Now()
	for _, name := range b.node.MetaFSM.GroupNames() {
		if strings.HasPrefix(name, "__") {
			continue
		}
		for tn, offs := range b.node.MetaFSM.GroupOffsets(name) {
			t, err := b.knownTopic(tn)
			if err != nil {
				continue
			}
			for i, a := range t.Partitions {
				dg := led[a.DataGroup]
				if dg == nil {
					continue
				}
				k := cluster.PartKey{TopicID: t.ID, Partition: int32(i)}
				p := dg.FSM.Partition(k)
				if p == nil {
					continue
				}
				from := p.Log.StartOffset()
				if off, ok := offs[int32(i)]; ok {
					from = max(off, from)
				}
				lag := max(p.Log.HighWatermark()-from, 0)
				part := strconv.Itoa(i)
				ch <- prometheus.MustNewConstMetric(m.groupLag, prometheus.GaugeValue, float64(lag), name, tn, part)
				secs := 0.0
				if lag > 0 {
					ts, ok := b.stamp.lookup(stampKey{owner: "g:" + name, part: k}, p.Log, from, now)
					if !ok {
						continue
					}
					secs = max(now.Sub(ts).Seconds(), 0)
				}
				ch <- prometheus.MustNewConstMetric(m.groupLagSec, prometheus.GaugeValue, secs, name, tn, part)
			}
		}
	}
}
