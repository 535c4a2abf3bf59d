// Package benchcmp runs Strata and NATS JetStream side by side on this
// machine (`make bench-compare`): it starts one `strata server` and two
// nats-server processes (JetStream, file store; fsync every 2 minutes, the
// NATS default, and `sync_interval: always`) on 127.0.0.1 with their data
// in a temporary directory, runs the same workloads of internal/bench
// against each, alternating the order in every round, and prints one table
// per workload with the median of the rounds and the ratio Strata/peer.
//
// Workloads: (a) one partition/stream, asynchronous produce; (b) one
// record at a time, latency; (c) consume stored records; (d) queue
// receive + ack; (e) (a) and (b) on 3-node clusters: three strata servers
// (the 2nd and 3rd join the 1st) with replication factor 3 against three
// nats-servers joined by routes with R3 streams, again with both NATS
// durabilities (cluster.go). Only the servers of the selected workloads
// (-only) are started, and every process is stopped at the end, also
// after an error or an interrupt.
//
// This directory is a Go module of its own
// (github.com/stratalog/strata/internal/benchcmp) with its command in
// cmd/benchcmp, so that nats.go, the peer's client, is required here and
// not by the server's go.mod: the strata binary does not link it, and
// building or testing the server never needs it. The module uses
// internal/bench of the main module through go.work in this directory
// (`use .` and `use ../..`); go commands run here are in workspace mode,
// those run at the repository root are not. `go mod tidy` here cannot
// resolve the main module (it is not published): change this go.mod with
// `go get` run in this directory.
package benchcmp
