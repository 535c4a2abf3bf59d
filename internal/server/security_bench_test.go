package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/tap"

	stratav1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/internal/auth"
	"github.com/stratalog/strata/internal/tlsutil/tlstest"
)

// rules is a UserStore with fixed rules, for the benchmark.
type rules struct{ acls []auth.ACL }

func (r rules) UserCredential(string, auth.Mechanism) (auth.Credential, bool) {
	return auth.Credential{}, false
}
func (r rules) ACLs() ([]auth.ACL, uint64) { return r.acls, 1 }
func (r rules) SecurityVersion() uint64    { return 1 }
func (r rules) IsNode(string) bool         { return false }
func (r rules) TopicNames() []string       { return nil }

// BenchmarkSecurityPerRequest is what security adds to one produce
// request: the tap handle (identify the mTLS principal) and the
// interceptor's cached authorization, with 1,000 rules in force. Compare
// it with the time of a produce request (BenchmarkProduce* in api/client,
// tens of microseconds at best): make bench-security prints both.
func BenchmarkSecurityPerRequest(b *testing.B) {
	ca := tlstest.NewCA(b)
	files := ca.Client(b, "alice")
	pemBytes, err := os.ReadFile(files.Cert)
	if err != nil {
		b.Fatal(err)
	}
	blk, _ := pem.Decode(pemBytes)
	leaf, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		b.Fatal(err)
	}
	var acls []auth.ACL
	for i := range 999 {
		acls = append(acls, auth.ACL{Principal: "user:u" + string(rune('a'+i%26)), Permission: auth.PermissionAllow,
			Operation: auth.OpProduce, Resource: auth.ResourceTopic, Name: "t" + string(rune('a'+i%26)), Pattern: auth.PatternPrefix})
	}
	acls = append(acls, auth.ACL{Principal: "user:alice", Permission: auth.PermissionAllow, Operation: auth.OpProduce,
		Resource: auth.ResourceTopic, Name: "orders", Pattern: auth.PatternLiteral})
	sec := &Security{Required: true, Authorizer: auth.NewAuthorizer(nil), Users: rules{acls: acls}}
	p := &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5000},
		AuthInfo: credentials.TLSInfo{State: tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{leaf}}}}}
	ctx := peer.NewContext(context.Background(), p)
	info := &tap.Info{FullMethodName: stratav1.Strata_Produce_FullMethodName, Header: metadata.MD{}}
	req := &stratav1.ProduceRequest{Topic: "orders"}
	uinfo := &grpc.UnaryServerInfo{FullMethod: stratav1.Strata_Produce_FullMethodName}
	ok := func(context.Context, any) (any, error) { return nil, nil }
	b.ReportAllocs()
	for b.Loop() {
		cctx, err := sec.Tap(ctx, info)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := sec.UnaryInterceptor(cctx, req, uinfo, ok); err != nil {
			b.Fatal(err)
		}
	}
}
