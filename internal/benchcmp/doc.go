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
// receive + ack; (e) a 3-node cluster with replication factor 3. (e) runs
// once the cluster can be started here (see clusterWorkloads); until then
// its tables say "not run".
//
// nats.go stays in this package and its command (cmd/benchcmp): the
// strata binary does not link it.
package benchcmp
