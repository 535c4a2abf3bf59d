package cluster

import (
	"slices"
	"sync"

	"github.com/hashicorp/raft"
)

// peerHealth is what a data group's leader has seen of its followers'
// heartbeats. Raft reports a follower whose heartbeats fail and one that
// answers again; the observer's filter records both and delivers nothing,
// so no goroutine is needed to drain a channel.
type peerHealth struct {
	mu      sync.Mutex
	failing map[string]bool
}

func (h *peerHealth) observe(o *raft.Observation) bool {
	switch d := o.Data.(type) {
	case raft.FailedHeartbeatObservation:
		h.mu.Lock()
		h.failing[string(d.PeerID)] = true
		h.mu.Unlock()
	case raft.ResumedHeartbeatObservation:
		h.mu.Lock()
		delete(h.failing, string(d.PeerID))
		h.mu.Unlock()
	case raft.LeaderObservation:
		// A new term starts with a clean slate.
		h.mu.Lock()
		clear(h.failing)
		h.mu.Unlock()
	}
	return false
}

// watchHealth registers the observer on the group's raft.
func (dg *DataGroup) watchHealth() {
	dg.health = &peerHealth{failing: map[string]bool{}}
	dg.Group.Raft().RegisterObserver(raft.NewObserver(nil, false, dg.health.observe))
}

// Lagging returns, on the group's leader, the voters whose heartbeats fail
// or that gossip says are not alive. On a follower it returns the voters
// gossip says are not alive.
func (n *Node) Lagging(dg *DataGroup, alive map[string]bool) []string {
	info, ok := n.MetaFSM.DataGroupInfo(dg.ID)
	if !ok {
		return nil
	}
	var out []string
	leader := dg.Group.IsLeader()
	for _, v := range info.Voters {
		bad := !alive[v]
		if leader && dg.health != nil {
			dg.health.mu.Lock()
			bad = bad || dg.health.failing[v]
			dg.health.mu.Unlock()
		}
		if bad {
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return out
}

// MetaRole returns the role of node id in the metadata group: "leader",
// "voter", "nonvoter" or "none".
func (n *Node) MetaRole(id string) string {
	if lid, _ := n.Meta.Leader(); lid == id {
		return "leader"
	}
	servers, err := n.Meta.Servers()
	if err != nil {
		return "unknown"
	}
	for _, s := range servers {
		if string(s.ID) == id {
			if s.Suffrage == raft.Voter {
				return "voter"
			}
			return "nonvoter"
		}
	}
	return "none"
}
