package kafka

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/auth"
)

// SyncGroup 0-3: after a rebalance, the leader sends every member's
// assignment (opaque bytes from the client's assignor) and each member
// waits, in its finish step, for its own; the group is then Stable. A
// member that syncs a stable group gets its assignment at once. Needs
// consume on the group.
func init() { register(14, 0, 3, handleSyncGroup) }

func handleSyncGroup(s *Server, r *request) (finish, error) {
	req := r.kreq.(*kmsg.SyncGroupRequest)
	resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
	if code := s.groupPrecheck(r, req.Group, auth.OpConsume); code != 0 {
		resp.ErrorCode = code
		return done(resp), nil
	}
	g := s.groups().get(req.Group)
	if g == nil {
		resp.ErrorCode = kerr.UnknownMemberID.Code
		return done(resp), nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	defer g.syncClaimLocked()
	ch, code := g.syncLocked(req, resp)
	if ch == nil {
		resp.ErrorCode = code
		return done(resp), nil
	}
	fallback := req.ResponseKind().(*kmsg.SyncGroupResponse)
	fallback.ErrorCode = kerr.NotCoordinator.Code
	return s.await(ch, fallback), nil
}

// groupPrecheck checks a group request's name, permission and
// coordinator.
func (s *Server) groupPrecheck(r *request, group string, op auth.Operation) int16 {
	switch {
	case group == "":
		return kerr.InvalidGroupID.Code
	case !s.allowed(r, op, auth.ResourceGroup, group):
		return kerr.GroupAuthorizationFailed.Code
	}
	return s.coordinatorCode()
}

// memberLocked finds the member a request names and checks its instance
// id and generation. Caller must hold g.mu.
func (g *group) memberLocked(id string, instance *string, generation int32) (*member, int16) {
	m := g.members[id]
	switch {
	case instance != nil && g.static[*instance] != "" && g.static[*instance] != id:
		return nil, kerr.FencedInstanceID.Code
	case m == nil:
		return nil, kerr.UnknownMemberID.Code
	case generation != g.generation:
		return m, kerr.IllegalGeneration.Code
	}
	return m, 0
}

// syncLocked applies a sync; see joinLocked for what it returns. Caller
// must hold g.mu.
func (g *group) syncLocked(req *kmsg.SyncGroupRequest, resp *kmsg.SyncGroupResponse) (chan kmsg.Response, int16) {
	m, code := g.memberLocked(req.MemberID, req.InstanceID, req.Generation)
	if code != 0 {
		return nil, code
	}
	switch g.state {
	case groupPreparingRebalance:
		return nil, kerr.RebalanceInProgress.Code
	case groupStable:
		resp.MemberAssignment = g.assignmentFor(m.assignment)
		g.heartbeatLocked(m)
		return nil, 0
	case groupCompletingRebalance:
	default:
		return nil, kerr.UnknownMemberID.Code
	}
	g.replySyncLocked(m, kerr.RebalanceInProgress.Code, nil)
	ch := make(chan kmsg.Response, 1)
	m.syncReq, m.syncCh = req, ch
	delete(g.pendingSync, m.id)
	g.heartbeatLocked(m)
	if m.id == g.leader {
		g.completeSyncLocked(req.GroupAssignment)
	}
	return ch, 0
}

// completeSyncLocked stores the leader's assignment, answers the members
// waiting in sync and makes the group stable. Caller must hold g.mu.
func (g *group) completeSyncLocked(as []kmsg.SyncGroupRequestGroupAssignment) {
	for _, m := range g.members {
		m.assignment = nil
	}
	for _, a := range as {
		if m := g.members[a.MemberID]; m != nil {
			m.assignment = a.MemberAssignment
		}
	}
	for _, m := range g.members {
		g.replySyncLocked(m, 0, g.assignmentFor(m.assignment))
	}
	g.state = groupStable
	g.stopTimer(&g.syncTimer)
	g.pendingSync = nil
}
