package agent

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/stratalog/strata/api/client"
	stratav1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/internal/tlsutil"
)

// BenchmarkProduceSecurity produces 128-byte records through a real node
// with TLS, once with authentication and ACLs off and once on (a client
// certificate, an allow rule among others), side by side in one run:
//
//	go test -run '^$' -bench ProduceSecurity -count 6 ./internal/agent | benchstat -col /auth -
//
// async is the producer's batching and pipelining (per-request costs are
// spread over a batch); sync waits for each record, so every record pays
// a whole request's security cost.
func BenchmarkProduceSecurity(b *testing.B) {
	for _, mode := range []string{"off", "on"} {
		b.Run("auth="+mode, func(b *testing.B) {
			a, ca := secureNode(b, func(c *Config) { c.Auth = mode == "on" })
			admin := ca.Client(b, "admin")
			alice := ca.Client(b, "alice")
			ctx := context.Background()
			adm := dialClient(b, a, ca.CertFile, admin)
			if _, err := client.NewAdmin(adm).CreateTopic(ctx, "bench", client.TopicConfig{Partitions: 1}); err != nil {
				b.Fatal(err)
			}
			if mode == "on" {
				raw := dialAs(b, a, ca.CertFile, admin, "", "")
				for i, name := range []string{"other-a", "other-b", "bench"} {
					_, err := raw.AddACL(ctx, &stratav1.AddACLRequest{Acl: &stratav1.ACL{Principal: "user:alice", Permission: "allow",
						Operation: []string{"consume", "produce", "produce"}[i], ResourceType: "topic", Name: name, Pattern: "literal"}})
					if err != nil {
						b.Fatal(err)
					}
				}
			}
			c := dialClient(b, a, ca.CertFile, alice)
			for _, sync := range []bool{false, true} {
				name := "async"
				if sync {
					name = "sync"
				}
				b.Run(name, func(b *testing.B) { benchProduce(b, c, sync) })
			}
		})
	}
}

func benchProduce(b *testing.B, c *client.Client, sync bool) {
	cfg := client.DefaultProducerConfig()
	if sync {
		cfg.Linger = 0
	}
	p, err := client.NewProducer(c, cfg)
	if err != nil {
		b.Fatal(err)
	}
	value := make([]byte, 128)
	var failed atomic.Int64
	b.SetBytes(128)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		r := &client.Record{Topic: "bench", Value: value}
		if sync {
			if _, err := p.Produce(context.Background(), r); err != nil {
				b.Fatal(err)
			}
			continue
		}
		p.ProduceAsync(r, func(_ client.Result, err error) {
			if err != nil {
				failed.Add(1)
			}
		})
	}
	if err := p.Close(); err != nil {
		b.Fatal(err)
	}
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d records not acknowledged", f)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

func dialClient(b *testing.B, a *Agent, caFile string, files tlsutil.Files) *client.Client {
	b.Helper()
	files.CA = caFile
	st, err := tlsutil.Open(files, nil)
	if err != nil {
		b.Fatal(err)
	}
	c, err := client.Dial(context.Background(), []string{a.GRPCAddr()}, client.WithTLS(st.ClientConfig("")))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}
