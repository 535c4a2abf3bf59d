// Package cluster is Strata's replication and membership: the raft groups
// of a node (one metadata group and a few data groups, see DESIGN.md), their
// state machines, and the multiplexed transport they share.
//
// # Raft groups
//
// A Group is one hashicorp/raft node of one group. Its stable store is a
// raft-boltdb/v2 file, Dir/raft.db; its raft log is a raftlog.Store in
// Dir/raftlog (or raft.db, see GroupConfig.LogStore), with a raft.LogCache
// of 4096 entries in front of it; snapshots are files under
// Dir/snapshots (two kept); it talks to its peers through raft's
// NetworkTransport over a Mux layer. A group is bootstrapped only when
// raft.HasExistingState finds nothing (Group.BootstrapIfNew); a node that
// joins later is added by the leader with Group.AddVoter instead.
//
// # Mux wire format
//
// All groups of a node share one TCP port. A connection opens with
//
//	byte 0       magic 'S' (0x53)
//	byte 1       n, the length of the group name (1 to 255)
//	bytes 2..n+1 the group name, [A-Za-z0-9._-]
//
// after which it carries raft's NetworkTransport stream unchanged. The mux
// sends nothing back. A connection whose header is malformed, names a group
// with no layer on this node, or does not arrive within 5 s is closed and
// logged; the dialling raft sees the connection fail and retries.
//
// # Ownership and shutdown
//
// OpenGroup takes ownership of the layer it is given. A layer owns every
// connection it accepted or dialled and closes them when it closes, which
// Group.Close does (through the transport). Close the groups before the mux:
// Mux.Close also closes the layers, but a group whose layer is gone keeps
// retrying until it is closed.
//
// # What matters in hashicorp/raft (v1.7.3) and raft-boltdb/v2
//
// Found by reading their source; each point shaped the code here.
//
//   - Group commit. The leader's main loop takes every queued Apply, up to
//     MaxAppendEntries, into one dispatchLogs, which makes one
//     LogCache.StoreLogs, which is one bolt transaction: the entries are
//     msgpack-encoded and put, then the commit writes the dirty pages and
//     fdatasyncs twice (data, then the meta page). A follower stores each
//     AppendEntries (up to MaxAppendEntries entries) in one transaction too.
//     BatchApplyCh buffers the apply channel to MaxAppendEntries so that
//     Applies queue while the leader is inside StoreLogs. That StoreLogs
//     runs on raft's single main goroutine: it is the serial bottleneck of
//     a group (half the CPU of BenchmarkApply, mostly bolt's commit and
//     msgpack).
//   - CommitTimeout is used only by the per-follower replication
//     goroutines, to push the commit index when no new entries come. A
//     single-voter group has none, and the leader's commit never waits on
//     it; it costs one empty AppendEntries per follower per 1-2x
//     CommitTimeout when the group is idle.
//   - The LogCache keeps the *raft.Log by pointer: the cmd given to Apply is
//     retained (the caller must not reuse the buffer), up to 4096 entries of
//     memory per group, and every DeleteRange (each log compaction) drops
//     the whole cache.
//   - With BatchApplyCh, raft's Apply timeout covers only the enqueue, and a
//     future still in the apply queue at Shutdown is never answered
//     (hashicorp/raft#498). Group waits for futures in a goroutine it can
//     abandon on ctx or Close, and Close drains those waits, with raft still
//     running, before it shuts raft down.
//   - NetworkTransport.Close closes the stream layer but neither the
//     connections it accepted (their goroutines block in a read until the
//     peer writes or hangs up) nor its pool of outgoing ones. Hence the
//     layer's ownership of connections, and CloseStreams in Group.Close.
//   - A follower starts an election only after HeartbeatTimeout (randomised
//     to 1-2x) without a leader, also when it is the only voter: a
//     single-node group becomes leader 1-2 s after it opens with the
//     defaults.
//   - SnapshotInterval is how often raft checks SnapshotThreshold, so the
//     log grows by up to write rate x 2 x SnapshotInterval between checks.
//   - raft.HasExistingState recognises a missing key by the error text
//     "not found", which raft-boltdb's ErrKeyNotFound has.
//   - Leader observations are delivered without blocking and may be
//     dropped; LeaderCh has one slot and keeps only the latest transition.
//     WaitLeader therefore re-reads the leader after every wake-up.
//
// # Locks
//
// Mux.mu before muxLayer.mu; Group.mu is a leaf. No lock is held across a
// raft call, a network call or a conn.Close.
package cluster
