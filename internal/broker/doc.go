// Package broker holds Strata's rules above replication: topics and their
// placement in data groups, the produce and fetch paths, offsets, the
// consumer-group coordinator, retention, and the reconcile loop that keeps
// the data groups in step with the metadata.
//
// The broker never writes storage itself: every change goes through a raft
// group of package cluster (the metadata group for topics, producer ids and
// committed offsets; a data group for records), so a single node and a
// cluster run the same code path.
package broker
