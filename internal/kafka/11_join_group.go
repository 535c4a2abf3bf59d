package kafka

import (
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/auth"
	"github.com/stratalog/strata/internal/broker"
)

// JoinGroup 0-5: a member joins (or rejoins for a rebalance) and waits,
// in its finish step, until every known member has rejoined or the
// rebalance timeout passed. A v4+ first join without a member id gets one
// with MEMBER_ID_REQUIRED and joins again with it; a static member (v5
// group instance id) rejoining without its member id replaces its old
// one, without a rebalance when its protocols are unchanged and the group
// is stable. The protocol type must match the group's and the member must
// support a protocol every member supports (INCONSISTENT_GROUP_PROTOCOL);
// a group with live native Strata members refuses Kafka members the same
// way. Needs consume on the group.
func init() { register(11, 0, 5, handleJoinGroup) }

func handleJoinGroup(s *Server, r *request) (finish, error) {
	req := r.kreq.(*kmsg.JoinGroupRequest)
	resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
	resp.Generation = -1
	resp.MemberID = req.MemberID
	if code := s.joinPrecheck(r, req); code != 0 {
		resp.ErrorCode = code
		return done(resp), nil
	}
	if r.version == 0 {
		req.RebalanceTimeoutMillis = req.SessionTimeoutMillis
	}
	g := s.groups().getOrCreate(req.Group)
	g.mu.Lock()
	defer g.mu.Unlock()
	defer g.syncClaimLocked()
	ch, code := g.joinLocked(r, req, resp)
	if ch == nil {
		resp.ErrorCode = code
		return done(resp), nil
	}
	fallback := req.ResponseKind().(*kmsg.JoinGroupResponse)
	fallback.ErrorCode, fallback.Generation = kerr.NotCoordinator.Code, -1
	return s.await(ch, fallback), nil
}

// joinPrecheck answers what needs no group state.
func (s *Server) joinPrecheck(r *request, req *kmsg.JoinGroupRequest) int16 {
	switch {
	case broker.ValidName("group", req.Group) != nil:
		return kerr.InvalidGroupID.Code
	case !s.allowed(r, auth.OpConsume, auth.ResourceGroup, req.Group):
		return kerr.GroupAuthorizationFailed.Code
	}
	if code := s.coordinatorCode(); code != 0 {
		return code
	}
	st := time.Duration(req.SessionTimeoutMillis) * time.Millisecond
	if st < minSessionTimeout || st > maxSessionTimeout {
		return kerr.InvalidSessionTimeout.Code
	}
	if req.ProtocolType == "" || len(req.Protocols) == 0 {
		return kerr.InconsistentGroupProtocol.Code
	}
	return 0
}

// joinLocked applies a join. It returns the channel the answer comes on
// when the join waits for the barrier; otherwise resp is the answer,
// with the error code returned. Caller must hold g.mu.
func (g *group) joinLocked(r *request, req *kmsg.JoinGroupRequest, resp *kmsg.JoinGroupResponse) (chan kmsg.Response, int16) {
	if !g.protocolsMatchLocked(req) {
		return nil, kerr.InconsistentGroupProtocol.Code
	}
	if err := g.claimLocked(); err != nil {
		return nil, groupErrorCode(err)
	}
	if req.InstanceID != nil {
		if old, ok := g.static[*req.InstanceID]; ok {
			if req.MemberID == "" {
				return g.replaceStaticLocked(r, req, resp, old)
			}
			if req.MemberID != old {
				return nil, kerr.FencedInstanceID.Code
			}
		}
	}
	if req.MemberID == "" {
		m := g.newMemberLocked(r, req)
		resp.MemberID = m.id
		if r.version >= 4 && req.InstanceID == nil {
			// KIP-394: the member must come back with its id, so a
			// client that retries a join does not leave orphans.
			g.pending[m.id] = m
			g.after(m.session, &m.timer, func() { delete(g.pending, m.id) })
			return nil, kerr.MemberIDRequired.Code
		}
		if m.instance != nil {
			g.static[*m.instance] = m.id
		}
		g.members[m.id] = m
		return g.waitJoinLocked(m, req), 0
	}
	if m := g.pending[req.MemberID]; m != nil {
		delete(g.pending, m.id)
		g.stopTimer(&m.timer)
		m.protocols = req.Protocols
		g.members[m.id] = m
		return g.waitJoinLocked(m, req), 0
	}
	m := g.members[req.MemberID]
	if m == nil {
		return nil, kerr.UnknownMemberID.Code
	}
	switch g.state {
	case groupCompletingRebalance, groupStable:
		if m.sameProtocols(req.Protocols) && (g.state == groupCompletingRebalance || m.id != g.leader) {
			// A repeated join (a lost answer): the current generation.
			g.fillJoinLocked(resp, m.id)
			g.heartbeatLocked(m)
			return nil, 0
		}
	case groupPreparingRebalance:
	default:
		return nil, kerr.UnknownMemberID.Code
	}
	m.protocols = req.Protocols
	m.session = time.Duration(req.SessionTimeoutMillis) * time.Millisecond
	m.rebalance = time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond
	return g.waitJoinLocked(m, req), 0
}

