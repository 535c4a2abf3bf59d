// Package monitoring holds what operators load into their monitoring
// stack, next to the code whose metrics it uses:
//
//   - grafana-dashboard.json, a Grafana dashboard (Dashboards > New >
//     Import) of cluster health, traffic, requests, consumer groups and
//     queue groups, over a Prometheus data source chosen when it loads;
//   - prometheus-alerts.yaml, Prometheus alerting rules: offline and
//     under-replicated partitions, a raft group without a leader, frequent
//     leader changes, low disk, dead letters, growing consumer lag and
//     queue backlog, and a high rate of failing gRPC calls.
//
// Both are also embedded in the binary (Dashboard, Alerts), so that a
// command or a page can hand them out. The package's test starts a real
// node, drives traffic through every path the two files look at, and
// fails if either uses a strata_* metric the node does not serve.
//
// The metrics are reported so that summing them over the nodes counts
// everything once: a partition's lag, its queue groups' counts and its
// under-replication by the partition's leader, offline partitions and
// group members by the metadata leader.
package monitoring

import _ "embed"

// Dashboard is the Grafana dashboard (JSON).
//
//go:embed grafana-dashboard.json
var Dashboard []byte

// Alerts are the Prometheus alerting rules (YAML).
//
//go:embed prometheus-alerts.yaml
var Alerts []byte
