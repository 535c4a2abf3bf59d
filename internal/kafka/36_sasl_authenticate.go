package kafka

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// SaslAuthenticate 0-2: the SCRAM exchange after SaslHandshake. A failure
// answers SASL_AUTHENTICATION_FAILED (the same for an unknown user and a
// wrong password), is audited, and closes the connection.
func init() { register(saslAuthenticateKey, 0, 2, handleSaslAuthenticate) }

// errAuthFailed ends a connection after its failed authentication.
var errAuthFailed = errors.New("kafka: SASL authentication failed")

func handleSaslAuthenticate(s *Server, r *request) (finish, error) {
	req := r.kreq.(*kmsg.SASLAuthenticateRequest)
	resp := req.ResponseKind().(*kmsg.SASLAuthenticateResponse)
	st := r.c.sasl
	if st == nil {
		resp.ErrorCode = kerr.IllegalSaslState.Code
		msg := "SaslAuthenticate before SaslHandshake"
		resp.ErrorMessage = &msg
		r.closeAfter = true
		return done(resp), nil
	}
	out, err := st.conv.Step(req.SASLAuthBytes)
	if err != nil {
		resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
		msg := "authentication failed: unknown user or wrong password"
		resp.ErrorMessage = &msg
		if a := s.cfg.Security.Audit(); a != nil {
			a.LoginFailed("user:"+claimed(st.conv.ClaimedUser()), string(st.mech), r.c.nc.RemoteAddr().String(), err.Error())
		}
		r.c.sasl = nil
		r.closeAfter = true
		return done(resp), nil
	}
	resp.SASLAuthBytes = out
	if st.conv.Done() {
		r.c.principal = "user:" + st.conv.Username()
		r.c.sasl, r.c.saslDone = nil, true
	}
	return done(resp), nil
}

// claimed cuts a claimed user name short for the audit log.
func claimed(user string) string {
	if len(user) > 64 {
		return user[:64] + "..."
	}
	return user
}
