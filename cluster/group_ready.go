package cluster

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// A new leader has every committed entry in its log (raft's leader
// completeness) but may not have applied them all to its FSM: its
// partitions can end below offsets its predecessor served, and its queue
// state can miss deliveries its predecessor made. Until it has applied
// them it must not answer reads, hand out leases or report high
// watermarks. The group's ready loop runs a Barrier after each election
// this node wins; the node is a ready leader once that barrier, appended
// in its own term, has been applied.

// readyRetryDelay is how long the ready loop waits before it runs a
// barrier again after one failed while this node still leads (a
// leadership transfer under way refuses it, for one).
const readyRetryDelay = 100 * time.Millisecond

// ReadyTerm returns the raft term in which this node leads the group and
// has applied every entry committed before it took over, or 0 when it is
// not such a leader: a follower, or a new leader still catching up. Three
// atomic loads: cheap enough for every fetch.
func (g *Group) ReadyTerm() uint64 {
	if g.raft.State() != raft.Leader {
		return 0
	}
	// readyTerm is stored only for a term in which this node's barrier
	// was applied, so equality with the current term is the proof.
	if t := g.readyTerm.Load(); t == g.raft.CurrentTerm() {
		return t
	}
	return 0
}

// IsReadyLeader reports whether this node leads the group and has applied
// everything committed before its term (see ReadyTerm).
func (g *Group) IsReadyLeader() bool { return g.ReadyTerm() != 0 }

// CatchingUp reports whether this node leads the group but is not ready
// yet: it is still applying what earlier leaders committed.
func (g *Group) CatchingUp() bool {
	return g.raft.State() == raft.Leader && g.readyTerm.Load() != g.raft.CurrentTerm()
}

// ReadyChanged returns a channel closed at the next change of this node's
// leadership or readiness in the group. Take it before looking at the
// state, so that a change in between still wakes the caller.
func (g *Group) ReadyChanged() <-chan struct{} {
	g.readyMu.Lock()
	defer g.readyMu.Unlock()
	return g.readyCh
}

// WaitReady waits until this node is a ready leader of the group and
// returns its term. It returns a *NotLeaderError when this node does not
// lead (or stops leading while it waits), ctx's error (matching
// ErrTimeout on its deadline), or ErrClosed.
func (g *Group) WaitReady(ctx context.Context) (uint64, error) {
	for {
		ch := g.ReadyChanged()
		if t := g.ReadyTerm(); t != 0 {
			return t, nil
		}
		if g.raft.State() != raft.Leader {
			return 0, g.mapErr("wait until ready", raft.ErrNotLeader)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, fmt.Errorf("cluster: group %s: wait until the leader has caught up: %w", g.cfg.Name, ctxErr(ctx))
		case <-g.closeCh:
			return 0, ErrClosed
		}
	}
}

// notifyReady wakes the waiters of ReadyChanged.
func (g *Group) notifyReady() {
	g.readyMu.Lock()
	close(g.readyCh)
	g.readyCh = make(chan struct{})
	g.readyMu.Unlock()
}

// startReadyLoop registers the ready loop's observer and starts it.
func (g *Group) startReadyLoop() {
	// raft drops an observation when the channel is full; one slot is
	// enough, since the loop reads the state again after every wake-up.
	wake := make(chan raft.Observation, 1)
	obs := raft.NewObserver(wake, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.LeaderObservation, raft.RaftState:
			return true
		}
		return false
	})
	g.raft.RegisterObserver(obs)
	g.wg.Add(1)
	go g.readyLoop(wake, obs)
}

// barrierResult is the outcome of the ready loop's barrier for term.
type barrierResult struct {
	term uint64
	err  error
}

// readyLoop makes this node a ready leader after each election it wins:
// it runs a barrier in the new term and, once the barrier is applied in
// that same term, records the term. A leadership lost and won again
// within one barrier leaves the old term recorded, which matches no later
// term, and the loop runs another barrier. Raft's LeaderCh would not do:
// it has one slot and drops transitions.
func (g *Group) readyLoop(wake <-chan raft.Observation, obs *raft.Observer) {
	defer g.wg.Done()
	defer g.raft.DeregisterObserver(obs)
	done := make(chan barrierResult, 1)
	inflight := false
	var retry <-chan time.Time
	for {
		g.notifyReady()
		// The term is read before the state: a barrier that succeeds
		// while the term is still this one was appended by this node
		// as the leader of this term.
		term := g.raft.CurrentTerm()
		if !inflight && retry == nil && g.raft.State() == raft.Leader && g.readyTerm.Load() != term {
			inflight = true
			g.wg.Add(1)
			go func() {
				defer g.wg.Done()
				// No enqueue timeout: Shutdown ends the enqueue, and Close
				// ends the wait (await).
				done <- barrierResult{term: term, err: g.await(context.Background(), g.raft.Barrier(0))}
			}()
		}
		select {
		case <-wake:
		case <-retry:
			retry = nil
		case r := <-done:
			inflight = false
			switch {
			case r.err == nil && g.raft.CurrentTerm() == r.term:
				g.readyTerm.Store(r.term)
				g.logger.Debug("leader caught up", "term", r.term)
			case r.err != nil:
				retry = time.After(readyRetryDelay)
			}
		case <-g.closeCh:
			return
		}
	}
}

// SetApplyHook makes fn run on raft's FSM goroutine before each entry is
// applied to this node's state machine; nil removes it. Tests use it to
// make a replica's FSM lag behind its raft log.
func (g *Group) SetApplyHook(fn func(*raft.Log)) {
	if fn == nil {
		g.applyHook.Store(nil)
		return
	}
	g.applyHook.Store(&fn)
}

// hookedFSM runs the group's apply hook (SetApplyHook) before the FSM's
// Apply; an atomic load when there is none.
type hookedFSM struct {
	raft.FSM
	g *Group
}

// Apply implements raft.FSM.
func (f hookedFSM) Apply(l *raft.Log) any {
	if h := f.g.applyHook.Load(); h != nil {
		(*h)(l)
	}
	return f.FSM.Apply(l)
}
