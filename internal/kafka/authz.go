package kafka

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/auth"
)

// clusterResource is the name of the one cluster resource.
const clusterResource = "cluster"

// allowed reports whether the connection's principal may do op on a
// resource, with the node's ACLs (always without Security or when it is
// not required). A refusal is audited; the handler answers it with the
// API's authorization error (TOPIC_AUTHORIZATION_FAILED, ...), the same
// whether or not the resource exists.
func (s *Server) allowed(r *request, op auth.Operation, res auth.ResourceType, name string) bool {
	sec := s.cfg.Security
	if sec == nil || !sec.Required() {
		return true
	}
	if sec.Allowed(r.c.principal, op, res, name) {
		return true
	}
	if a := sec.Audit(); a != nil {
		a.Denied(r.c.principal, string(op), string(res), name, "kafka:"+apiName(r.kreq.Key()), r.c.nc.RemoteAddr().String())
	}
	return false
}

// apiName names an API key for logs.
func apiName(key int16) string {
	if n := kmsg.NameForKey(key); n != "" {
		return n
	}
	return "unknown"
}

// allowedAny reports whether the principal may do op on the cluster or on
// some topic (InitProducerId: the right to produce somewhere). A refusal
// is audited once, for the cluster.
func (s *Server) allowedAny(r *request, op auth.Operation) bool {
	sec := s.cfg.Security
	if sec == nil || !sec.Required() || sec.Allowed(r.c.principal, op, auth.ResourceCluster, clusterResource) {
		return true
	}
	for _, t := range s.b.Topics() {
		if sec.Allowed(r.c.principal, op, auth.ResourceTopic, t.Name) {
			return true
		}
	}
	return s.allowed(r, op, auth.ResourceCluster, clusterResource)
}
