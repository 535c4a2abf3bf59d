package client_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stratalog/strata/api/client"
)

// TestConsumerPipelineEveryRecordOnce reads 20,000 records from the real
// broker with fetches of 8 KiB (a few hundred fetches, each sent while
// the one before is decoded and handed over): every record comes once,
// in order, with its own value.
func TestConsumerPipelineEveryRecordOnce(t *testing.T) {
	const n = 20_000
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := client.Dial(ctx, brokers)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	topic := fmt.Sprintf("pipeline-once-%d", time.Now().UnixNano()) // a topic of its own with -count
	if _, err := client.NewAdmin(c).CreateTopic(ctx, topic, client.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	pcfg := client.DefaultProducerConfig()
	pcfg.BatchBytes = 4 << 10 // many batches, so fetches end on batch boundaries often
	p, err := client.NewProducer(c, pcfg)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 1)
	for i := range n {
		p.ProduceAsync(&client.Record{Topic: topic, Value: fmt.Appendf(nil, "value-%06d", i)}, func(_ client.Result, err error) {
			if err != nil {
				select {
				case errs <- err:
				default:
				}
			}
		})
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	p.Close()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}

	for _, maxPoll := range []int{0, 333} {
		t.Run(fmt.Sprintf("MaxPollRecords=%d", maxPoll), func(t *testing.T) {
			cfg := client.DefaultConsumerConfig()
			cfg.FetchMaxBytes = 8 << 10
			cfg.MaxPollRecords = maxPoll
			co, err := client.NewConsumer(c, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer co.Close()
			if err := co.Assign(client.AtStart(), client.TopicPartition{Topic: topic, Partition: 0}); err != nil {
				t.Fatal(err)
			}
			next := int64(0)
			for next < n {
				fs, err := co.Poll(ctx)
				if err != nil {
					t.Fatalf("Poll at %d: %v", next, err)
				}
				for _, r := range fs.All() {
					if r.Offset != next || string(r.Value) != fmt.Sprintf("value-%06d", next) {
						t.Fatalf("record at offset %d with value %q, want offset %d", r.Offset, r.Value, next)
					}
					next++
				}
			}
		})
	}
}
