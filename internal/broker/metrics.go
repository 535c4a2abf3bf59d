package broker

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratalog/strata/cluster"
)

// Metrics are the broker's Prometheus metrics. Rates come from counters;
// partition sizes and group lag are read at scrape time.
type Metrics struct {
	b *Broker

	produceRecords *prometheus.CounterVec
	produceBytes   *prometheus.CounterVec
	produceLatency prometheus.Histogram
	fetchBytes     *prometheus.CounterVec
	fetchRequests  *prometheus.CounterVec
	queueSkipped   *prometheus.CounterVec

	partitionBytes *prometheus.Desc
	partitionHWM   *prometheus.Desc
	partitionStart *prometheus.Desc
	groupLag       *prometheus.Desc
	groupLagSec    *prometheus.Desc
	groupMembers   *prometheus.Desc
	raftFirst      *prometheus.Desc
	raftLast       *prometheus.Desc
	raftSnapshot   *prometheus.Desc
	queue          queueMetrics // queue_describe.go
}

func newMetrics(b *Broker) *Metrics {
	pl := []string{"topic", "partition"}
	rl := []string{"raft_group"} // "meta", or a data group's id
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
		queueSkipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_queue_retention_skipped_records_total",
			Help: "Records retention deleted before a queue group delivered them, by group and topic."}, []string{"group", "topic"}),
		partitionBytes: prometheus.NewDesc("strata_partition_size_bytes", "Bytes on disk of a partition replica.", pl, nil),
		partitionHWM:   prometheus.NewDesc("strata_partition_high_watermark", "Next offset to be written.", pl, nil),
		partitionStart: prometheus.NewDesc("strata_partition_log_start_offset", "First readable offset.", pl, nil),
		groupLag:       prometheus.NewDesc("strata_group_lag_records", "Records not yet consumed by a group.", []string{"group", "topic", "partition"}, nil),
		groupLagSec:    prometheus.NewDesc("strata_group_lag_seconds", "Age of the oldest record a group has not consumed.", []string{"group", "topic", "partition"}, nil),
		groupMembers:   prometheus.NewDesc("strata_group_members", "Live members of a group.", []string{"group"}, nil),
		raftFirst: prometheus.NewDesc("strata_raft_first_log_index",
			"First entry a raft group's log holds on this node; a replica that needs an earlier one is sent a snapshot.", rl, nil),
		raftLast:     prometheus.NewDesc("strata_raft_last_log_index", "Last entry a raft group's log holds on this node.", rl, nil),
		raftSnapshot: prometheus.NewDesc("strata_raft_last_snapshot_index", "Index of the last snapshot a raft group took or installed on this node.", rl, nil),
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
	m.queueSkipped.Describe(ch)
	for _, d := range []*prometheus.Desc{m.partitionBytes, m.partitionHWM, m.partitionStart, m.groupLag, m.groupLagSec, m.groupMembers, m.raftFirst, m.raftLast, m.raftSnapshot} {
		ch <- d
	}
	m.queue.describe(ch)
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.produceRecords.Collect(ch)
	m.produceBytes.Collect(ch)
	m.produceLatency.Collect(ch)
	m.fetchBytes.Collect(ch)
	m.fetchRequests.Collect(ch)
	m.queueSkipped.Collect(ch)
	m.collectRaft(ch, "meta", m.b.node.Meta)
	for _, dg := range m.b.node.DataGroups() {
		m.collectRaft(ch, strconv.FormatUint(uint64(dg.ID), 10), dg.Group)
		for _, p := range dg.FSM.Partitions() {
			part := strconv.Itoa(int(p.Key.Partition))
			ch <- prometheus.MustNewConstMetric(m.partitionBytes, prometheus.GaugeValue, float64(p.Log.Size()), p.Topic, part)
			ch <- prometheus.MustNewConstMetric(m.partitionHWM, prometheus.GaugeValue, float64(p.Log.HighWatermark()), p.Topic, part)
			ch <- prometheus.MustNewConstMetric(m.partitionStart, prometheus.GaugeValue, float64(p.Log.StartOffset()), p.Topic, part)
		}
	}
	for _, g := range m.b.ListGroups() {
		ch <- prometheus.MustNewConstMetric(m.groupMembers, prometheus.GaugeValue, float64(g.Members), g.Name)
		d, err := m.b.DescribeGroup(context.Background(), g.Name) // known here: no wait
		if err != nil {
			continue
		}
		for _, p := range d.Partitions {
			part := strconv.Itoa(int(p.Partition))
			ch <- prometheus.MustNewConstMetric(m.groupLag, prometheus.GaugeValue, float64(p.LagRecords), g.Name, p.Topic, part)
			ch <- prometheus.MustNewConstMetric(m.groupLagSec, prometheus.GaugeValue, p.LagSeconds, g.Name, p.Topic, part)
		}
	}
	m.queue.collect(m.b, ch)
}

// collectRaft reports where a raft group's log stands on this node.
func (m *Metrics) collectRaft(ch chan<- prometheus.Metric, name string, g *cluster.Group) {
	ix, err := g.Indexes()
	if err != nil {
		return // closing
	}
	ch <- prometheus.MustNewConstMetric(m.raftFirst, prometheus.GaugeValue, float64(ix.FirstLog), name)
	ch <- prometheus.MustNewConstMetric(m.raftLast, prometheus.GaugeValue, float64(ix.LastLog), name)
	ch <- prometheus.MustNewConstMetric(m.raftSnapshot, prometheus.GaugeValue, float64(ix.Snapshot), name)
}
