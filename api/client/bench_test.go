package client

import (
	"testing"
	"time"

	"github.com/stratalog/strata/api/record"
)

// BenchmarkProducerPath measures the producer's CPU work per record
// without the network: routing into a partition, sealing and encoding
// the batches (the work of ProduceAsync and the loop).
func BenchmarkProducerPath(b *testing.B) {
	cfg := DefaultProducerConfig()
	p, ts := testProducer(cfg, 8)
	value := make([]byte, 128)
	keys := make([][]byte, 1024)
	for i := range keys {
		keys[i] = []byte(time.Duration(i).String())
	}
	b.SetBytes(int64(len(value)))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		rec := record.Record{Key: keys[i%len(keys)], Value: value, Timestamp: t0}
		p.routeLocked(ts, rec, nil, 0, false, t0)
		i++
		if i%4096 == 0 {
			for _, ps := range ts.parts {
				ps.seal()
				for _, bt := range ps.queue {
					if _, err := record.AppendBatch(nil, bt.recs, record.BatchOptions{ProducerID: 1, BaseSequence: wireSeq(bt.baseSeq)}); err != nil {
						b.Fatal(err)
					}
				}
				ps.queue = ps.queue[:0]
			}
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
