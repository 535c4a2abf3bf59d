package kafka_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/auth/audittest"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"google.golang.org/grpc"

	"github.com/stratalog/strata/api/client"
	stratav1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/internal/agent"
	"github.com/stratalog/strata/internal/auth"
	"github.com/stratalog/strata/internal/tlsutil"
	"github.com/stratalog/strata/internal/tlsutil/tlstest"
)

// secureNode is a single node with TLS, authentication required, the
// super-user user:admin, and a user alice (password "pw-alice", SCRAM
// credentials for both mechanisms).
type secureNode struct {
	a       *agent.Agent
	dataDir string
	tls     *tls.Config // trusts the node's CA; no client certificate
	admin   stratav1.StrataClient
	ca      *tlstest.CA
}

func startSecureNode(t *testing.T) *secureNode {
	t.Helper()
	ca := tlstest.NewCA(t)
	files := ca.Node(t, "s1")
	cfg := agent.DefaultConfig()
	cfg.DataDir, cfg.NodeID, cfg.MetadataVoters = t.TempDir(), "s1", 1
	cfg.GRPCAddr, cfg.HTTPAddr, cfg.ClusterAddr, cfg.GossipAddr = "127.0.0.1:0", "", "127.0.0.1:0", ""
	cfg.KafkaAddr = "127.0.0.1:0"
	cfg.TLSCert, cfg.TLSKey, cfg.TLSCA = files.Cert, files.Key, files.CA
	cfg.Auth, cfg.SuperUsers = true, []string{"user:admin"}
	cfg.MinFreeDiskBytes = -1
	a, err := agent.New(ctxT(t), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	n := &secureNode{a: a, dataDir: cfg.DataDir, tls: tlsStore(t, tlsutil.Files{CA: ca.CertFile}).ClientConfig(""), ca: ca}
	adminFiles := ca.Client(t, "admin")
	adminFiles.CA = ca.CertFile
	conn, err := grpc.NewClient(a.GRPCAddr(), client.SecurityDialOptions(tlsStore(t, adminFiles).ClientConfig(""), "", "")...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	n.admin = stratav1.NewStrataClient(conn)
	var creds []*stratav1.ScramCredential
	for _, m := range auth.Mechanisms() {
		c, err := auth.NewCredential(m, "pw-alice", auth.MinIterations)
		if err != nil {
			t.Fatal(err)
		}
		creds = append(creds, &stratav1.ScramCredential{Mechanism: string(c.Mechanism), Salt: c.Salt,
			Iterations: int32(c.Iterations), StoredKey: c.StoredKey, ServerKey: c.ServerKey})
	}
	if _, err := n.admin.PutUser(ctxT(t), &stratav1.PutUserRequest{Name: "alice", Credentials: creds}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"orders", "secret"} {
		if _, err := n.admin.CreateTopic(ctxT(t), &stratav1.CreateTopicRequest{Name: name}); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

func tlsStore(t *testing.T, f tlsutil.Files) *tlsutil.Store {
	t.Helper()
	st, err := tlsutil.Open(f, nil)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// client is a kgo client of the node over TLS, authenticating with m.
func (n *secureNode) client(t *testing.T, m sasl.Mechanism) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(n.a.KafkaAddr()), kgo.DialTLSConfig(n.tls.Clone()), kgo.SASL(m),
		kgo.RequestRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// allow adds an allow ACL for alice on a topic.
func (n *secureNode) allow(t *testing.T, op, topic string) {
	t.Helper()
	if _, err := n.admin.AddACL(ctxT(t), &stratav1.AddACLRequest{Acl: &stratav1.ACL{Principal: "user:alice",
		Permission: "allow", Operation: op, ResourceType: "topic", Name: topic, Pattern: "literal"}}); err != nil {
		t.Fatal(err)
	}
}

// rawTLS opens a TLS connection to the Kafka listener without Kafka's
// client: each request is written and read by hand.
func (n *secureNode) rawTLS(t *testing.T) net.Conn {
	t.Helper()
	c, err := tls.Dial("tcp", n.a.KafkaAddr(), n.tls.Clone())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip sends req (a non-flexible version) on c and reads its answer.
func roundTrip[R kmsg.Response](t *testing.T, c net.Conn, corr int32, req kmsg.Request) R {
	t.Helper()
	if _, err := c.Write(frame(req.Key(), req.GetVersion(), corr, "raw", req.AppendTo(nil))); err != nil {
		t.Fatal(err)
	}
	got, body := readResponse(t, c)
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	if err := resp.ReadFrom(body); err != nil || got != corr {
		t.Fatalf("%s answer: correlation %d (want %d), %v", kmsg.NameForKey(req.Key()), got, corr, err)
	}
	return resp.(R)
}

// metadataOf asks for topics (nil: all) and returns the error code of
// each topic in the answer.
func metadataOf(t *testing.T, cl *kgo.Client, topics ...string) map[string]int16 {
	t.Helper()
	req := kmsg.NewPtrMetadataRequest()
	for _, name := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(name)
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctxT(t), cl)
	if err != nil {
		t.Fatalf("metadata %v: %v", topics, err)
	}
	out := map[string]int16{}
	for _, mt := range resp.Topics {
		out[*mt.Topic] = mt.ErrorCode
	}
	return out
}

// TestSASLAuthorization: a user authenticates with each SCRAM mechanism
// over TLS; without an ACL a named topic is TOPIC_AUTHORIZATION_FAILED
// (exactly as a topic that does not exist) and the list of all topics is
// empty; a describe ACL lets the topic through, and only it. Refusals are
// audited.
func TestSASLAuthorization(t *testing.T) {
	n := startSecureNode(t)
	mechs := []sasl.Mechanism{
		scram.Auth{User: "alice", Pass: "pw-alice"}.AsSha256Mechanism(),
		scram.Auth{User: "alice", Pass: "pw-alice"}.AsSha512Mechanism(),
	}
	for _, m := range mechs {
		cl := n.client(t, m)
		got := metadataOf(t, cl, "orders", "nosuch")
		denied := kerr.TopicAuthorizationFailed.Code
		if got["orders"] != denied || got["nosuch"] != denied {
			t.Fatalf("%s: metadata without an ACL: %v, want TOPIC_AUTHORIZATION_FAILED for both", m.Name(), got)
		}
		if all := metadataOf(t, cl); len(all) != 0 {
			t.Fatalf("%s: all topics without an ACL: %v, want none", m.Name(), all)
		}
	}
	n.allow(t, "describe", "orders")
	for _, m := range mechs {
		cl := n.client(t, m)
		if got := metadataOf(t, cl, "orders", "secret"); got["orders"] != 0 || got["secret"] != kerr.TopicAuthorizationFailed.Code {
			t.Fatalf("%s: metadata with describe on orders: %v", m.Name(), got)
		}
		if all := metadataOf(t, cl); len(all) != 1 || all["orders"] != 0 {
			t.Fatalf("%s: all topics with describe on orders: %v, want orders only", m.Name(), all)
		}
	}
	checkProduceAuthorization(t, n, mechs[0])
	events := audittest.Events(t, filepath.Join(n.dataDir, "audit.log"))
	if !slices.ContainsFunc(events, func(e string) bool { return strings.HasPrefix(e, "denied user:alice describe") }) {
		t.Errorf("audit log lacks the refused describe; has:\n%s", strings.Join(events, "\n"))
	}
}

// checkProduceAuthorization: a produce without a produce ACL is
// TOPIC_AUTHORIZATION_FAILED, with one it succeeds. It runs once the
// listener advertises Produce (key 0) and is skipped before.
func checkProduceAuthorization(t *testing.T, n *secureNode, m sasl.Mechanism) {
	t.Helper()
	cl := n.client(t, m)
	av, err := kmsg.NewPtrApiVersionsRequest().RequestWith(ctxT(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(av.ApiKeys, func(k kmsg.ApiVersionsResponseApiKey) bool { return k.ApiKey == 0 }) {
		t.Log("Produce is not served yet: produce authorization not checked")
		return
	}
	ctx, cancel := context.WithTimeout(ctxT(t), 20*time.Second)
	defer cancel()
	producer := n.client(t, m)
	err = producer.ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: []byte("x")}).FirstErr()
	// An idempotent producer first asks for a producer id, which needs
	// produce somewhere (as Kafka: CLUSTER_AUTHORIZATION_FAILED).
	if !errors.Is(err, kerr.TopicAuthorizationFailed) && !errors.Is(err, kerr.ClusterAuthorizationFailed) {
		t.Fatalf("produce without a produce ACL: %v, want TOPIC_ or CLUSTER_AUTHORIZATION_FAILED", err)
	}
	n.allow(t, "produce", "orders")
	producer = n.client(t, m) // a fresh producer: the refused one may hold its failure
	if err := producer.ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: []byte("y")}).FirstErr(); err != nil {
		t.Fatalf("produce with a produce ACL: %v", err)
	}
}

// TestSASLWrongPassword: a wrong password (and an unknown user) is
// SASL_AUTHENTICATION_FAILED for the client, the connection is closed
// after the answer, and the audit log records the failed login.
func TestSASLWrongPassword(t *testing.T) {
	n := startSecureNode(t)
	for _, a := range []scram.Auth{{User: "alice", Pass: "wrong"}, {User: "mallory", Pass: "pw-alice"}} {
		cl := n.client(t, a.AsSha256Mechanism())
		_, err := kmsg.NewPtrMetadataRequest().RequestWith(ctxT(t), cl)
		if !errors.Is(err, kerr.SaslAuthenticationFailed) {
			t.Fatalf("metadata as %s with a wrong password: %v, want SASL_AUTHENTICATION_FAILED", a.User, err)
		}
	}

	// By hand, to see the answer and the close.
	c := n.rawTLS(t)
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.SetVersion(1)
	hs.Mechanism = "SCRAM-SHA-512"
	if resp := roundTrip[*kmsg.SASLHandshakeResponse](t, c, 1, hs); resp.ErrorCode != 0 {
		t.Fatalf("handshake: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	session, first, err := scram.Auth{User: "alice", Pass: "wrong"}.AsSha512Mechanism().Authenticate(ctxT(t), n.a.KafkaAddr())
	if err != nil {
		t.Fatal(err)
	}
	step := kmsg.NewPtrSASLAuthenticateRequest()
	step.SetVersion(1)
	step.SASLAuthBytes = first
	resp := roundTrip[*kmsg.SASLAuthenticateResponse](t, c, 2, step)
	if resp.ErrorCode != 0 {
		t.Fatalf("client-first message: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	if _, final, err := session.Challenge(resp.SASLAuthBytes); err != nil {
		t.Fatal(err)
	} else {
		step.SASLAuthBytes = final
	}
	resp = roundTrip[*kmsg.SASLAuthenticateResponse](t, c, 3, step)
	if resp.ErrorCode != kerr.SaslAuthenticationFailed.Code {
		t.Fatalf("client-final message with a wrong password: error code %d, want SASL_AUTHENTICATION_FAILED", resp.ErrorCode)
	}
	expectClosed(t, c)

	events := audittest.Events(t, filepath.Join(n.dataDir, "audit.log"))
	for _, want := range []string{"login_failed user:alice SCRAM-SHA-256", "login_failed user:mallory SCRAM-SHA-256",
		"login_failed user:alice SCRAM-SHA-512"} {
		if !slices.Contains(events, want) {
			t.Errorf("audit log lacks %q; has:\n%s", want, strings.Join(events, "\n"))
		}
	}
}

// TestSASLRequestBeforeAuthentication: on a listener that requires
// authentication, ApiVersions is answered before it, any other request
// closes the connection unanswered, and so does a plaintext client.
func TestSASLRequestBeforeAuthentication(t *testing.T) {
	n := startSecureNode(t)
	c := n.rawTLS(t)
	av := kmsg.NewPtrApiVersionsRequest()
	if resp := roundTrip[*kmsg.ApiVersionsResponse](t, c, 1, av); resp.ErrorCode != 0 {
		t.Fatalf("ApiVersions before authentication: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	md := kmsg.NewPtrMetadataRequest()
	md.SetVersion(1)
	if _, err := c.Write(frame(3, 1, 2, "raw", md.AppendTo(nil))); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, c)

	plain, err := net.Dial("tcp", n.a.KafkaAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if _, err := plain.Write(apiVersionsFrame(1)); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, plain)
}

// TestKafkaClientCertificate: on the TLS listener a client certificate
// authenticates without SASL (the principal is user:CN, as the gRPC port
// does): the super-user's certificate sees every topic, another's none.
func TestKafkaClientCertificate(t *testing.T) {
	n := startSecureNode(t)
	certClient := func(name string) *kgo.Client {
		files := n.ca.Client(t, name)
		files.CA = n.ca.CertFile
		cl, err := kgo.NewClient(kgo.SeedBrokers(n.a.KafkaAddr()), kgo.DialTLSConfig(tlsStore(t, files).ClientConfig("")),
			kgo.RequestRetries(0))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return cl
	}
	if got := metadataOf(t, certClient("admin"), "orders", "secret"); got["orders"] != 0 || got["secret"] != 0 {
		t.Fatalf("the admin certificate: %v, want both topics", got)
	}
	if got := metadataOf(t, certClient("bob"), "orders", "secret"); got["orders"] != kerr.TopicAuthorizationFailed.Code {
		t.Fatalf("bob's certificate without ACLs: %v, want TOPIC_AUTHORIZATION_FAILED", got)
	}
}
