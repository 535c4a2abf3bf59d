package kafka

import (
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/auth"
)

// ListGroups 0-4: the Kafka groups of this coordinator with their
// protocol type and (v4) state, groups known only by committed offsets
// (Empty, no protocol type) and groups of live native members (Stable,
// protocol type "strata"), filtered by describe permission and (v4) by
// the states asked for. A node that does not coordinate answers
// NOT_COORDINATOR.
func init() { register(16, 0, 4, handleListGroups) }

func handleListGroups(s *Server, r *request) (finish, error) {
	req := r.kreq.(*kmsg.ListGroupsRequest)
	resp := req.ResponseKind().(*kmsg.ListGroupsResponse)
	if resp.ErrorCode = s.coordinatorCode(); resp.ErrorCode != 0 {
		return done(resp), nil
	}
	type entry struct{ protocolType, state string }
	all := map[string]entry{}
	for _, gs := range s.b.ListGroups() {
		e := entry{state: groupEmpty.String()}
		if s.b.NativeGroupMembers(gs.Name) > 0 {
			e = entry{nativeProtocolType, groupStable.String()}
		}
		all[gs.Name] = e
	}
	for _, g := range s.groups().list() {
		g.mu.Lock()
		if len(g.members) > 0 || all[g.name] == (entry{}) {
			all[g.name] = entry{g.protocolType, g.state.String()}
		}
		g.mu.Unlock()
	}
	names := make([]string, 0, len(all))
	for n := range all {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		e := all[n]
		if len(req.StatesFilter) > 0 && !slices.Contains(req.StatesFilter, e.state) {
			continue
		}
		if !s.allowed(r, auth.OpDescribe, auth.ResourceGroup, n) {
			continue
		}
		lg := kmsg.NewListGroupsResponseGroup()
		lg.Group, lg.ProtocolType, lg.GroupState = n, e.protocolType, e.state
		resp.Groups = append(resp.Groups, lg)
	}
	return done(resp), nil
}
