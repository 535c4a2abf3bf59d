package broker

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stratalog/strata/api/record"
	"github.com/stratalog/strata/internal/queue"
)

// BenchmarkQueueReceiveAck measures acked records per second through a
// queue group on one node (raft with fsync, as in production): 128-byte
// records, workers receiving batches of 1000 and acking each batch with
// one call. b.N is the number of records.
//
//	go test -run '^$' -bench QueueReceiveAck -benchtime 200000x -count 5 ./internal/broker
func BenchmarkQueueReceiveAck(b *testing.B) {
	for _, workers := range []int{1, 4} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) { benchQueue(b, workers) })
	}
}

func benchQueue(b *testing.B, workers int) {
	const parts, batch = 4, 1000
	qn := openQueueNode(b, b.TempDir(), nil)
	br := qn.b
	mustTopic(b, br, "bench", parts)
	value := make([]byte, 128)
	for p := int32(0); p < parts; p++ {
		n := b.N / parts
		if p == 0 {
			n += b.N % parts
		}
		for i := 0; i < n; {
			recs := make([]record.Record, 0, 4000)
			for ; i < n && len(recs) < cap(recs); i++ {
				recs = append(recs, record.Record{Value: value})
			}
			bt, err := record.AppendBatch(nil, recs, record.BatchOptions{})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := br.Produce(context.Background(), "bench", p, bt); err != nil {
				b.Fatal(err)
			}
		}
	}
	mustQueue(b, br, "bench", "g", queue.Settings{})
	b.SetBytes(128)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var acked atomic.Int64
	var wg sync.WaitGroup
	ctx := context.Background()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			member := fmt.Sprintf("w%d", w)
			for acked.Load() < int64(b.N) {
				msgs, err := br.QueueReceive(ctx, ReceiveRequest{Topic: "bench", Group: "g", Member: member, Partition: -1, Max: batch, Wait: 100 * time.Millisecond})
				if err != nil {
					b.Error(err)
					return
				}
				if len(msgs) == 0 {
					continue
				}
				n, err := br.QueueAck(ctx, SettleRequest{Topic: "bench", Group: "g", Member: member, Offsets: refs(msgs...)})
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
