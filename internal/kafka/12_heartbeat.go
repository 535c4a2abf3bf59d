package kafka

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/auth"
)

// Heartbeat 0-3: renews a member's session; REBALANCE_IN_PROGRESS tells
// it to rejoin, ILLEGAL_GENERATION and UNKNOWN_MEMBER_ID that it was
// left behind or removed. Needs consume on the group.
func init() { register(12, 0, 3, handleHeartbeat) }

func handleHeartbeat(s *Server, r *request) (finish, error) {
	req := r.kreq.(*kmsg.HeartbeatRequest)
	resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
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
	m, code := g.memberLocked(req.MemberID, req.InstanceID, req.Generation)
	switch {
	case code != 0:
		resp.ErrorCode = code
	case g.state == groupPreparingRebalance:
		resp.ErrorCode = kerr.RebalanceInProgress.Code
		g.heartbeatLocked(m)
	case g.state == groupCompletingRebalance, g.state == groupStable:
		g.heartbeatLocked(m)
	default:
		resp.ErrorCode = kerr.UnknownMemberID.Code
	}
	return done(resp), nil
}
