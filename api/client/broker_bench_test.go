package client_test

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stratalog/strata/api/client"
)

// These benchmarks go through the real broker TestMain starts: gRPC, the
// data raft group (raft-boltdb/v2, fsync before ack) and the segment log,
// with 128-byte records on a one-partition topic. Run them with
//
//	go test -run '^$' -bench 'Broker(ProduceAsync|Consume)' -benchtime 2000000x -count 5 ./api/client
//	go test -run '^$' -bench 'BrokerProduceSync' -benchtime 5s -count 5 ./api/client

var benchTopics atomic.Int64

// benchSetup dials the broker and creates a fresh one-partition topic.
func benchSetup(b *testing.B) (*client.Client, string) {
	b.Helper()
	ctx := context.Background()
	c, err := client.Dial(ctx, brokers)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	topic := fmt.Sprintf("bench-%d", benchTopics.Add(1))
	if _, err := client.NewAdmin(c).CreateTopic(ctx, topic, client.TopicConfig{Partitions: 1}); err != nil {
		b.Fatal(err)
	}
	return c, topic
}

// produceN writes n records of 128 bytes asynchronously and waits for
// every acknowledgement.
func produceN(b *testing.B, c *client.Client, topic string, n int) {
	b.Helper()
	p, err := client.NewProducer(c, client.DefaultProducerConfig())
	if err != nil {
		b.Fatal(err)
	}
	value := make([]byte, 128)
	var failed atomic.Int64
	cb := func(_ client.Result, err error) {
		if err != nil {
			failed.Add(1)
		}
	}
	for range n {
		p.ProduceAsync(&client.Record{Topic: topic, Value: value}, cb)
	}
	if err := p.Close(); err != nil {
		b.Fatal(err)
	}
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d records not acknowledged", f)
	}
}

// BenchmarkBrokerProduceAsync: records/s acknowledged (committed and
// fsynced) with the producer's batching and pipelining.
func BenchmarkBrokerProduceAsync(b *testing.B) {
	c, topic := benchSetup(b)
	b.SetBytes(128)
	b.ReportAllocs()
	b.ResetTimer()
	produceN(b, c, topic, b.N)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkBrokerProduceSync: one record at a time, each waiting for its
// acknowledgement; reports the latency percentiles.
func BenchmarkBrokerProduceSync(b *testing.B) {
	c, topic := benchSetup(b)
	cfg := client.DefaultProducerConfig()
	cfg.Linger = 0
	p, err := client.NewProducer(c, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	ctx := context.Background()
	value := make([]byte, 128)
	// Warm up the stream and the producer id.
	if _, err := p.Produce(ctx, &client.Record{Topic: topic, Value: value}); err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, b.N)
	b.SetBytes(128)
	b.ResetTimer()
	for b.Loop() {
		t := time.Now()
		if _, err := p.Produce(ctx, &client.Record{Topic: topic, Value: value}); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t))
	}
	slices.Sort(lat)
	pct := func(q float64) float64 {
		return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkBrokerConsume: records/s read by a standalone consumer from
// the start of a partition holding b.N stored records.
func BenchmarkBrokerConsume(b *testing.B) {
	c, topic := benchSetup(b)
	produceN(b, c, topic, b.N)
	co, err := client.NewConsumer(c, client.DefaultConsumerConfig())
	if err != nil {
		b.Fatal(err)
	}
	defer co.Close()
	b.SetBytes(128)
	b.ReportAllocs()
	b.ResetTimer()
	if err := co.Assign(client.AtStart(), client.TopicPartition{Topic: topic}); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for got := 0; got < b.N; {
		f, err := co.Poll(ctx)
		if err != nil {
			b.Fatal(err)
		}
		got += f.NumRecords()
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
