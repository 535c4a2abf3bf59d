// Package faulttest runs a cluster of real Strata nodes in one process,
// with their raft traffic going through a cluster.FaultNet, under leader
// kills, isolated leaders, minority/majority splits, flapping links and
// stalled nodes, while real Go clients produce, read, stream and work
// queue groups; internal/history then checks what the clients saw. The
// package holds tests only. `make test` runs the short versions; with
// STRATA_CLUSTER_LONG=1 (`make test-cluster`) they run longer, with more
// faults.
package faulttest
