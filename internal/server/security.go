package server

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"

	"github.com/stratalog/strata/internal/auth"
	"github.com/stratalog/strata/internal/tlsutil"
)

// UserStore is where Security finds credentials and rules: the broker's
// copy of the metadata.
type UserStore interface {
	UserCredential(name string, m auth.Mechanism) (auth.Credential, bool)
	ACLs() ([]auth.ACL, uint64)
	SecurityVersion() uint64
}

// Security authenticates and authorizes the calls of the gRPC service.
//
// Authentication happens in a tap handle (Tap), on the transport's headers
// before a request body is read: a client certificate verified by TLS
// gives the principal of its certificate (user:CN, or node:ID for a node
// certificate); an "authorization: Basic …" header, accepted only over
// TLS, gives user:NAME once the password matches the user's SCRAM
// credential. With Required, a call with neither is refused with
// Unauthenticated (health checks excepted, for probes).
//
// Authorization happens in the interceptors (UnaryInterceptor,
// StreamInterceptor): each request needs the checks checksFor names; nodes
// (node:ID) may do anything, since they forward what they authorized
// themselves. A refusal is PermissionDenied, or NotFound for a describe.
type Security struct {
	// Required turns authentication and ACLs on. Off, every call is
	// allowed and only identified (WhoAmI).
	Required bool
	// Authorizer decides (super-users, deny wins, default deny).
	Authorizer *auth.Authorizer
	// Users holds the credentials and the rules.
	Users UserStore
	// Audit records failed logins, denials and admin changes; nil: none.
	Audit *auth.Audit
	// Logger; nil discards.
	Logger *slog.Logger

	seen atomic.Uint64 // the security version the Authorizer was loaded at

	mu       sync.Mutex
	verified map[[32]byte]verdict // password checks, by hash of user and password
}

// verdict is a cached password check, valid while the security version
// it was made at holds.
type verdict struct {
	ok      bool
	version uint64
}

// maxVerified bounds the password-check cache; past it the cache restarts.
const maxVerified = 10000

// identity is who a call comes from, set by Tap.
type identity struct {
	principal string
	mechanism string // mtls, password or none
	remote    string
}

type identityKey struct{}

// Errors of authentication, as the client sees them.
var (
	errNoCredentials = status.Error(codes.Unauthenticated, "authentication required: present a client certificate or a user and password")
	errBadPassword   = status.Error(codes.Unauthenticated, "authentication failed: unknown user or wrong password")
	errPlainPassword = status.Error(codes.Unauthenticated, "password authentication needs TLS: the password would cross the network in clear")
)

// Tap implements tap.ServerInHandle.
func (s *Security) Tap(ctx context.Context, info *tap.Info) (context.Context, error) {
	id, err := s.identify(ctx, info.Header)
	if err != nil {
		return ctx, err
	}
	if s.Required && id.principal == auth.Anonymous && !publicMethod(info.FullMethodName) {
		return ctx, errNoCredentials
	}
	return context.WithValue(ctx, identityKey{}, id), nil
}

// publicMethod is a method anyone may call: health checks.
func publicMethod(m string) bool {
	return strings.HasPrefix(m, "/"+healthpb.Health_ServiceDesc.ServiceName+"/")
}

func (s *Security) identify(ctx context.Context, md metadata.MD) (identity, error) {
	id := identity{principal: auth.Anonymous, mechanism: "none"}
	var tlsInfo *credentials.TLSInfo
	if p, ok := peer.FromContext(ctx); ok {
		if p.Addr != nil {
			id.remote = p.Addr.String()
		}
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok {
			tlsInfo = &ti
		}
	}
	if h := md.Get("authorization"); len(h) > 0 {
		user, pass, ok := parseBasic(h[0])
		if !ok {
			s.audit().LoginFailed("user:?", "password", id.remote, "malformed authorization header")
			return id, status.Error(codes.Unauthenticated, "malformed authorization header: want Basic base64(user:password)")
		}
		if tlsInfo == nil {
			s.audit().LoginFailed("user:"+user, "password", id.remote, "password without TLS")
			return id, errPlainPassword
		}
		if !s.checkPassword(user, pass) {
			s.audit().LoginFailed("user:"+user, "password", id.remote, "unknown user or wrong password")
			return id, errBadPassword
		}
		id.principal, id.mechanism = "user:"+user, "password"
		return id, nil
	}
	if tlsInfo != nil && len(tlsInfo.State.VerifiedChains) > 0 && len(tlsInfo.State.VerifiedChains[0]) > 0 {
		id.principal, id.mechanism = tlsutil.Principal(tlsInfo.State.VerifiedChains[0][0]), "mtls"
	}
	return id, nil
}