// newMemberLocked builds a member from its first join. Caller must hold
// g.mu.
func (g *group) newMemberLocked(r *request, req *kmsg.JoinGroupRequest) *member {
	g.seq++
	return &member{
		id: newMemberID(r.clientID, req.InstanceID), instance: req.InstanceID,
		clientID: r.clientID, host: clientHost(r), protocolType: req.ProtocolType, protocols: req.Protocols,
		session:   time.Duration(req.SessionTimeoutMillis) * time.Millisecond,
		rebalance: time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond,
		seq:       g.seq,
	}
}

// waitJoinLocked parks a member's join and rebalances. A join it still
// had waiting is answered REBALANCE_IN_PROGRESS (the client gave up on
// it). Caller must hold g.mu.
func (g *group) waitJoinLocked(m *member, req *kmsg.JoinGroupRequest) chan kmsg.Response {
	g.replyJoinErrLocked(m, kerr.RebalanceInProgress.Code)
	g.replySyncLocked(m, kerr.RebalanceInProgress.Code, nil)
	ch := make(chan kmsg.Response, 1)
	m.joinReq, m.joinCh = req, ch
	g.heartbeatLocked(m)
	g.rebalanceLocked()
	return ch
}

// protocolsMatchLocked reports whether a join fits the group: an empty
// group takes any protocol type; otherwise the type must be the group's
// and one of the join's protocols must be supported by every member.
// Caller must hold g.mu.
func (g *group) protocolsMatchLocked(req *kmsg.JoinGroupRequest) bool {
	others := 0
	support := map[string]int{}
	for _, m := range g.members {
		if m.id == req.MemberID {
			continue
		}
		others++
		for _, p := range m.protocols {
			support[p.Name]++
		}
	}
	if others == 0 {
		g.protocolType = req.ProtocolType
		return true
	}
	if req.ProtocolType != g.protocolType {
		return false
	}
	for _, p := range req.Protocols {
		if support[p.Name] == others {
			return true
		}
	}
	return false
}

// replaceStaticLocked gives a static member that rejoined without its
// member id a new one (KIP-345), fencing the old; with its protocols
// unchanged in a stable group it keeps its assignment and nothing
// rebalances. The answer then names the old leader id, so a rejoining
// leader does not run an assignment a stable group would not spread.
// Caller must hold g.mu.
func (g *group) replaceStaticLocked(r *request, req *kmsg.JoinGroupRequest, resp *kmsg.JoinGroupResponse, oldID string) (chan kmsg.Response, int16) {
	old := g.members[oldID]
	if old == nil {
		if p := g.pending[oldID]; p != nil {
			g.stopTimer(&p.timer)
			delete(g.pending, oldID)
		}
		delete(g.static, *req.InstanceID)
		req.MemberID = ""
		return g.joinLocked(r, req, resp)
	}
	m := g.newMemberLocked(r, req)
	m.seq, m.assignment = old.seq, old.assignment
	wasLeader := g.leader == oldID
	g.dropMemberLocked(old, kerr.FencedInstanceID.Code)
	g.members[m.id] = m
	g.static[*m.instance] = m.id
	resp.MemberID = m.id
	if g.state == groupStable && old.sameProtocols(req.Protocols) {
		if wasLeader {
			g.leader = m.id
		}
		g.fillJoinLocked(resp, m.id)
		resp.Members = nil
		if wasLeader {
			resp.LeaderID = oldID
		}
		g.heartbeatLocked(m)
		return nil, 0
	}
	if wasLeader {
		g.leader = m.id
	}
	return g.waitJoinLocked(m, req), 0
}
