package server

import (
	"context"

	stratav1 "github.com/stratalog/strata/api/v1"
)

// ClusterStatus implements strata.v1.
func (s *Server) ClusterStatus(ctx context.Context, _ *stratav1.ClusterStatusRequest) (*stratav1.ClusterStatusResponse, error) {
	st := s.b.ClusterStatus()
	resp := &stratav1.ClusterStatusResponse{MetadataLeader: st.MetadataLeader, AnsweredBy: st.AnsweredBy}
	for _, n := range st.Nodes {
		resp.Nodes = append(resp.Nodes, &stratav1.ClusterNodeStatus{
			Id: n.ID, State: n.State, GrpcAddr: n.GRPCAddr, ClusterAddr: n.ClusterAddr, MetaRole: n.MetaRole,
			PartitionsLed: int32(n.PartitionsLed), PartitionsFollowed: int32(n.PartitionsFollowed), GroupsLed: n.GroupsLed,
		})
	}
	for _, g := range st.Groups {
		resp.Groups = append(resp.Groups, &stratav1.DataGroupStatus{
			Id: g.ID, Voters: g.Voters, Leader: g.Leader, Preferred: g.Preferred,
			Partitions: int32(g.Partitions), Lagging: g.Lagging,
		})
	}
	return resp, nil
}

// RemoveNode implements strata.v1.
func (s *Server) RemoveNode(ctx context.Context, req *stratav1.RemoveNodeRequest) (*stratav1.RemoveNodeResponse, error) {
	if err := s.b.RemoveNode(ctx, req.GetId()); err != nil {
		return nil, toStatus(err)
	}
	return &stratav1.RemoveNodeResponse{}, nil
}
