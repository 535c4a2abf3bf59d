package server

import (
	"context"
	"encoding/base64"
	"fmt"

	stratav1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/internal/auth"
	"github.com/stratalog/strata/internal/broker"
)

// SetSecurity makes s authenticate and authorize with sec (its
// interceptors and Tap must also be installed on the gRPC server: see
// GRPCSecurityOptions). Call it before serving.
func (s *Server) SetSecurity(sec *Security) { s.sec = sec }

// PutUser implements strata.v1.
func (s *Server) PutUser(ctx context.Context, req *stratav1.PutUserRequest) (*stratav1.PutUserResponse, error) {
	u := auth.User{Name: req.Name}
	for _, c := range req.Credentials {
		u.Credentials = append(u.Credentials, auth.Credential{Mechanism: auth.Mechanism(c.Mechanism), Salt: c.Salt,
			Iterations: int(c.Iterations), StoredKey: c.StoredKey, ServerKey: c.ServerKey})
	}
	if err := s.b.PutUser(ctx, u, req.Update); err != nil {
		return nil, toStatus(err)
	}
	return &stratav1.PutUserResponse{}, nil
}

// DeleteUser implements strata.v1.
func (s *Server) DeleteUser(ctx context.Context, req *stratav1.DeleteUserRequest) (*stratav1.DeleteUserResponse, error) {
	if err := s.b.DeleteUser(ctx, req.Name); err != nil {
		return nil, toStatus(err)
	}
	return &stratav1.DeleteUserResponse{}, nil
}

// ListUsers implements strata.v1: names and mechanisms, never keys.
func (s *Server) ListUsers(ctx context.Context, _ *stratav1.ListUsersRequest) (*stratav1.ListUsersResponse, error) {
	resp := &stratav1.ListUsersResponse{}
	for _, u := range s.b.Users() {
		pu := &stratav1.ListUsersResponse_User{Name: u.Name}
		for _, c := range u.Credentials {
			pu.Mechanisms = append(pu.Mechanisms, string(c.Mechanism))
		}
		resp.Users = append(resp.Users, pu)
	}
	return resp, nil
}

func aclFromProto(a *stratav1.ACL) auth.ACL {
	if a == nil {
		return auth.ACL{}
	}
	return auth.ACL{Principal: a.Principal, Permission: auth.Permission(a.Permission), Operation: auth.Operation(a.Operation),
		Resource: auth.ResourceType(a.ResourceType), Name: a.Name, Pattern: auth.PatternType(a.Pattern)}
}

func aclToProto(a auth.ACL) *stratav1.ACL {
	return &stratav1.ACL{Principal: a.Principal, Permission: string(a.Permission), Operation: string(a.Operation),
		ResourceType: string(a.Resource), Name: a.Name, Pattern: string(a.Pattern)}
}

// AddACL implements strata.v1.
func (s *Server) AddACL(ctx context.Context, req *stratav1.AddACLRequest) (*stratav1.AddACLResponse, error) {
	if err := s.b.AddACL(ctx, aclFromProto(req.Acl)); err != nil {
		return nil, toStatus(err)
	}
	return &stratav1.AddACLResponse{}, nil
}

// RemoveACL implements strata.v1.
func (s *Server) RemoveACL(ctx context.Context, req *stratav1.RemoveACLRequest) (*stratav1.RemoveACLResponse, error) {
	if err := s.b.RemoveACL(ctx, aclFromProto(req.Acl)); err != nil {
		return nil, toStatus(err)
	}
	return &stratav1.RemoveACLResponse{}, nil
}

// ListACLs implements strata.v1.
func (s *Server) ListACLs(ctx context.Context, req *stratav1.ListACLsRequest) (*stratav1.ListACLsResponse, error) {
	acls, _ := s.b.ACLs()
	resp := &stratav1.ListACLsResponse{}
	for _, a := range acls {
		if (req.Principal != "" && a.Principal != req.Principal) ||
			(req.ResourceType != "" && string(a.Resource) != req.ResourceType) ||
			(req.Name != "" && a.Name != req.Name) {
			continue
		}
		resp.Acls = append(resp.Acls, aclToProto(a))
	}
	return resp, nil
}

// WhoAmI implements strata.v1.
func (s *Server) WhoAmI(ctx context.Context, _ *stratav1.WhoAmIRequest) (*stratav1.WhoAmIResponse, error) {
	id := identityOf(ctx)
	return &stratav1.WhoAmIResponse{Principal: id.principal, Authenticated: id.principal != auth.Anonymous, Mechanism: id.mechanism}, nil
}

// GossipKey implements strata.v1.
func (s *Server) GossipKey(ctx context.Context, req *stratav1.GossipKeyRequest) (*stratav1.GossipKeyResponse, error) {
	var key []byte
	if req.Action != "list" {
		var err error
		if key, err = base64.StdEncoding.DecodeString(req.Key); err != nil {
			return nil, toStatus(fmt.Errorf("%w: gossip key is not base64: %w", broker.ErrInvalidRequest, err))
		}
	}
	r, err := s.b.GossipKey(ctx, req.Action, key)
	if err != nil {
		return nil, toStatus(err)
	}
	return &stratav1.GossipKeyResponse{Members: int32(r.Members), Failed: int32(r.Failed), Errors: r.Errors,
		Keys: r.Keys, Primary: r.Primary}, nil
}

// canDescribe reports whether the caller may see a resource in a list.
func (s *Server) canDescribe(ctx context.Context, res auth.ResourceType, name string) bool {
	return s.sec.allowed(ctx, auth.OpDescribe, res, name)
}
