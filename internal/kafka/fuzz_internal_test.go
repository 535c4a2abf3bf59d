package kafka

import (
	"encoding/binary"
	"io"
	"net"
	"testing"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/auth"
)

// fuzzSecurity requires authentication and knows one user, alice.
type fuzzSecurity struct{ cred auth.Credential }

func (f fuzzSecurity) Required() bool { return true }
func (f fuzzSecurity) Credential(user string, m auth.Mechanism) (auth.Credential, bool) {
	return f.cred, user == "alice" && m == f.cred.Mechanism
}
func (f fuzzSecurity) Allowed(string, auth.Operation, auth.ResourceType, string) bool { return false }
func (f fuzzSecurity) Audit() *auth.Audit                                             { return auth.NewAudit(io.Discard) }

// fuzzFrame is a request body (the frame without its length prefix).
func fuzzFrame(key, version int16, clientID *string, body []byte) []byte {
	b := kbin.AppendInt16(nil, key)
	b = kbin.AppendInt16(b, version)
	b = kbin.AppendInt32(b, 1)
	b = kbin.AppendNullableString(b, clientID)
	return append(b, body...)
}

// FuzzRequestFrame feeds arbitrary bytes as one request (after the length
// prefix) to the connection's parser, on a listener without security and
// on one that requires SASL; what parses is handed to the handlers that
// need no broker (ApiVersions and the SASL exchange, with arbitrary SCRAM
// messages) and their responses are encoded. Nothing may panic, and what
// parses must be a served key at a served version.
func FuzzRequestFrame(f *testing.F) {
	id := "fuzz"
	seed := func(req kmsg.Request, version int16) {
		req.SetVersion(version)
		f.Add(fuzzFrame(req.Key(), version, &id, req.AppendTo(nil)))
	}
	for v := int16(0); v <= 3; v++ {
		seed(kmsg.NewPtrApiVersionsRequest(), v)
	}
	for v := int16(0); v <= 7; v++ {
		md := kmsg.NewPtrMetadataRequest()
		topic := "orders"
		md.Topics = []kmsg.MetadataRequestTopic{{Topic: &topic}}
		seed(md, v)
	}
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.Mechanism = string(auth.ScramSHA256)
	seed(hs, 1)
	for v := int16(0); v <= 2; v++ {
		sa := kmsg.NewPtrSASLAuthenticateRequest()
		sa.SASLAuthBytes = []byte("n,,n=alice,r=fyko+d2lbbFgONRv9qkxdawL")
		seed(sa, v)
	}
	f.Add(fuzzFrame(18, 99, nil, []byte{1, 2, 3}))
	f.Add(fuzzFrame(32767, 0, &id, nil))
	f.Add(fuzzFrame(18, 3, &id, []byte{0x80}))
	f.Add([]byte{0, 3, 0, 1, 0, 0, 0, 1, 0, 50, 'a'})
	f.Add([]byte{})

	cred, err := auth.NewCredential(auth.ScramSHA256, "pw", auth.MinIterations)
	if err != nil {
		f.Fatal(err)
	}
	open := &Server{cfg: DefaultConfig()}
	secureCfg := DefaultConfig()
	secureCfg.Security = fuzzSecurity{cred: cred}
	secure := &Server{cfg: secureCfg}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, s := range []*Server{open, secure} {
			parseAndAnswer(t, s, body)
		}
	})
}

// parseAndAnswer parses body as a request on a fresh connection of s and
// runs the handlers that need no broker.
func parseAndAnswer(t *testing.T, s *Server, body []byte) {
	nc, peer := net.Pipe()
	defer nc.Close()
	defer peer.Close()
	c := newConn(s, nc)
	if len(body) >= 2 && int16(binary.BigEndian.Uint16(body)) == saslAuthenticateKey && s.cfg.Security != nil {
		// As after a handshake: the SCRAM messages meet the conversation.
		sec := s.cfg.Security
		c.sasl = &saslState{mech: auth.ScramSHA256, conv: auth.NewServerConversation(auth.ScramSHA256,
			func(user string) (auth.Credential, bool) { return sec.Credential(user, auth.ScramSHA256) })}
	}
	r, a, _, err := c.parse(body)
	if err != nil {
		return
	}
	key := r.kreq.Key()
	if key != a.key || (key != apiVersionsKey && (r.version < a.min || r.version > a.max)) {
		t.Fatalf("parsed key %d version %d, served %d [%d, %d]", key, r.version, a.key, a.min, a.max)
	}
	if key != apiVersionsKey && key != saslHandshakeKey && key != saslAuthenticateKey {
		if s.cfg.Security != nil {
			t.Fatalf("key %d parsed before authentication", key)
		}
		return // the other handlers need a broker
	}
	fin, err := a.h(s, r)
	if err != nil {
		return
	}
	if resp := fin(); resp != nil {
		_ = resp.AppendTo(nil)
	}
}
