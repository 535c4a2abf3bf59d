package client_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stratalog/strata/api/client"
	"github.com/stratalog/strata/internal/agent"
)

// BenchmarkQueueGRPC measures acked records per second through a queue
// group over gRPC with the Go client: 128-byte records, workers receiving
// batches of 4000 and acking each batch. b.N is the number of records.
// nodes=1 is an in-process single node; nodes=3 an in-process cluster of
// three nodes (one process, the same 2 cores) with replication factor 3,
// so every delivery count and ack is committed on two of three replicas.
//
//	go test -run '^$' -bench QueueGRPC -benchtime 200000x -count 5 ./api/client
func BenchmarkQueueGRPC(b *testing.B) {
	for _, nodes := range []int{1, 3} {
		for _, workers := range []int{1, 4} {
			b.Run(fmt.Sprintf("nodes=%d/workers=%d", nodes, workers), func(b *testing.B) { benchQueueGRPC(b, nodes, workers) })
		}
	}
}

const benchBatch = 4000

// startAgents starts n in-process nodes, the first bootstrapping and the
// others joining it, and returns their gRPC addresses.
func startAgents(b *testing.B, n int) []string {
	ctx := context.Background()
	var addrs, join []string
	for i := range n {
		cfg := agent.DefaultConfig()
		cfg.DataDir, cfg.NodeID, cfg.LogLevel = b.TempDir(), fmt.Sprintf("n%d", i+1), "error"
		cfg.GRPCAddr, cfg.HTTPAddr, cfg.ClusterAddr, cfg.GossipAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
		cfg.KafkaAddr = ""
		cfg.Join = join
		a, err := agent.New(ctx, cfg, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { a.Close() })
		if join == nil {
			join = []string{a.GossipAddr()}
		}
		addrs = append(addrs, a.GRPCAddr())
	}
	return addrs
}

// waitLeadersSpread waits until every node leads as many partitions of
// topic as the others: the preferred leaders have taken over (5 s after a
// cluster forms), so no leadership moves while a benchmark measures.
func waitLeadersSpread(b *testing.B, ad *client.Admin, topic string, nodes int) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		ti, err := ad.DescribeTopic(context.Background(), topic)
		leads := map[string]int{}
		for _, p := range ti.Partitions {
			leads[p.LeaderID]++
		}
		spread := err == nil && len(leads) == nodes && leads[""] == 0
		for _, n := range leads {
			spread = spread && n == len(ti.Partitions)/nodes
		}
		if spread {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("leaders of %s not spread over %d nodes in 30 s: %v %v", topic, nodes, leads, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func benchQueueGRPC(b *testing.B, nodes, workers int) {
	ctx := context.Background()
	addrs := startAgents(b, nodes)
	cl, err := client.Dial(ctx, addrs)
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ad := client.NewAdmin(cl)
	// Until every node has joined, a replication factor of 3 is refused.
	for deadline := time.Now().Add(30 * time.Second); ; {
		_, err := ad.CreateTopic(ctx, "bench", client.TopicConfig{Partitions: 6, ReplicationFactor: int32(nodes)})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	waitLeadersSpread(b, ad, "bench", nodes)
	if _, err := ad.CreateQueueGroup(ctx, "bench", "g", client.QueueSettings{}); err != nil {
		b.Fatal(err)
	}
	pcfg := client.DefaultProducerConfig()
	pcfg.Linger = 5 * time.Millisecond
	pr, err := client.NewProducer(cl, pcfg)
	if err != nil {
		b.Fatal(err)
	}
	value := make([]byte, 128)
	var perr atomic.Value
	for i := 0; i < b.N; i++ {
		pr.ProduceAsync(&client.Record{Topic: "bench", Value: value}, func(_ client.Result, err error) {
			if err != nil {
				perr.Store(err)
			}
		})
	}
	if err := pr.Close(); err != nil {
		b.Fatal(err)
	}
	if err := perr.Load(); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(128)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var acked atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			qc, err := client.NewQueueConsumer(cl, client.QueueConsumerConfig{Topic: "bench", Group: "g", MaxMessages: benchBatch})
			if err != nil {
				b.Error(err)
				return
			}
			for acked.Load() < int64(b.N) {
				msgs, err := qc.Receive(ctx, 0, 100*time.Millisecond)
				if err != nil {
					b.Error(err)
					return
				}
				n, err := qc.Ack(ctx, msgs...)
				if err != nil {
					b.Error(err)
					return
				}
				acked.Add(int64(n))
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(acked.Load())/el.Seconds(), "records/s")
}
