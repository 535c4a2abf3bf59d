package console_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/wait"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/stratalog/strata/api/client"
	"github.com/stratalog/strata/api/record"
	stratav1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/internal/agent"
	"github.com/stratalog/strata/internal/auth"
	"github.com/stratalog/strata/internal/tlsutil"
	"github.com/stratalog/strata/internal/tlsutil/tlstest"
)

// node is a real single-node agent with its console, and an HTTP client
// for it.
type node struct {
	t    *testing.T
	a    *agent.Agent
	base string // http(s)://host:port
	hc   *http.Client
	grpc stratav1.StrataClient
	ca   *tlstest.CA
}

func baseConfig(t *testing.T) agent.Config {
	cfg := agent.DefaultConfig()
	cfg.DataDir, cfg.NodeID, cfg.MetadataVoters = t.TempDir(), "n1", 1
	cfg.GRPCAddr, cfg.HTTPAddr, cfg.ClusterAddr, cfg.GossipAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", ""
	cfg.KafkaAddr = "127.0.0.1:0"
	cfg.MinFreeDiskBytes = -1
	return cfg
}

// startNode starts a node without authentication.
func startNode(t *testing.T) *node {
	t.Helper()
	a, err := agent.New(context.Background(), baseConfig(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	conn, err := grpc.NewClient(a.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &node{t: t, a: a, base: "http://" + a.HTTPAddr(), hc: newClient(nil), grpc: stratav1.NewStrataClient(conn)}
}

// startSecureNode starts a node with TLS, --auth and the super-user
// user:admin; grpc is the admin's client (certificate).
func startSecureNode(t *testing.T) *node {
	t.Helper()
	ca := tlstest.NewCA(t)
	files := ca.Node(t, "n1")
	cfg := baseConfig(t)
	cfg.TLSCert, cfg.TLSKey, cfg.TLSCA = files.Cert, files.Key, files.CA
	cfg.Auth, cfg.SuperUsers = true, []string{"user:admin"}
	a, err := agent.New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	n := &node{t: t, a: a, base: "https://" + a.HTTPAddr(), ca: ca}
	n.hc = newClient(n.tlsConfig(tlsutil.Files{}))
	adminFiles := ca.Client(t, "admin")
	st, err := tlsutil.Open(adminFiles, nil)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(a.GRPCAddr(), client.SecurityDialOptions(st.ClientConfig(""), "", "")...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	n.grpc = stratav1.NewStrataClient(conn)
	return n
}

// tlsConfig trusts the node's CA, with the client certificate of files
// when it has one.
func (n *node) tlsConfig(files tlsutil.Files) *tls.Config {
	n.t.Helper()
	files.CA = n.ca.CertFile
	st, err := tlsutil.Open(files, nil)
	if err != nil {
		n.t.Fatal(err)
	}
	return st.ClientConfig("")
}

// newClient is an HTTP client that keeps cookies and does not follow
// redirects (the tests look at them).
func newClient(tc *tls.Config) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 60 * time.Second,
		Transport:     &http.Transport{TLSClientConfig: tc},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// resp is an answer read whole.
type resp struct {
	code   int
	header http.Header
	body   string
}

func (r resp) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(r.body), v); err != nil {
		t.Fatalf("answer %d %q: %v", r.code, r.body, err)
	}
}

// do sends a request; body, when not nil, goes as JSON.
func (n *node) do(hc *http.Client, method, path string, body any, hdr ...string) resp {
	n.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			n.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, n.base+path, rd)
	if err != nil {
		n.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := hc.Do(req)
	if err != nil {
		n.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{code: res.StatusCode, header: res.Header, body: string(b)}
}

// get is a GET with the node's client.
func (n *node) get(path string) resp { n.t.Helper(); return n.do(n.hc, "GET", path, nil) }

// post is a same-origin JSON POST with the node's client.
func (n *node) post(path string, body any) resp {
	n.t.Helper()
	return n.do(n.hc, "POST", path, body)
}

// mustOK fails unless r is 200, and decodes it into v (when not nil).
func mustOK(t *testing.T, what string, r resp, v any) {
	t.Helper()
	if r.code != http.StatusOK {
		t.Fatalf("%s: %d %s", what, r.code, r.body)
	}
	if v != nil {
		r.json(t, v)
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// produce writes records (key:value strings; no colon: no key) to one
// partition in one batch.
func (n *node) produce(topic string, partition int32, kvs ...string) {
	n.t.Helper()
	var recs []record.Record
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, ":")
		r := record.Record{Value: []byte(v)}
		if ok {
			r.Key = []byte(k)
		} else {
			r.Value = []byte(kv)
		}
		recs = append(recs, r)
	}
	b, err := record.AppendBatch(nil, recs, record.BatchOptions{})
	if err != nil {
		n.t.Fatal(err)
	}
	if _, err := n.grpc.Produce(ctxT(n.t), &stratav1.ProduceRequest{Topic: topic, Partition: partition, Batch: b}); err != nil {
		n.t.Fatal(err)
	}
}

// createTopic makes a topic through gRPC.
func (n *node) createTopic(name string, partitions int32) {
	n.t.Helper()
	if _, err := n.grpc.CreateTopic(ctxT(n.t), &stratav1.CreateTopicRequest{Name: name,
		Config: &stratav1.TopicConfig{Partitions: partitions}}); err != nil {
		n.t.Fatal(err)
	}
}

// putUser creates a user with a password through the admin's client.
func (n *node) putUser(name, pass string) { n.t.Helper(); n.setUser(name, pass, false) }

// putUserUpdate changes a user's password.
func (n *node) putUserUpdate(name, pass string) { n.t.Helper(); n.setUser(name, pass, true) }

func (n *node) setUser(name, pass string, update bool) {
	n.t.Helper()
	c, err := auth.NewCredential(auth.ScramSHA256, pass, auth.MinIterations)
	if err != nil {
		n.t.Fatal(err)
	}
	if _, err := n.grpc.PutUser(ctxT(n.t), &stratav1.PutUserRequest{Name: name, Update: update, Credentials: []*stratav1.ScramCredential{{
		Mechanism: string(c.Mechanism), Salt: c.Salt, Iterations: int32(c.Iterations), StoredKey: c.StoredKey, ServerKey: c.ServerKey}}}); err != nil {
		n.t.Fatal(err)
	}
}

// allow gives principal op on a resource.
func (n *node) allow(principal, op, resType, name string) {
	n.t.Helper()
	if _, err := n.grpc.AddACL(ctxT(n.t), &stratav1.AddACLRequest{Acl: &stratav1.ACL{Principal: principal, Permission: "allow",
		Operation: op, ResourceType: resType, Name: name, Pattern: "literal"}}); err != nil {
		n.t.Fatal(err)
	}
}

// login logs hc in with a password through the login form.
func (n *node) login(hc *http.Client, user, pass string) resp {
	n.t.Helper()
	form := url.Values{"user": {user}, "password": {pass}, "next": {"/console/topics"}}
	req, _ := http.NewRequest("POST", n.base+"/console/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := hc.Do(req)
	if err != nil {
		n.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{code: res.StatusCode, header: res.Header, body: string(b)}
}

// waitFor retries fn until it returns "" (else: why not yet) or the
// deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, fn func() string) {
	t.Helper()
	wait.NoError(t, d, what, func() error {
		if msg := fn(); msg != "" {
			return errors.New(msg)
		}
		return nil
	})
}
