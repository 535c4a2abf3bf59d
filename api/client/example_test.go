package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/stratalog/strata/api/client"
	"github.com/stratalog/strata/api/record"
)

// These examples need a running broker, so they are compiled but not run.

func ExampleProducer() {
	ctx := context.Background()
	c, err := client.Dial(ctx, []string{"localhost:7070"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	cfg := client.DefaultProducerConfig()
	cfg.Compression = record.Zstd
	p, err := client.NewProducer(c, cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close() // flushes

	// Asynchronous: the callback runs once per record, with its offset or
	// the error that ended its retries.
	for i := range 1000 {
		p.ProduceAsync(&client.Record{
			Topic: "orders",
			Key:   fmt.Appendf(nil, "customer-%d", i%10), // same key, same partition
			Value: fmt.Appendf(nil, `{"order":%d}`, i),
		}, func(r client.Result, err error) {
			if err != nil {
				log.Printf("order not written: %v", err)
			}
		})
	}
	if err := p.Flush(ctx); err != nil {
		log.Fatal(err)
	}

	// Synchronous.
	res, err := p.Produce(ctx, &client.Record{Topic: "orders", Value: []byte("last")})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("written to %s/%d at %d\n", res.Topic, res.Partition, res.Offset)

	// Keep the id to resume this producer without duplicates.
	id, _ := p.ProducerID(ctx)
	fmt.Println("producer id", id)
}

func ExampleConsumer() {
	ctx := context.Background()
	c, err := client.Dial(ctx, []string{"localhost:7070"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	cfg := client.DefaultConsumerConfig()
	cfg.Group = "billing"
	cfg.Topics = []string{"orders"}
	cfg.OnAssign = func(tps []client.TopicPartition) { log.Printf("assigned %v", tps) }
	cfg.OnRevoke = func(tps []client.TopicPartition) { log.Printf("revoked %v", tps) }
	co, err := client.NewConsumer(c, cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer co.Close() // commits and leaves the group

	for {
		fetches, err := co.Poll(ctx)
		if errors.Is(err, client.ErrClosed) {
			return
		}
		if err != nil {
			log.Printf("poll: %v", err)
		}
		for tp, r := range fetches.All() {
			fmt.Printf("%s@%d %s=%s\n", tp, r.Offset, r.Key, r.Value)
		}
	}
}

func ExampleConsumer_replay() {
	ctx := context.Background()
	c, err := client.Dial(ctx, []string{"localhost:7070"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	// A standalone consumer re-reads the last hour of partition 0.
	co, err := client.NewConsumer(c, client.DefaultConsumerConfig())
	if err != nil {
		log.Fatal(err)
	}
	defer co.Close()
	if err := co.Assign(client.AtTime(time.Now().Add(-time.Hour)), client.TopicPartition{Topic: "orders", Partition: 0}); err != nil {
		log.Fatal(err)
	}
	pollCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	fetches, err := co.Poll(pollCtx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(fetches.NumRecords(), "records")
}

func ExampleAdmin() {
	ctx := context.Background()
	c, err := client.Dial(ctx, []string{"localhost:7070"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	a := client.NewAdmin(c)
	defer a.Close()

	_, err = a.CreateTopic(ctx, "orders", client.TopicConfig{Partitions: 6, Retention: 7 * 24 * time.Hour})
	if err != nil && !errors.Is(err, client.ErrTopicExists) {
		log.Fatal(err)
	}
	info, err := a.DescribeTopic(ctx, "orders")
	if err != nil {
		log.Fatal(err)
	}
	for _, p := range info.Partitions {
		fmt.Printf("%d: leader %s, offsets [%d, %d)\n", p.Partition, p.LeaderID, p.LogStartOffset, p.HighWatermark)
	}

	// Replay: move the (stopped) group back a day.
	if _, err := a.ResetOffsets(ctx, "billing", "orders", client.AtTime(time.Now().Add(-24*time.Hour))); err != nil {
		log.Fatal(err)
	}
	g, err := a.DescribeGroup(ctx, "billing")
	if err != nil {
		log.Fatal(err)
	}
	for _, l := range g.Partitions {
		fmt.Printf("%s lag %d records\n", l.TopicPartition, l.LagRecords)
	}
}
