package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/wait"

	"github.com/stratalog/strata/api/client"
)

// BenchmarkClusterProduce is issue 4's scale figure (test 8): a 3-node
// cluster of strata processes on this machine, replication factor 3, the
// Go client producing 128-byte records asynchronously, to 6 partitions and
// to 100 partitions side by side. Each run creates two new topics, waits
// for their partitions' preferred leaders and produces b.N records to each,
// the order alternating between runs; it reports both rates and their
// ratio (the target: 100 partitions keep at least 80% of the rate of 6).
// sticky sends records without a key (the producer fills one partition's
// batch, then the next); keyed gives them one of 1024 keys, so every
// partition's batch fills at once.
//
//	go test -run '^$' -bench ClusterProduce -benchtime 1000000x -count 5 ./cmd/strata
//
// Run it with a fixed -benchtime (Nx): each run creates topics, and the
// framework's first call (b.N = 1) returns at once, which would throw its
// search for b.N off.
func BenchmarkClusterProduce(b *testing.B) {
	nodes := startCluster(b, 3)
	var addrs []string
	for _, n := range nodes {
		addrs = append(addrs, n.GRPC)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cl, err := client.Dial(ctx, addrs)
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	var runs atomic.Int64
	for _, keyed := range []bool{false, true} {
		name := "sticky"
		if keyed {
			name = "keyed"
		}
		b.Run(name, func(b *testing.B) {
			if b.N == 1 {
				// The framework's first call, before the -benchtime
				// Nx one: nothing to measure.
				return
			}
			run := runs.Add(1)
			parts := []int{6, 100}
			if run%2 == 0 {
				parts = []int{100, 6}
			}
			topics := map[int]string{}
			defer func() {
				// Each partition replica holds preallocated indexes on
				// disk: runs would otherwise pile up gigabytes.
				for _, t := range topics {
					if err := client.NewAdmin(cl).DeleteTopic(ctx, t); err != nil {
						b.Errorf("delete topic %s: %v", t, err)
					}
				}
			}()
			for _, p := range parts {
				topics[p] = fmt.Sprintf("bench-%s-%d-r%d", name, p, run)
				if _, err := client.NewAdmin(cl).CreateTopic(ctx, topics[p], client.TopicConfig{Partitions: int32(p), ReplicationFactor: 3}); err != nil {
					b.Fatal(err)
				}
			}
			waitPreferredLeaders(b, nodes[0], topics[6], topics[100])
			b.SetBytes(2 * 128) // an op is one record to each topic
			b.ResetTimer()
			rates := map[int]float64{}
			for _, p := range parts {
				rates[p] = produceN(ctx, b, cl, topics[p], b.N, keyed)
			}
			b.StopTimer()
			b.ReportMetric(rates[6], "rec/s-6p")
			b.ReportMetric(rates[100], "rec/s-100p")
			b.ReportMetric(rates[100]/rates[6], "100p/6p")
		})
	}
}

// produceN produces n 128-byte records to topic with a new producer and
// returns the rate from the first send to the last acknowledgement.
func produceN(ctx context.Context, b *testing.B, cl *client.Client, topic string, n int, keyed bool) float64 {
	b.Helper()
	p, err := client.NewProducer(cl, client.DefaultProducerConfig())
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	// The producer id is fetched once, outside the measured time.
	if _, err := p.ProducerID(ctx); err != nil {
		b.Fatal(err)
	}
	var keys [][]byte
	if keyed {
		for i := range 1024 {
			keys = append(keys, []byte("key-"+strconv.Itoa(i)))
		}
	}
	value := make([]byte, 128)
	var failed atomic.Int64
	cb := func(_ client.Result, err error) {
		if err != nil {
			failed.Add(1)
		}
	}
	start := time.Now()
	for i := range n {
		r := &client.Record{Topic: topic, Value: value}
		if keyed {
			r.Key = keys[i%len(keys)]
		}
		p.ProduceAsync(r, cb)
	}
	if err := p.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	el := time.Since(start)
	if f := failed.Load(); f > 0 {
		b.Fatalf("%s: %d records failed", topic, f)
	}
	return float64(n) / el.Seconds()
}

// waitPreferredLeaders waits until every data group is led by its
// preferred leader and every partition of the topics has a leader, so that
// no leadership transfer lands in the measured time.
func waitPreferredLeaders(tb testing.TB, n *clusterNode, topics ...string) {
	tb.Helper()
	wait.NoError(tb, 60*time.Second, "preferred leaders", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r := n.cli(ctx, nil, "cluster", "status", "--output", "json")
		if r.Code != 0 {
			return fmt.Errorf("cluster status: %s", r.Stderr)
		}
		var st struct {
			Groups []struct {
				ID        uint32 `json:"id"`
				Leader    string `json:"leader"`
				Preferred string `json:"preferred"`
			} `json:"groups"`
		}
		if err := json.Unmarshal([]byte(r.Stdout), &st); err != nil {
			return err
		}
		for _, g := range st.Groups {
			if g.Leader != g.Preferred {
				return fmt.Errorf("group %d led by %q, prefers %q", g.ID, g.Leader, g.Preferred)
			}
		}
		for _, t := range topics {
			d, err := describeTopic(n.node, t)
			if err != nil {
				return err
			}
			if c := leaderCounts(d); c[""] > 0 {
				return fmt.Errorf("%s: %d partitions without a leader", t, c[""])
			}
		}
		return nil
	})
}
