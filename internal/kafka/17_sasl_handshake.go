package kafka

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/auth"
)

// SaslHandshake 1: the client names its mechanism, SCRAM-SHA-256 or
// SCRAM-SHA-512, against the users of the metadata group (the ones
// `strata user create` makes). Version 0, where raw SASL tokens follow
// outside Kafka's framing, is not served.
func init() { register(saslHandshakeKey, 1, 1, handleSaslHandshake) }

// saslState is a connection's SASL exchange.
type saslState struct {
	mech auth.Mechanism
	conv *auth.ServerConversation
}

func handleSaslHandshake(s *Server, r *request) (finish, error) {
	req := r.kreq.(*kmsg.SASLHandshakeRequest)
	resp := req.ResponseKind().(*kmsg.SASLHandshakeResponse)
	for _, m := range auth.Mechanisms() {
		resp.SupportedMechanisms = append(resp.SupportedMechanisms, string(m))
	}
	if s.cfg.Security == nil {
		resp.ErrorCode = kerr.IllegalSaslState.Code
		return done(resp), nil
	}
	if r.c.saslDone || r.c.sasl != nil {
		return nil, fmt.Errorf("SASL handshake on a connection already authenticating")
	}
	m := auth.Mechanism(req.Mechanism)
	if !m.Valid() {
		resp.ErrorCode = kerr.UnsupportedSaslMechanism.Code
		return done(resp), nil
	}
	sec := s.cfg.Security
	r.c.sasl = &saslState{mech: m, conv: auth.NewServerConversation(m, func(user string) (auth.Credential, bool) {
		return sec.Credential(user, m)
	})}
	return done(resp), nil
}
