package kafka

import (
	"math"
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/auth"
)

// nativeProtocolType is the protocol type ListGroups and DescribeGroups
// give a group of native Strata members (assigned by the broker).
const nativeProtocolType = "strata"

// DescribeGroups 0-5: each Kafka group's state, protocol type, protocol
// and members (client id, host, metadata for the chosen protocol,
// assignment). A group known only by its committed offsets is Empty; one
// with live native members is Stable with protocol type "strata" (its
// members are described by `strata group describe`); an unknown one is
// Dead. Needs describe on each group (GROUP_AUTHORIZATION_FAILED).
func init() { register(15, 0, 5, handleDescribeGroups) }

func handleDescribeGroups(s *Server, r *request) (finish, error) {
	req := r.kreq.(*kmsg.DescribeGroupsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
	for _, name := range req.Groups {
		dg := kmsg.NewDescribeGroupsResponseGroup()
		dg.Group = name
		dg.AuthorizedOperations = math.MinInt32
		if dg.ErrorCode = s.groupPrecheck(r, name, auth.OpDescribe); dg.ErrorCode == 0 {
			s.describeGroup(&dg)
		}
		resp.Groups = append(resp.Groups, dg)
	}
	return done(resp), nil
}

func (s *Server) describeGroup(dg *kmsg.DescribeGroupsResponseGroup) {
	g := s.groups().get(dg.Group)
	if g == nil || g.empty() {
		switch {
		case s.b.NativeGroupMembers(dg.Group) > 0:
			dg.State, dg.ProtocolType = groupStable.String(), nativeProtocolType
		case g != nil || s.hasOffsets(dg.Group):
			dg.State = groupEmpty.String()
			if g != nil {
				g.mu.Lock()
				dg.ProtocolType = g.protocolType
				g.mu.Unlock()
			}
		default:
			dg.State = groupDead.String()
		}
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	dg.State, dg.ProtocolType = g.state.String(), g.protocolType
	if g.state == groupStable || g.state == groupCompletingRebalance {
		dg.Protocol = g.protocol
	}
	ids := make([]string, 0, len(g.members))
	for id := range g.members {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		m := g.members[id]
		dm := kmsg.NewDescribeGroupsResponseGroupMember()
		dm.MemberID, dm.InstanceID, dm.ClientID, dm.ClientHost = m.id, m.instance, m.clientID, m.host
		if dg.Protocol != "" {
			dm.ProtocolMetadata = m.metadata(g.protocol)
		}
		if g.state == groupStable {
			dm.MemberAssignment = g.assignmentFor(m.assignment)
		}
		dg.Members = append(dg.Members, dm)
	}
}

// empty reports whether the group has no members.
func (g *group) empty() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.members) == 0
}

// hasOffsets reports whether a group has committed offsets.
func (s *Server) hasOffsets(group string) bool {
	for _, gs := range s.b.ListGroups() {
		if gs.Name == group {
			return true
		}
	}
	return false
}
