package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/auth/audittest"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/stratalog/strata/api/client"
	"github.com/stratalog/strata/api/record"
	stratav1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/internal/auth"
	"github.com/stratalog/strata/internal/tlsutil"
	"github.com/stratalog/strata/internal/tlsutil/tlstest"
)

// secureNode starts a single node with TLS, auth and the super-user
// user:admin, and returns it with its CA.
func secureNode(t testing.TB, mutate func(*Config)) (*Agent, *tlstest.CA) {
	t.Helper()
	ca := tlstest.NewCA(t)
	files := ca.Node(t, "n1")
	cfg := DefaultConfig()
	cfg.DataDir, cfg.NodeID, cfg.MetadataVoters = t.TempDir(), "n1", 1
	cfg.GRPCAddr, cfg.HTTPAddr, cfg.ClusterAddr, cfg.GossipAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", ""
	cfg.KafkaAddr = "127.0.0.1:0"
	cfg.TLSCert, cfg.TLSKey, cfg.TLSCA = files.Cert, files.Key, files.CA
	cfg.Auth, cfg.SuperUsers = true, []string{"user:admin"}
	cfg.MinFreeDiskBytes = -1
	if mutate != nil {
		mutate(&cfg)
	}
	a, err := New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a, ca
}

// dialAs connects to a's gRPC port over TLS, as the client certificate of
// files (none when files.Cert is empty) and, when user is set, with a
// password.
func dialAs(t testing.TB, a *Agent, caFile string, files tlsutil.Files, user, pass string) stratav1.StrataClient {
	t.Helper()
	files.CA = caFile
	st, err := tlsutil.Open(files, nil)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(a.GRPCAddr(), client.SecurityDialOptions(st.ClientConfig(""), user, pass)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return stratav1.NewStrataClient(conn)
}

func wantCode(t *testing.T, what string, err error, code codes.Code) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("%s: %v, want %s", what, err, code)
	}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// putUser creates user with password through admin.
func putUser(t *testing.T, admin stratav1.StrataClient, name, pass string) {
	t.Helper()
	c, err := auth.NewCredential(auth.ScramSHA256, pass, auth.MinIterations)
	if err != nil {
		t.Fatal(err)
	}
	_, err = admin.PutUser(ctxT(t), &stratav1.PutUserRequest{Name: name, Credentials: []*stratav1.ScramCredential{{
		Mechanism: string(c.Mechanism), Salt: c.Salt, Iterations: int32(c.Iterations), StoredKey: c.StoredKey, ServerKey: c.ServerKey}}})
	if err != nil {
		t.Fatalf("create user %s: %v", name, err)
	}
}

