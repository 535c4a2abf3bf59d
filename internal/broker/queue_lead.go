package broker

import (
	"sync"
	"sync/atomic"

	"github.com/stratalog/strata/cluster"
	"github.com/stratalog/strata/internal/queue"
)

// queueLead is what this node keeps, as the leader of a partition, for
// one queue group's state there: the leader's scratch (leases,
// reservations, what it read of records) and the records read ahead past
// it. None of it is replicated; a node that starts leading builds its own.
type queueLead struct {
	*queue.Leader
	dg   *cluster.DataGroup
	part *cluster.Partition
	// ra is the records read past the scratch's window (queue_readahead.go),
	// nil when none.
	ra atomic.Pointer[readAhead]
}

// leadKey names a queue group on a partition.
type leadKey struct {
	part  cluster.PartKey
	group string
}

// leads holds the queueLeads of the partitions this node leads.
type leads struct {
	mu sync.RWMutex // every receive and settle looks up its lead
	m  map[leadKey]*queueLead
}

// get returns the lead for state q of group on partition p of dg: the one
// kept, or a new (not loaded) one when none is kept or the one kept is
// stale (a snapshot restore or a re-created partition replaced its state).
func (ls *leads) get(dg *cluster.DataGroup, p *cluster.Partition, group string, q *queue.State) *queueLead {
	k := leadKey{part: p.Key, group: group}
	ls.mu.RLock()
	l := ls.m[k]
	ls.mu.RUnlock()
	if l != nil && l.State() == q && l.part == p {
		return l
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	l = ls.m[k]
	switch {
	case l != nil && l.State() == q && l.part == p:
		return l // another receive made it meanwhile
	case l != nil && !l.stale(k):
		// The caller's state is the stale one: it gets a lead of its
		// own, whose commands the current state refuses or ignores.
		return &queueLead{Leader: queue.NewLeader(q), dg: dg, part: p}
	}
	if ls.m == nil {
		ls.m = map[leadKey]*queueLead{}
	}
	l = &queueLead{Leader: queue.NewLeader(q), dg: dg, part: p}
	ls.m[k] = l
	return l
}

// stale reports whether the lead's partition or state is no longer this
// node's, or this node no longer leads its data group.
func (l *queueLead) stale(k leadKey) bool {
	return !l.dg.Group.IsLeader() || l.dg.FSM.Partition(k.part) != l.part || l.part.Queue(k.group) != l.State()
}

// leaderOf returns the scratch kept for state q of group on partition
// key, or nil.
func (ls *leads) leaderOf(key cluster.PartKey, group string, q *queue.State) *queue.Leader {
	ls.mu.RLock()
	defer ls.mu.RUnlock()
	if l := ls.m[leadKey{part: key, group: group}]; l != nil && l.State() == q {
		return l.Leader
	}
	return nil
}

// sweep forgets the leads of partitions this node no longer leads or
// holds, and of states that were replaced, with what they read ahead. A
// node that leads again loads a new scratch anyway (a new raft term).
func (ls *leads) sweep() {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	for k, l := range ls.m {
		if l.stale(k) {
			delete(ls.m, k)
		}
	}
}
