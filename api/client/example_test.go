package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"slices"
	"sync/atomic"
	"time"

	"github.com/stratalog/strata/api/client"
	"github.com/stratalog/strata/api/record"
)

// The examples run against the real broker TestMain starts; brokers holds
// its address (for a local `make run`, []string{"127.0.0.1:7400"}).

func ExampleProducer() {
	ctx := context.Background()
	c, err := client.Dial(ctx, brokers)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if _, err := client.NewAdmin(c).CreateTopic(ctx, "orders", client.TopicConfig{Partitions: 3}); err != nil && !errors.Is(err, client.ErrTopicExists) {
		log.Fatal(err)
	}

	cfg := client.DefaultProducerConfig()
	cfg.Compression = record.Zstd
	p, err := client.NewProducer(c, cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close() // flushes

	// Asynchronous: the callback runs once per record, with its offset or
	// the error that ended its retries.
	var failed atomic.Int64
	for i := range 1000 {
		p.ProduceAsync(&client.Record{
			Topic: "orders",
			Key:   fmt.Appendf(nil, "customer-%d", i%10), // same key, same partition
			Value: fmt.Appendf(nil, `{"order":%d}`, i),
		}, func(r client.Result, err error) {
			if err != nil {
				failed.Add(1)
				log.Printf("order not written: %v", err)
			}
		})
	}
	if err := p.Flush(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("failed:", failed.Load())

	// Synchronous: returns once the record is committed and fsynced.
	key := []byte("customer-7")
	res, err := p.Produce(ctx, &client.Record{Topic: "orders", Key: key, Value: []byte("last")})
	if err != nil {
		log.Fatal(err)
	}
	// Keys land where a Kafka client would put them (murmur2).
	fmt.Println("same partition as Kafka:", res.Partition == int32(record.KeyPartition(key, 3)))
	// Output:
	// failed: 0
	// same partition as Kafka: true
}

func ExampleConsumer() {
	ctx := context.Background()
	c, err := client.Dial(ctx, brokers)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if _, err := client.NewAdmin(c).CreateTopic(ctx, "emails", client.TopicConfig{Partitions: 2}); err != nil {
		log.Fatal(err)
	}
	p, err := client.NewProducer(c, client.DefaultProducerConfig())
	if err != nil {
		log.Fatal(err)
	}
	for _, to := range []string{"ada", "bob", "cy"} {
		if _, err := p.Produce(ctx, &client.Record{Topic: "emails", Key: []byte(to), Value: []byte("welcome " + to)}); err != nil {
			log.Fatal(err)
		}
	}
	p.Close()

	// A member of the stream group "mailer": the group shares the
	// partitions among its members and keeps their committed offsets.
	cfg := client.DefaultConsumerConfig()
	cfg.Group = "mailer"
	cfg.Topics = []string{"emails"}
	cfg.OnAssign = func(tps []client.TopicPartition) { log.Printf("assigned %v", tps) }
	co, err := client.NewConsumer(c, cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer co.Close() // commits and leaves the group

	var sent []string
	for len(sent) < 3 {
		fetches, err := co.Poll(ctx)
		if err != nil {
			log.Fatal(err)
		}
		for _, r := range fetches.All() {
			sent = append(sent, string(r.Value))
		}
	}
	if err := co.Commit(ctx); err != nil { // or let AutoCommit do it
		log.Fatal(err)
	}
	slices.Sort(sent) // order holds per partition, not across them
	fmt.Println(sent)
	// Output:
	// [welcome ada welcome bob welcome cy]
}

func ExampleConsumer_replay() {
	ctx := context.Background()
	c, err := client.Dial(ctx, brokers)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if _, err := client.NewAdmin(c).CreateTopic(ctx, "audit", client.TopicConfig{Partitions: 1}); err != nil {
		log.Fatal(err)
	}
	p, err := client.NewProducer(c, client.DefaultProducerConfig())
	if err != nil {
		log.Fatal(err)
	}
	old := time.Now().Add(-2 * time.Hour)
	for i, ts := range []time.Time{old, old, time.Now(), time.Now()} {
		r := &client.Record{Topic: "audit", Value: fmt.Appendf(nil, "event %d", i), Timestamp: ts}
		if _, err := p.Produce(ctx, r); err != nil {
			log.Fatal(err)
		}
	}
	p.Close()

	// A standalone consumer re-reads the last hour of partition 0.
	co, err := client.NewConsumer(c, client.DefaultConsumerConfig())
	if err != nil {
		log.Fatal(err)
	}
	defer co.Close()
	if err := co.Assign(client.AtTime(time.Now().Add(-time.Hour)), client.TopicPartition{Topic: "audit", Partition: 0}); err != nil {
		log.Fatal(err)
	}
	fetches, err := co.Poll(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range fetches.All() {
		fmt.Println(r.Offset, string(r.Value))
	}
	// Output:
	// 2 event 2
	// 3 event 3
}

func ExampleAdmin() {
	ctx := context.Background()
	c, err := client.Dial(ctx, brokers)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	a := client.NewAdmin(c)
	defer a.Close()

	_, err = a.CreateTopic(ctx, "invoices", client.TopicConfig{Partitions: 2, Retention: 7 * 24 * time.Hour})
	if err != nil && !errors.Is(err, client.ErrTopicExists) {
		log.Fatal(err)
	}
	info, err := a.DescribeTopic(ctx, "invoices")
	if err != nil {
		log.Fatal(err)
	}
	for _, p := range info.Partitions {
		fmt.Printf("partition %d: offsets [%d, %d)\n", p.Partition, p.LogStartOffset, p.HighWatermark)
	}

	// Replay: move the (stopped) group "billing" back to the start.
	if _, err := a.ResetOffsets(ctx, "billing", "invoices", client.AtStart()); err != nil {
		log.Fatal(err)
	}
	g, err := a.DescribeGroup(ctx, "billing")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("group", g.Group, "tracks", len(g.Partitions), "partitions")
	// Output:
	// partition 0: offsets [0, 0)
	// partition 1: offsets [0, 0)
	// group billing tracks 2 partitions
}
