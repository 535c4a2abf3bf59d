package kafka

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/auth"
)

// LeaveGroup 0-2: a member leaves; the others rebalance at once (a group
// left empty becomes Empty). Needs consume on the group.
func init() { register(13, 0, 2, handleLeaveGroup) }

func handleLeaveGroup(s *Server, r *request) (finish, error) {
	req := r.kreq.(*kmsg.LeaveGroupRequest)
	resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
	if resp.ErrorCode = s.groupPrecheck(r, req.Group, auth.OpConsume); resp.ErrorCode != 0 {
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
	if p := g.pending[req.MemberID]; p != nil {
		g.stopTimer(&p.timer)
		delete(g.pending, p.id)
		return done(resp), nil
	}
	m := g.members[req.MemberID]
	if m == nil {
		resp.ErrorCode = kerr.UnknownMemberID.Code
		return done(resp), nil
	}
	g.dropMemberLocked(m, kerr.UnknownMemberID.Code)
	g.rebalanceLocked()
	return done(resp), nil
}