func parseBasic(h string) (user, pass string, ok bool) {
	const prefix = "basic "
	if len(h) < len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", "", false
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(h[len(prefix):]))
	if err != nil {
		return "", "", false
	}
	user, pass, ok = strings.Cut(string(b), ":")
	return user, pass, ok && user != ""
}

// checkPassword verifies a password against the user's stored SCRAM
// credential. The check costs a PBKDF2 (thousands of hashes), so its
// answer, good or bad, is cached until a user or rule changes.
func (s *Security) checkPassword(user, pass string) bool {
	key := sha256.Sum256([]byte(user + "\x00" + pass))
	v := s.Users.SecurityVersion()
	s.mu.Lock()
	if c, ok := s.verified[key]; ok && c.version == v {
		s.mu.Unlock()
		return c.ok
	}
	s.mu.Unlock()
	ok := false
	for _, m := range []auth.Mechanism{auth.ScramSHA256, auth.ScramSHA512} {
		if c, found := s.Users.UserCredential(user, m); found {
			ok = c.Verify(pass)
			break
		}
	}
	s.mu.Lock()
	if s.verified == nil || len(s.verified) >= maxVerified {
		s.verified = map[[32]byte]verdict{}
	}
	s.verified[key] = verdict{ok: ok, version: v}
	s.mu.Unlock()
	return ok
}

func (s *Security) audit() *auth.Audit {
	if s == nil || s.Audit == nil {
		return auth.NewAudit(nil)
	}
	return s.Audit
}

// identityOf returns the identity Tap gave the call.
func identityOf(ctx context.Context) identity {
	if id, ok := ctx.Value(identityKey{}).(identity); ok {
		return id
	}
	return identity{principal: auth.Anonymous, mechanism: "none"}
}

// allowed reports whether the caller may do op on a resource.
func (s *Security) allowed(ctx context.Context, op auth.Operation, res auth.ResourceType, name string) bool {
	return s.Allowed(identityOf(ctx).principal, op, res, name)
}

// Allowed reports whether principal may do op on a resource: always when
// security is not required, and for nodes; otherwise as the ACLs say (the
// Kafka listener asks too).
func (s *Security) Allowed(p string, op auth.Operation, res auth.ResourceType, name string) bool {
	if s == nil || !s.Required {
		return true
	}
	if strings.HasPrefix(p, "node:") {
		return true
	}
	if v := s.Users.SecurityVersion(); v != s.seen.Load() {
		acls, v := s.Users.ACLs()
		s.Authorizer.Update(acls, v)
		s.seen.Store(v)
	}
	return s.Authorizer.Authorize(p, op, res, name)
}

// authorize runs the checks req needs.
func (s *Security) authorize(ctx context.Context, method string, req any) error {
	if s == nil || !s.Required {
		return nil
	}
	cs, ok := checksFor(req)
	if !ok {
		return status.Errorf(codes.PermissionDenied, "%s: no authorization rule for this call", method)
	}
	for _, c := range cs {
		if s.allowed(ctx, c.op, c.res, c.name) {
			continue
		}
		id := identityOf(ctx)
		s.audit().Denied(id.principal, string(c.op), string(c.res), c.name, method, id.remote)
		return status.Errorf(codes.PermissionDenied, "%s may not %s %s %q", id.principal, c.op, c.res, c.name)
	}
	return nil
}

// UnaryInterceptor authorizes a unary call and audits admin changes. Put
// it after the interceptors of GRPCOptions.
func (s *Security) UnaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if strings.HasPrefix(info.FullMethod, "/"+healthpb.Health_ServiceDesc.ServiceName+"/") {
		return handler(ctx, req)
	}
	if err := s.authorize(ctx, info.FullMethod, req); err != nil {
		return nil, err
	}
	resp, err := handler(ctx, req)
	if action, target := adminAction(req); action != "" && s.Audit != nil {
		id := identityOf(ctx)
		s.Audit.AdminChange(id.principal, action, target, id.remote, err)
	}
	return resp, err
}

// StreamInterceptor authorizes each message of a client stream
// (ProduceStream) as it arrives, and refuses streams of other services
// (reflection) to anonymous callers when security is required.
func (s *Security) StreamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if !s.Required || strings.HasPrefix(info.FullMethod, "/"+healthpb.Health_ServiceDesc.ServiceName+"/") {
		return handler(srv, ss)
	}
	return handler(srv, &authzStream{ServerStream: ss, s: s, method: info.FullMethod})
}

// authzStream checks every message received on a stream.
type authzStream struct {
	grpc.ServerStream
	s      *Security
	method string
}

func (a *authzStream) RecvMsg(m any) error {
	if err := a.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if _, known := checksFor(m); !known && !strings.HasPrefix(a.method, "/strata.") {
		return nil // another service's messages (reflection): authentication suffices
	}
	return a.s.authorize(a.ServerStream.Context(), a.method, m)
}
