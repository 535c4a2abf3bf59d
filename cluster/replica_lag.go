package cluster

import (
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// In-sync replicas. hashicorp/raft v1.7.3 keeps each follower's match index
// in its private replication state; it exposes only the local node's
// indexes (Stats, CommitIndex) and observations of failing heartbeats.
// Heartbeats say nothing about the log: raft answers them on a fast path
// that skips the follower's disk, so a follower whose disk stalls keeps
// heartbeating while it falls behind. So the leader's transport is wrapped:
// every AppendEntries a leader sends carries its commit index at the time
// (LeaderCommitIndex), and a successful answer means the follower now
// holds every entry up to PrevLogEntry+len(Entries), fsynced. When that
// reaches the commit index sent, the follower was caught up at that
// moment. A voter is in sync while it was caught up within
// ReplicaLagTimeout, as Kafka's replica.lag.time.max.ms.
//
// This costs nothing on the wire: raft sends these RPCs anyway (with
// entries under load, and every 1-2x CommitTimeout when idle), so a healthy
// follower is caught up many times a second.

// replicaTracker is what a group's leader has seen of its followers'
// progress in its current term.
type replicaTracker struct {
	lagAfter time.Duration

	mu       sync.Mutex
	since    time.Time                   // when this node last became leader
	caughtUp map[raft.ServerID]time.Time // last time each follower held the commit index
}

func newReplicaTracker(lagAfter time.Duration) *replicaTracker {
	return &replicaTracker{lagAfter: lagAfter, since: time.Now(), caughtUp: map[raft.ServerID]time.Time{}}
}

// observe notes one answered AppendEntries.
func (r *replicaTracker) observe(id raft.ServerID, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse, now time.Time) {
	if !resp.Success || (len(args.Entries) == 0 && args.PrevLogEntry == 0) {
		// A refusal (log mismatch, stale term), or a heartbeat, which
		// carries no position.
		return
	}
	match := args.PrevLogEntry + uint64(len(args.Entries))
	if match < args.LeaderCommitIndex {
		return
	}
	r.mu.Lock()
	r.caughtUp[id] = now
	r.mu.Unlock()
}

// leaderChanged starts a new term's tracking. A new leader knows nothing of
// its followers yet; each gets ReplicaLagTimeout from now to show it is
// caught up, so that a failover does not report every follower lagging.
func (r *replicaTracker) leaderChanged(now time.Time) {
	r.mu.Lock()
	r.since = now
	clear(r.caughtUp)
	r.mu.Unlock()
}

// lagging reports whether follower id has not been caught up within
// ReplicaLagTimeout of now. Meaningful on the leader only.
func (r *replicaTracker) lagging(id raft.ServerID, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.caughtUp[id]
	if !ok {
		t = r.since
	}
	return now.Sub(t) > r.lagAfter
}

// watch resets the tracker on every leader change the node sees. The filter
// does the work and delivers nothing, so no goroutine drains a channel and
// no observation is dropped.
func (r *replicaTracker) watch(rf *raft.Raft) {
	rf.RegisterObserver(raft.NewObserver(nil, false, func(o *raft.Observation) bool {
		if _, ok := o.Data.(raft.LeaderObservation); ok {
			r.leaderChanged(time.Now())
		}
		return false
	}))
}

// trackingTransport is raft's NetworkTransport with the answers to
// AppendEntries fed to a replicaTracker. Every other method, including the
// optional WithClose and WithPreVote, is the embedded transport's.
type trackingTransport struct {
	*raft.NetworkTransport
	track *replicaTracker
}

// AppendEntries implements raft.Transport.
func (t *trackingTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	err := t.NetworkTransport.AppendEntries(id, target, args, resp)
	if err == nil {
		t.track.observe(id, args, resp, time.Now())
	}
	return err
}

// AppendEntriesPipeline implements raft.Transport. Pipelining is off
// (MaxRPCsInFlight 1, see OpenGroup), so raft always sends through
// AppendEntries; were it on, the answers would bypass the tracker, so
// refuse it here as the transport does.
func (t *trackingTransport) AppendEntriesPipeline(raft.ServerID, raft.ServerAddress) (raft.AppendPipeline, error) {
	return nil, raft.ErrPipelineReplicationNotSupported
}
