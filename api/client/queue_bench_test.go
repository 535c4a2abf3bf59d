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
// group over gRPC with the Go client, against an in-process single node:
// 128-byte records, workers receiving batches of 4000 and acking each
// batch. b.N is the number of records.
//
//	go test -run '^$' -bench QueueGRPC -benchtime 200000x -count 5 ./api/client
func BenchmarkQueueGRPC(b *testing.B) {
	for _, workers := range []int{1, 4} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) { benchQueueGRPC(b, workers) })
	}
}

const benchBatch = 4000

func benchQueueGRPC(b *testing.B, workers int) {
	ctx := context.Background()
	cfg := agent.DefaultConfig()
	cfg.DataDir, cfg.NodeID, cfg.LogLevel = b.TempDir(), "n1", "error"
	cfg.GRPCAddr, cfg.HTTPAddr, cfg.ClusterAddr, cfg.GossipAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	a, err := agent.New(ctx, cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	cl, err := client.Dial(ctx, []string{a.GRPCAddr()})
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ad := client.NewAdmin(cl)
	if _, err := ad.CreateTopic(ctx, "bench", client.TopicConfig{Partitions: 4}); err != nil {
		b.Fatal(err)
	}
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
