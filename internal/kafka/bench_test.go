package kafka_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stratalog/strata/api/client"
)

var benchTopics atomic.Int64

// BenchmarkPaths produces, then consumes, 128-byte records on one
// partition of the TestMain node through the Kafka listener (franz-go kgo,
// idempotent, acks=all) and through gRPC (the Strata Go client), side by
// side in one run:
//
//	go test -run '^$' -bench Paths -benchtime 200000x -count 5 ./internal/kafka
func BenchmarkPaths(b *testing.B) {
	for _, path := range []string{"grpc", "kafka"} {
		b.Run("produce/"+path, func(b *testing.B) {
			topic := benchTopic(b)
			b.SetBytes(128)
			b.ReportAllocs()
			b.ResetTimer()
			if path == "kafka" {
				kafkaProduce(b, topic, b.N)
			} else {
				grpcProduce(b, topic, b.N)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
	for _, path := range []string{"grpc", "kafka"} {
		b.Run("consume/"+path, func(b *testing.B) {
			topic := benchTopic(b)
			grpcProduce(b, topic, b.N)
			b.SetBytes(128)
			b.ReportAllocs()
			b.ResetTimer()
			if path == "kafka" {
				kafkaConsume(b, topic, b.N)
			} else {
				grpcConsume(b, topic, b.N)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

func benchTopic(b *testing.B) string {
	b.Helper()
	c := grpcClient(b)
	topic := fmt.Sprintf("bench-%d", benchTopics.Add(1))
	if _, err := client.NewAdmin(c).CreateTopic(context.Background(), topic, client.TopicConfig{Partitions: 1}); err != nil {
		b.Fatal(err)
	}
	return topic
}

func grpcClient(b *testing.B) *client.Client {
	b.Helper()
	c, err := client.Dial(context.Background(), []string{node.GRPCAddr()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

func grpcProduce(b *testing.B, topic string, n int) {
	p, err := client.NewProducer(grpcClient(b), client.DefaultProducerConfig())
	if err != nil {
		b.Fatal(err)
	}
	value := make([]byte, 128)
	var failed atomic.Int64
	for range n {
		p.ProduceAsync(&client.Record{Topic: topic, Value: value}, func(_ client.Result, err error) {
			if err != nil {
				failed.Add(1)
			}
		})
	}
	if err := p.Close(); err != nil || failed.Load() > 0 {
		b.Fatalf("grpc produce: %v, %d failed", err, failed.Load())
	}
}

func kafkaProduce(b *testing.B, topic string, n int) {
	cl := newClient(b, kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(5*time.Millisecond))
	value := make([]byte, 128)
	var failed atomic.Int64
	for range n {
		cl.Produce(context.Background(), &kgo.Record{Value: value}, func(_ *kgo.Record, err error) {
			if err != nil {
				failed.Add(1)
			}
		})
	}
	if err := cl.Flush(context.Background()); err != nil || failed.Load() > 0 {
		b.Fatalf("kafka produce: %v, %d failed", err, failed.Load())
	}
}

func grpcConsume(b *testing.B, topic string, n int) {
	cons, err := client.NewConsumer(grpcClient(b), client.DefaultConsumerConfig())
	if err != nil {
		b.Fatal(err)
	}
	defer cons.Close()
	if err := cons.Assign(client.AtStart(), client.TopicPartition{Topic: topic}); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for got := 0; got < n; {
		f, err := cons.Poll(ctx)
		if err != nil {
			b.Fatal(err)
		}
		got += f.NumRecords()
	}
}

func kafkaConsume(b *testing.B, topic string, n int) {
	cl := newClient(b, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for got := 0; got < n; {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			b.Fatal(err)
		}
		got += fs.NumRecords()
	}
}