func batchOf(t *testing.T, value string) []byte {
	t.Helper()
	b, err := record.AppendBatch(nil, []record.Record{{Value: []byte(value)}}, record.BatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func highWatermark(t *testing.T, admin stratav1.StrataClient, topic string) int64 {
	t.Helper()
	d, err := admin.DescribeTopic(ctxT(t), &stratav1.DescribeTopicRequest{Name: topic})
	if err != nil {
		t.Fatal(err)
	}
	return d.Topic.Partitions[0].HighWatermark
}

// TestSecurityAuthentication: with auth on, a call without credentials or
// with a wrong password is Unauthenticated (health checks excepted); a
// client certificate and a password both authenticate.
func TestSecurityAuthentication(t *testing.T) {
	a, ca := secureNode(t, nil)
	anon := dialAs(t, a, ca.CertFile, tlsutil.Files{}, "", "")
	_, err := anon.Metadata(ctxT(t), &stratav1.MetadataRequest{})
	wantCode(t, "metadata without credentials", err, codes.Unauthenticated)

	st, _ := tlsutil.Open(tlsutil.Files{CA: ca.CertFile}, nil)
	conn, err := grpc.NewClient(a.GRPCAddr(), grpc.WithTransportCredentials(credentials.NewTLS(st.ClientConfig(""))))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := healthpb.NewHealthClient(conn).Check(ctxT(t), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("health check without credentials: %v", err)
	}

	admin := dialAs(t, a, ca.CertFile, ca.Client(t, "admin"), "", "")
	who, err := admin.WhoAmI(ctxT(t), &stratav1.WhoAmIRequest{})
	if err != nil || who.Principal != "user:admin" || who.Mechanism != "mtls" {
		t.Fatalf("whoami with the admin certificate: %v %v", who, err)
	}
	putUser(t, admin, "alice", "s3cret-pw")
	bad := dialAs(t, a, ca.CertFile, tlsutil.Files{}, "alice", "wrong")
	_, err = bad.WhoAmI(ctxT(t), &stratav1.WhoAmIRequest{})
	wantCode(t, "wrong password", err, codes.Unauthenticated)
	nobody := dialAs(t, a, ca.CertFile, tlsutil.Files{}, "mallory", "s3cret-pw")
	_, err = nobody.WhoAmI(ctxT(t), &stratav1.WhoAmIRequest{})
	wantCode(t, "unknown user", err, codes.Unauthenticated)
	alice := dialAs(t, a, ca.CertFile, tlsutil.Files{}, "alice", "s3cret-pw")
	who, err = alice.WhoAmI(ctxT(t), &stratav1.WhoAmIRequest{})
	if err != nil || who.Principal != "user:alice" || who.Mechanism != "password" {
		t.Fatalf("whoami as alice: %v %v", who, err)
	}
	// A changed password takes effect at once (the verdict cache follows
	// the security version).
	c, _ := auth.NewCredential(auth.ScramSHA512, "new-pw", auth.MinIterations)
	if _, err := admin.PutUser(ctxT(t), &stratav1.PutUserRequest{Name: "alice", Update: true, Credentials: []*stratav1.ScramCredential{{
		Mechanism: string(c.Mechanism), Salt: c.Salt, Iterations: int32(c.Iterations), StoredKey: c.StoredKey, ServerKey: c.ServerKey}}}); err != nil {
		t.Fatal(err)
	}
	_, err = alice.WhoAmI(ctxT(t), &stratav1.WhoAmIRequest{})
	wantCode(t, "old password after passwd", err, codes.Unauthenticated)
}

// TestSecurityAuthorization: a principal without the ACL gets
// PermissionDenied and the log is unchanged; describes it may not make
// answer exactly as for a topic that does not exist; lists are filtered;
// an allow lets it through and a deny wins over it. The audit log records
// the failed login, the denials and the admin changes.
func TestSecurityAuthorization(t *testing.T) {
	a, ca := secureNode(t, nil)
	admin := dialAs(t, a, ca.CertFile, ca.Client(t, "admin"), "", "")
	for _, name := range []string{"orders", "secret"} {
		if _, err := admin.CreateTopic(ctxT(t), &stratav1.CreateTopicRequest{Name: name}); err != nil {
			t.Fatal(err)
		}
	}
	putUser(t, admin, "alice", "pw-alice")
	alice := dialAs(t, a, ca.CertFile, tlsutil.Files{}, "alice", "pw-alice")

	_, err := alice.Produce(ctxT(t), &stratav1.ProduceRequest{Topic: "orders", Batch: batchOf(t, "x")})
	wantCode(t, "produce without an ACL", err, codes.PermissionDenied)
	if hw := highWatermark(t, admin, "orders"); hw != 0 {
		t.Fatalf("a refused produce left the log at %d, want 0", hw)
	}
	_, errSecret := alice.DescribeTopic(ctxT(t), &stratav1.DescribeTopicRequest{Name: "secret"})
	_, errNone := alice.DescribeTopic(ctxT(t), &stratav1.DescribeTopicRequest{Name: "nosuch"})
	if status.Code(errSecret) != codes.PermissionDenied || status.Convert(errSecret).Message() != strings.ReplaceAll(status.Convert(errNone).Message(), "nosuch", "secret") {
		t.Fatalf("describe of a topic alice may not see: %v; of a missing one: %v (want the same answer)", errSecret, errNone)
	}
	lt, err := alice.ListTopics(ctxT(t), &stratav1.ListTopicsRequest{})
	if err != nil || len(lt.Topics) != 0 {
		t.Fatalf("alice lists %v (%v), want nothing", lt, err)
	}

	addACL := func(perm, op, pattern, name string) {
		t.Helper()
		if _, err := admin.AddACL(ctxT(t), &stratav1.AddACLRequest{Acl: &stratav1.ACL{Principal: "user:alice", Permission: perm,
			Operation: op, ResourceType: "topic", Name: name, Pattern: pattern}}); err != nil {
			t.Fatal(err)
		}
	}
	addACL("allow", "produce", "literal", "orders")
	if _, err := alice.Produce(ctxT(t), &stratav1.ProduceRequest{Topic: "orders", Batch: batchOf(t, "y")}); err != nil {
		t.Fatalf("produce with an allow: %v", err)
	}
	lt, err = alice.ListTopics(ctxT(t), &stratav1.ListTopicsRequest{})
	if err != nil || len(lt.Topics) != 1 || lt.Topics[0].Name != "orders" {
		t.Fatalf("alice lists %v (%v), want orders only (produce implies describe)", lt, err)
	}
	_, err = alice.DeleteTopic(ctxT(t), &stratav1.DeleteTopicRequest{Name: "orders"})
	wantCode(t, "delete with produce only", err, codes.PermissionDenied)
	addACL("deny", "all", "prefix", "ord")
	_, err = alice.Produce(ctxT(t), &stratav1.ProduceRequest{Topic: "orders", Batch: batchOf(t, "z")})
	wantCode(t, "produce with an allow and a deny", err, codes.PermissionDenied)
	if hw := highWatermark(t, admin, "orders"); hw != 1 {
		t.Fatalf("log at %d, want 1 (only the allowed produce)", hw)
	}
	_, err = alice.AddACL(ctxT(t), &stratav1.AddACLRequest{Acl: &stratav1.ACL{Principal: "user:alice", Permission: "allow",
		Operation: "all", ResourceType: "cluster", Name: "cluster", Pattern: "literal"}})
	wantCode(t, "alice granting herself admin", err, codes.PermissionDenied)
	_, err = dialAs(t, a, ca.CertFile, tlsutil.Files{}, "alice", "nope").ListTopics(ctxT(t), &stratav1.ListTopicsRequest{})
	wantCode(t, "bad password", err, codes.Unauthenticated)

	events := audittest.Events(t, filepath.Join(a.cfg.DataDir, "audit.log"))
	for _, want := range []string{"login_failed user:alice", "denied user:alice produce", "denied user:alice admin",
		"admin user:admin create_user", "admin user:admin add_acl", "admin user:admin create_topic"} {
		if !slices.ContainsFunc(events, func(e string) bool { return strings.HasPrefix(e, want) }) {
			t.Errorf("audit log lacks %q; has:\n%s", want, strings.Join(events, "\n"))
		}
	}
}

// TestSecurityPlainPasswordRefused: a password sent without TLS is refused
// before any request body is read, even when the node does not require
// authentication.
func TestSecurityPlainPasswordRefused(t *testing.T) {
	a, _ := secureNode(t, func(c *Config) { c.TLSCert, c.TLSKey, c.TLSCA, c.Auth = "", "", "", false })
	conn, err := grpc.NewClient(a.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := metadata.AppendToOutgoingContext(ctxT(t), "authorization", "Basic YWxpY2U6cHc=")
	_, err = stratav1.NewStrataClient(conn).ListTopics(ctx, &stratav1.ListTopicsRequest{})
	wantCode(t, "password over plaintext", err, codes.Unauthenticated)
	if !strings.Contains(err.Error(), "needs TLS") {
		t.Fatalf("error %v does not say why", err)
	}
}

// TestSecurityHandshakes: TLS 1.1 is refused, and a connection that never
// finishes its handshake is closed after the handshake timeout, on the
// gRPC and HTTP ports.
func TestSecurityHandshakes(t *testing.T) {
	a, ca := secureNode(t, func(c *Config) { c.HandshakeTimeout = 300 * time.Millisecond })
	st, _ := tlsutil.Open(tlsutil.Files{CA: ca.CertFile}, nil)
	for _, addr := range []string{a.GRPCAddr(), a.HTTPAddr()} {
		old := st.ClientConfig("")
		old.MinVersion, old.MaxVersion = tls.VersionTLS11, tls.VersionTLS11
		if c, err := tls.Dial("tcp", addr, old); err == nil || !strings.Contains(err.Error(), "protocol version") {
			if c != nil {
				c.Close()
			}
			t.Fatalf("%s: a TLS 1.1 handshake: %v, want a protocol version alert", addr, err)
		}
		modern := st.ClientConfig("")
		modern.NextProtos = []string{"h2"}
		c, err := tls.Dial("tcp", addr, modern)
		if err != nil {
			t.Fatalf("%s: a TLS 1.2+ handshake failed: %v", addr, err)
		}
		c.Close()

		raw, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		raw.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = io.ReadAll(raw) // sends nothing: a stalled handshake
		raw.Close()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("%s: a stalled handshake was still open after 5s", addr)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("%s: a stalled handshake was closed after %v, want about 300ms", addr, d)
		}
	}
}

// TestSecurityCertRotation: new certificate files are served to new
// connections without a restart.
func TestSecurityCertRotation(t *testing.T) {
	old := tlsutil.ReloadCheckInterval
	tlsutil.ReloadCheckInterval = 20 * time.Millisecond
	t.Cleanup(func() { tlsutil.ReloadCheckInterval = old })
	a, ca := secureNode(t, nil)
	st, _ := tlsutil.Open(tlsutil.Files{CA: ca.CertFile}, nil)
	serial := func() string {
		c, err := tls.Dial("tcp", a.GRPCAddr(), st.ClientConfig(""))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	first := serial()
	fresh := ca.Node(t, "n1")
	for _, p := range [][2]string{{fresh.Key, a.cfg.TLSKey}, {fresh.Cert, a.cfg.TLSCert}} {
		b, err := os.ReadFile(p[0])
		if err != nil {
			t.Fatal(err)
		}
		tmp := p[1] + ".tmp"
		if err := os.WriteFile(tmp, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, p[1]); err != nil {
			t.Fatal(err)
		}
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	timeout := time.After(10 * time.Second)
	for serial() == first {
		select {
		case <-tick.C:
		case <-timeout:
			t.Fatal("the rotated certificate was not served within 10s")
		}
	}
	admin := dialAs(t, a, ca.CertFile, ca.Client(t, "admin"), "", "")
	if _, err := admin.WhoAmI(ctxT(t), &stratav1.WhoAmIRequest{}); err != nil {
		t.Fatalf("a call after the rotation: %v", err)
	}
}

// TestClusterPartitionCap: topic creations stop at the cluster-wide cap,
// with ResourceExhausted and nothing created.
func TestClusterPartitionCap(t *testing.T) {
	a, ca := secureNode(t, func(c *Config) { c.MaxClusterPartitions = 5 })
	admin := dialAs(t, a, ca.CertFile, ca.Client(t, "admin"), "", "")
	if _, err := admin.CreateTopic(ctxT(t), &stratav1.CreateTopicRequest{Name: "a", Config: &stratav1.TopicConfig{Partitions: 4}}); err != nil {
		t.Fatal(err)
	}
	_, err := admin.CreateTopic(ctxT(t), &stratav1.CreateTopicRequest{Name: "b", Config: &stratav1.TopicConfig{Partitions: 2}})
	wantCode(t, "a topic past the cap", err, codes.ResourceExhausted)
	_, err = admin.DescribeTopic(ctxT(t), &stratav1.DescribeTopicRequest{Name: "b"})
	wantCode(t, "the refused topic", err, codes.NotFound)
}

// TestSecurityProduceStreamDenied: the Go client's pipelined produce
// (ProduceStream) is checked message by message: without an ACL every
// record fails with ErrPermissionDenied, promptly and without retries, and
// nothing is written.
func TestSecurityProduceStreamDenied(t *testing.T) {
	a, ca := secureNode(t, nil)
	admin := dialAs(t, a, ca.CertFile, ca.Client(t, "admin"), "", "")
	if _, err := admin.CreateTopic(ctxT(t), &stratav1.CreateTopicRequest{Name: "orders"}); err != nil {
		t.Fatal(err)
	}
	files := ca.Client(t, "bob")
	files.CA = ca.CertFile
	st, err := tlsutil.Open(files, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(ctxT(t), []string{a.GRPCAddr()}, client.WithTLS(st.ClientConfig("")))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p, err := client.NewProducer(c, client.DefaultProducerConfig())
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 10)
	for i := range 10 {
		p.ProduceAsync(&client.Record{Topic: "orders", Value: []byte{byte(i)}}, func(_ client.Result, err error) { errs <- err })
	}
	for range 10 {
		select {
		case err := <-errs:
			if !errors.Is(err, client.ErrPermissionDenied) {
				t.Fatalf("record produced without an ACL: %v, want ErrPermissionDenied", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("a refused record got no answer within 20s")
		}
	}
	p.Close()
	if hw := highWatermark(t, admin, "orders"); hw != 0 {
		t.Fatalf("the log holds %d records after refused produces, want 0", hw)
	}
}

// TestSecurityHoles: the checks a review asked for. A produce stream is
// checked message by message (an allowed topic, then a denied one); a
// queue group cannot name a dead-letter topic its creator may not write;
// InitProducer needs the right to produce somewhere; a node certificate of
// a node that is not in the cluster gives no rights.
func TestSecurityHoles(t *testing.T) {
	a, ca := secureNode(t, nil)
	admin := dialAs(t, a, ca.CertFile, ca.Client(t, "admin"), "", "")
	for _, name := range []string{"orders", "secret", "mine", "payments"} {
		if _, err := admin.CreateTopic(ctxT(t), &stratav1.CreateTopicRequest{Name: name}); err != nil {
			t.Fatal(err)
		}
	}
	putUser(t, admin, "alice", "pw")
	alice := dialAs(t, a, ca.CertFile, tlsutil.Files{}, "alice", "pw")
	_, err := alice.InitProducer(ctxT(t), &stratav1.InitProducerRequest{})
	wantCode(t, "InitProducer without any produce right", err, codes.PermissionDenied)
	allow := func(op, res, name string) {
		t.Helper()
		if _, err := admin.AddACL(ctxT(t), &stratav1.AddACLRequest{Acl: &stratav1.ACL{Principal: "user:alice", Permission: "allow",
			Operation: op, ResourceType: res, Name: name, Pattern: "literal"}}); err != nil {
			t.Fatal(err)
		}
	}
	allow("produce", "topic", "orders")
	if _, err := alice.InitProducer(ctxT(t), &stratav1.InitProducerRequest{}); err != nil {
		t.Fatalf("InitProducer with produce on orders: %v", err)
	}

	stream, err := alice.ProduceStream(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&stratav1.ProduceRequest{Topic: "orders", Batch: batchOf(t, "ok"), CorrelationId: 1}); err != nil {
		t.Fatal(err)
	}
	if r, err := stream.Recv(); err != nil || r.ErrorCode != 0 {
		t.Fatalf("allowed message on the stream: %v %v", r, err)
	}
	_ = stream.Send(&stratav1.ProduceRequest{Topic: "secret", Batch: batchOf(t, "no"), CorrelationId: 2})
	_, err = stream.Recv()
	wantCode(t, "denied message on the same stream", err, codes.PermissionDenied)
	if hw := highWatermark(t, admin, "secret"); hw != 0 {
		t.Fatalf("secret holds %d records after a denied stream message", hw)
	}

	allow("consume", "topic", "mine")
	allow("create", "queue", "mine/q")
	_, err = alice.CreateQueueGroup(ctxT(t), &stratav1.CreateQueueGroupRequest{Topic: "mine", Group: "q",
		Settings: &stratav1.QueueSettings{DeadLetterTopic: "payments"}})
	wantCode(t, "a queue group dead-lettering into payments", err, codes.PermissionDenied)

	ghost := dialAs(t, a, ca.CertFile, ca.Node(t, "ghost"), "", "")
	_, err = ghost.ListUsers(ctxT(t), &stratav1.ListUsersRequest{})
	wantCode(t, "a node certificate of no cluster node", err, codes.PermissionDenied)
	self := dialAs(t, a, ca.CertFile, tlsutil.Files{Cert: a.cfg.TLSCert, Key: a.cfg.TLSKey}, "", "")
	if _, err := self.ListUsers(ctxT(t), &stratav1.ListUsersRequest{}); err != nil {
		t.Fatalf("the node's own certificate: %v", err)
	}
}

// TestSecurityHTTP: with auth on, /metrics needs a client certificate
// allowed to describe the cluster; /healthz stays open for probes.
func TestSecurityHTTP(t *testing.T) {
	a, ca := secureNode(t, nil)
	get := func(files tlsutil.Files, path string) int {
		t.Helper()
		files.CA = ca.CertFile
		st, err := tlsutil.Open(files, nil)
		if err != nil {
			t.Fatal(err)
		}
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: st.ClientConfig("")}, Timeout: 10 * time.Second}
		resp, err := hc.Get("https://" + a.HTTPAddr() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := get(tlsutil.Files{}, "/metrics"); c != http.StatusForbidden {
		t.Fatalf("/metrics without a certificate: %d, want 403", c)
	}
	if c := get(ca.Client(t, "admin"), "/metrics"); c != http.StatusOK {
		t.Fatalf("/metrics as admin: %d, want 200", c)
	}
	if c := get(tlsutil.Files{}, "/healthz"); c != http.StatusOK {
		t.Fatalf("/healthz without a certificate: %d, want 200", c)
	}
}
