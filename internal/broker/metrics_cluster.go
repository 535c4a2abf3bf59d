package broker

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratalog/strata/cluster"
)

// clusterMetrics are the node's view of its raft groups, of partition
// health and of its disk, read at scrape time.
//
// Each cluster-wide number comes from one node only, so that summing a
// metric over the nodes does not count anything twice: a partition is
// under-replicated on the leader of its data group (which knows its
// followers' progress), offline on the metadata leader (a partition with no
// leader has no leader to report it).
type clusterMetrics struct {
	raftFirst, raftLast, raftSnapshot  *prometheus.Desc
	raftIsLeader, raftTerm, raftLeader *prometheus.Desc
	underReplicated, offline           *prometheus.Desc
	diskFree, diskMinFree              *prometheus.Desc
}

func newClusterMetrics() clusterMetrics {
	rl := []string{"raft_group"} // "meta", or a data group's id
	return clusterMetrics{
		raftFirst: prometheus.NewDesc("strata_raft_first_log_index",
			"First entry a raft group's log holds on this node; a replica that needs an earlier one is sent a snapshot.", rl, nil),
		raftLast:     prometheus.NewDesc("strata_raft_last_log_index", "Last entry a raft group's log holds on this node.", rl, nil),
		raftSnapshot: prometheus.NewDesc("strata_raft_last_snapshot_index", "Index of the last snapshot a raft group took or installed on this node.", rl, nil),
		raftIsLeader: prometheus.NewDesc("strata_raft_is_leader", "1 if this node leads the raft group, else 0.", rl, nil),
		raftTerm:     prometheus.NewDesc("strata_raft_term", "The raft group's current term on this node.", rl, nil),
		raftLeader: prometheus.NewDesc("strata_raft_leader_changes_total",
			"Leaders of the raft group this node has learned of (elections that ended with a leader) since it started.", rl, nil),
		underReplicated: prometheus.NewDesc("strata_under_replicated_partitions",
			"Partitions whose data group this node leads and that have fewer in-sync replicas than replicas (Kafka's UnderReplicatedPartitions).", nil, nil),
		offline: prometheus.NewDesc("strata_offline_partitions",
			"Partitions whose data group has no known leader; reported by the metadata leader only (Kafka's OfflinePartitionsCount).", nil, nil),
		diskFree: prometheus.NewDesc("strata_disk_free_bytes", "Bytes an unprivileged process may still use on the file system of the data directory.", nil, nil),
		diskMinFree: prometheus.NewDesc("strata_disk_min_free_bytes",
			"Free bytes below which produces are refused (0: the guard is off).", nil, nil),
	}
}

func (cm clusterMetrics) describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{cm.raftFirst, cm.raftLast, cm.raftSnapshot, cm.raftIsLeader, cm.raftTerm,
		cm.raftLeader, cm.underReplicated, cm.offline, cm.diskFree, cm.diskMinFree} {
		ch <- d
	}
}

func (cm clusterMetrics) collect(b *Broker, ch chan<- prometheus.Metric) {
	cm.collectRaft(ch, "meta", b.node.Meta)
	for _, dg := range b.node.DataGroups() {
		cm.collectRaft(ch, strconv.FormatUint(uint64(dg.ID), 10), dg.Group)
	}
	under, offline := b.partitionHealth()
	ch <- prometheus.MustNewConstMetric(cm.underReplicated, prometheus.GaugeValue, float64(under))
	if b.node.Meta.IsLeader() {
		ch <- prometheus.MustNewConstMetric(cm.offline, prometheus.GaugeValue, float64(offline))
	}
	if free, err := statfsFree(b.node.Config().Dir); err == nil {
		ch <- prometheus.MustNewConstMetric(cm.diskFree, prometheus.GaugeValue, float64(free))
	}
	ch <- prometheus.MustNewConstMetric(cm.diskMinFree, prometheus.GaugeValue, float64(b.cfg.Disk.MinFreeBytes))
}

// collectRaft reports where a raft group stands on this node.
func (cm clusterMetrics) collectRaft(ch chan<- prometheus.Metric, name string, g *cluster.Group) {
	ix, err := g.Indexes()
	if err != nil {
		return // closing
	}
	leader := 0.0
	if g.IsLeader() {
		leader = 1
	}
	ch <- prometheus.MustNewConstMetric(cm.raftFirst, prometheus.GaugeValue, float64(ix.FirstLog), name)
	ch <- prometheus.MustNewConstMetric(cm.raftLast, prometheus.GaugeValue, float64(ix.LastLog), name)
	ch <- prometheus.MustNewConstMetric(cm.raftSnapshot, prometheus.GaugeValue, float64(ix.Snapshot), name)
	ch <- prometheus.MustNewConstMetric(cm.raftIsLeader, prometheus.GaugeValue, leader, name)
	ch <- prometheus.MustNewConstMetric(cm.raftTerm, prometheus.GaugeValue, float64(g.Term()), name)
	ch <- prometheus.MustNewConstMetric(cm.raftLeader, prometheus.CounterValue, float64(g.LeaderChanges()), name)
}

// partitionHealth counts the partitions of the data groups this node leads
// that are under-replicated (fewer in-sync replicas than replicas, as
// PartitionStates reports them), and the partitions whose data group has
// no leader this node knows of.
func (b *Broker) partitionHealth() (underReplicated, offline int) {
	alive := b.aliveSet()
	under := map[uint32]bool{} // data groups this node leads, by id
	for _, dg := range b.node.DataGroups() {
		if !dg.Group.IsLeader() {
			continue
		}
		info, ok := b.node.MetaFSM.DataGroupInfo(dg.ID)
		if !ok {
			continue
		}
		inSync := b.inSync(dg.ID, info.Voters, alive, b.node.Lagging(dg.ID, alive))
		under[dg.ID] = len(inSync) < len(info.Voters)
	}
	leaders := map[uint32]bool{} // data group id → a leader is known
	for _, t := range b.node.MetaFSM.Topics() {
		for _, a := range t.Partitions {
			if under[a.DataGroup] {
				underReplicated++
			}
			known, ok := leaders[a.DataGroup]
			if !ok {
				known = b.node.GroupLeader(a.DataGroup) != ""
				leaders[a.DataGroup] = known
			}
			if !known {
				offline++
			}
		}
	}
	return underReplicated, offline
}
