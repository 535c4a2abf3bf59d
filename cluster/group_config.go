package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hashicorp/raft"

	"github.com/stratalog/strata/cluster/mux"
)

// GroupConfig configures one raft group on this node.
type GroupConfig struct {
	// Name names the group on the mux and in logs: "meta", "data-0", ...
	// 1 to 255 bytes of [A-Za-z0-9._-]. Required.
	Name string
	// NodeID is this node's raft.ServerID, the same in every group. Required.
	NodeID string
	// Dir holds raft.db (bolt: the stable store, and the raft log with
	// LogStoreBolt), raftlog/ (the raft log with LogStoreWAL) and
	// snapshots/. Created if missing. Required.
	Dir string
	// LogStore names where the raft log is kept: LogStoreWAL (raftlog) or
	// LogStoreBolt (raft.db). Empty means LogStoreWAL. A group's log is
	// never moved between the two: OpenGroup refuses the other one.
	// Default LogStoreWAL.
	LogStore string
	// Logger receives raft's logs (raft's Info at slog Debug). Nil discards.
	Logger *slog.Logger

	// HeartbeatTimeout is how long a follower waits without contact from a
	// leader before it starts an election (randomised to 1x-2x). The leader
	// heartbeats every HeartbeatTimeout/10. Default 1 s.
	HeartbeatTimeout time.Duration
	// ElectionTimeout is how long a candidate waits for votes before it
	// starts another election (randomised to 1x-2x). Default 1 s.
	ElectionTimeout time.Duration
	// LeaderLeaseTimeout is how long a leader stays leader without contact
	// with a quorum. At most HeartbeatTimeout. Default 500 ms.
	LeaderLeaseTimeout time.Duration
	// CommitTimeout is how often (randomised to 1x-2x) the leader sends each
	// follower an AppendEntries when no new entries arrive, so that the
	// follower learns the commit index of the last entries of a burst. It is
	// neither on the leader's commit path nor used at all by a single-voter
	// group; lower values make follower FSMs catch up sooner after a burst
	// at the cost of idle traffic. Default 50 ms.
	CommitTimeout time.Duration
	// MaxAppendEntries caps the entries per disk write and per RPC: the
	// leader takes up to this many queued Applies into one StoreLogs (one
	// bolt transaction, one fsync), sends up to this many per AppendEntries,
	// and the FSM gets batches up to this size. With BatchApplyCh it is also
	// the depth of raft's apply queue. 1 to 1024. Default 512.
	MaxAppendEntries int
	// SnapshotInterval is how often (randomised to 1x-2x) raft checks
	// whether SnapshotThreshold entries have accumulated since the last
	// snapshot. The raft log grows by up to write rate x 2 x interval
	// between checks, so keep it short for data groups. Default 5 s.
	SnapshotInterval time.Duration
	// SnapshotThreshold is the number of entries since the last snapshot
	// that makes raft take one. Default 8192.
	SnapshotThreshold uint64
	// TrailingLogs is how many entries raft keeps after a snapshot, so that
	// a follower slightly behind catches up from the log instead of from a
	// snapshot. Default 10240.
	TrailingLogs uint64
	// ApplyTimeout bounds Apply, Barrier, AddVoter and RemoveServer when
	// their context has no deadline. Default 10 s.
	ApplyTimeout time.Duration
	// ReplicaLagTimeout is how long a voter may go without holding every
	// entry its leader had committed before the leader reports it lagging
	// (out of sync), as Kafka's replica.lag.time.max.ms: a follower that
	// keeps up is caught up on every AppendEntries round (at least every
	// 1-2x CommitTimeout), one that is slow, paused or cut off is not.
	// Default 10 s.
	ReplicaLagTimeout time.Duration
	// SnapDataDir, for a data group, is where its snapshots keep the
	// segment files they reference (hard links; the DataFSMConfig.SnapDir
	// of its FSM): raft then stores and sends snapshots through the data
	// snapshot store (snapshot_store.go). Empty (the metadata group):
	// snapshots are raft's files alone. Default empty.
	SnapDataDir string
	// NoSync turns off the fsyncs of bolt and raftlog. Tests only: acknowledged writes can be
	// lost on a crash. Default false.
	NoSync bool

	// wrapLogStore, when set (tests), wraps the group's raft log store,
	// under the logCache: a test slows or stops a replica's disk with it.
	wrapLogStore func(name string, s raft.LogStore) raft.LogStore
}

// DefaultGroupConfig returns the defaults for a group on a LAN with batched
// writes. Name, NodeID and Dir must still be set.
func DefaultGroupConfig() GroupConfig {
	return GroupConfig{
		LogStore:           LogStoreWAL,
		HeartbeatTimeout:   time.Second,
		ElectionTimeout:    time.Second,
		LeaderLeaseTimeout: 500 * time.Millisecond,
		CommitTimeout:      50 * time.Millisecond,
		MaxAppendEntries:   512,
		SnapshotInterval:   5 * time.Second,
		SnapshotThreshold:  8192,
		TrailingLogs:       10240,
		ApplyTimeout:       10 * time.Second,
		ReplicaLagTimeout:  10 * time.Second,
	}
}

// Validate reports whether c can open a group; the error wraps
// ErrInvalidConfig.
func (c GroupConfig) Validate() error {
	if err := mux.ValidGroupName(c.Name); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	var errs []error
	if c.NodeID == "" {
		errs = append(errs, errors.New("NodeID is required"))
	}
	if c.Dir == "" {
		errs = append(errs, errors.New("Dir is required"))
	}
	if c.ApplyTimeout <= 0 {
		errs = append(errs, errors.New("ApplyTimeout must be positive"))
	}
	if err := validLogStore(c.LogStore); err != nil {
		errs = append(errs, err)
	}
	if c.ReplicaLagTimeout <= 0 {
		errs = append(errs, errors.New("ReplicaLagTimeout must be positive"))
	}
	if c.SnapshotThreshold == 0 {
		errs = append(errs, errors.New("SnapshotThreshold must be positive"))
	}
	if err := raft.ValidateConfig(c.raftConfig()); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: group %q: %w", ErrInvalidConfig, c.Name, err)
	}
	return nil
}

// raftConfig builds raft's configuration from c (without the logger).
func (c GroupConfig) raftConfig() *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(c.NodeID)
	rc.HeartbeatTimeout = c.HeartbeatTimeout
	rc.ElectionTimeout = c.ElectionTimeout
	rc.LeaderLeaseTimeout = c.LeaderLeaseTimeout
	rc.CommitTimeout = c.CommitTimeout
	rc.MaxAppendEntries = c.MaxAppendEntries
	// BatchApplyCh buffers raft's apply channel to MaxAppendEntries, so
	// concurrent Applies queue up while the leader is in StoreLogs (fsync)
	// and all go into its next batch. Its cost, that raft's own Apply
	// timeout only covers the enqueue, is covered by Group.await.
	rc.BatchApplyCh = true
	rc.SnapshotInterval = c.SnapshotInterval
	rc.SnapshotThreshold = c.SnapshotThreshold
	rc.TrailingLogs = c.TrailingLogs
	rc.NoLegacyTelemetry = true
	return rc
}
