// Package cluster is Strata's replication and membership: the raft groups
// of a node (one metadata group and a few data groups, see DESIGN.md), the
// plumbing of their state machines (the metadata FSM, the data FSM that
// appends to the partitions' segment logs, snapshots), serf membership,
// replica placement and the reconcile loop.
//
// # What is not here
//
// The domain vocabulary the state machines store and return is package
// topic's (internal/topic: topic.Topic, topic.Config, topic.Assignment,
// topic.PartitionOffset, and the errors every layer shares, such as
// topic.ErrUnknownTopic and the idempotent producer's SequenceError);
// users are auth.User (internal/auth). Their JSON names are the format of
// the metadata commands and snapshots, which golden_test.go pins. The
// transport of the cluster port is package mux (cluster/mux). How a
// topic's partitions are stored (its segment-log config) is decided by the
// broker (NodeConfig.Segment, broker.SegmentConfigs). Readers see a
// partition's log through a read-only LogView: only the data FSM writes
// it.
//
// # Raft groups
//
// A Group is one hashicorp/raft node of one group. Its stable store is a
// raft-boltdb/v2 file, Dir/raft.db; its raft log is a raftlog.Store in
// Dir/raftlog (or raft.db, see GroupConfig.LogStore), with a logCache of
// the last 4096 entries or 8 MiB in front of it; snapshots are files under
// Dir/snapshots (two kept; a data group's carry its segment files, see
// GroupConfig.SnapDataDir); it talks to its peers through raft's
// NetworkTransport over a mux layer (package mux). A group is bootstrapped
// only when raft.HasExistingState finds nothing (Group.BootstrapIfNew); a
// node that joins later is added by the leader with Group.AddVoter instead.
//
// # The cluster port
//
// All groups of a node share one TCP port: package mux (cluster/mux) hands
// each connection to the layer of the group its header names, over mutual
// TLS with NodeConfig.ClusterTLS. Gossip can be encrypted
// (membership_keyring.go), and the metadata leader registers a member only
// once NodeConfig.AdmitMember accepts it (admit.go; VerifyMemberTLS proves
// by a TLS handshake that the member holds a certificate for its node id).
//
// # Ownership and shutdown
//
// OpenGroup takes ownership of the layer it is given; Group.Close closes
// it (through the transport). Close the groups before the mux.
//
// # What matters in hashicorp/raft (v1.7.3) and raft-boltdb/v2
//
// Found by reading their source; each point shaped the code here.
//
//   - Group commit. The leader's main loop takes every queued Apply, up to
//     MaxAppendEntries, into one dispatchLogs, which makes one
//     logCache.StoreLogs, which is one bolt transaction: the entries are
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
//   - The logCache keeps the *raft.Log by pointer: the cmd given to Apply is
//     retained (the caller must not reuse the buffer), up to 4096 entries or
//     8 MiB per group, and every DeleteRange (each log compaction) drops
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
// # Nodes, membership and placement
//
// A Node is one server's raft side: the metadata group ("meta") and the
// data groups ("data-<id>", cluster-wide ids) it is a voter of, with serf
// membership. A node without Join and without raft state bootstraps the
// metadata group alone (and, on a brand-new cluster, DataGroups groups of
// one voter); a node with Join waits for the metadata leader to add it. A
// restarted node finds its groups on disk and rejoins gossip from serf's
// snapshot (and Join).
//
// Each node runs one reconcile loop (reconcile.go), level-triggered: serf
// events and metadata changes only wake it. Every node opens the data
// groups the metadata makes it a voter of; the initial voters of a new
// group each bootstrap it with the same configuration, and only when they
// have no raft state for it. Only the metadata leader turns membership into
// changes: it registers alive members as nodes, adds them to the metadata
// group (the first MetadataVoters as voters, then non-voters; a non-voter
// is promoted when a voter is removed), creates data groups for a
// replication factor (about nodes x DataGroups / RF of them, each with a
// preferred leader, spread), places partitions (placement.go) and removes
// nodes failed longer than DeadNodeTimeout, replacing them in their groups.
// The leader of each data group makes the group's raft configuration match
// the metadata's voters and hands leadership back to the preferred leader
// once that node has been alive for 5 s. Nodes publish the data groups they
// lead in their gossip tags, so a node that holds no replica of a partition
// can still name its leader.
//
// # In-sync replicas
//
// A voter of a data group is in sync while, at some moment within
// GroupConfig.ReplicaLagTimeout (10 s), it held every entry its leader had
// committed. The leader learns it from the answers to its own
// AppendEntries (replica_lag.go): raft v1.7.3 keeps followers' match
// indexes private, and heartbeats are answered without touching the
// follower's disk, so neither heartbeats nor gossip notice a follower that
// is alive but not keeping up. Each leader gossips the lagging voters of
// the groups it leads (tag "lag"), so that every node can answer
// Node.Lagging.
//
// # Queue groups
//
// Queue-group definitions (queue.Def) are metadata commands (queue_meta.go).
// The state of a queue group on a partition is a queue.State of package
// internal/queue, which holds the state machine, its commands and their
// encoding: a data-group entry whose first byte is the queue command type
// (data_queue.go, QueueCmd) carries a queue.Cmd, which the data FSM applies
// to the partition's queue.Set on every replica and keeps in the data
// group's snapshots. cluster holds no leader-side queue state: leases and
// what the leader reads ahead belong to internal/broker.
//
// # Data snapshots
//
// A data group's snapshot is its manifest (partitions, high watermarks,
// producer and queue state) plus the segment files up to each high
// watermark, hard-linked into <group>/snapdata/<snapshot id>/ when it is
// taken: O(segments), point in time, and retention cannot delete what a
// snapshot references. Raft's FileSnapshotStore keeps only the manifest;
// the wrapper in snapshot_store.go streams manifest and files when raft
// sends a snapshot to a follower that is new or behind the log compaction,
// and the follower's sink writes them into its own snapdata before
// DataFSM.Restore installs them. Restore keeps (and truncates) a partition
// that holds at least the snapshot's records, as after a local restart.
//
// # Locks
//
// Group.mu and Node.mu are leaves (package mux has its own order). No lock
// is held across a raft call, a network call or a conn.Close.
package cluster
