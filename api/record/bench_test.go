package record

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// benchRecords returns 1000 records with a 16-byte key and a 128-byte
// value of loosely compressible text.
func benchRecords() []Record {
	rng := rand.New(rand.NewPCG(7, 8))
	words := []string{"strata ", "record ", "batch ", "offset ", "topic ", "key ", "value ", "log "}
	recs := make([]Record, 1000)
	now := time.Now()
	for i := range recs {
		v := make([]byte, 0, 140)
		for len(v) < 128 {
			v = append(v, words[rng.IntN(len(words))]...)
		}
		recs[i] = Record{Key: fmt.Appendf(nil, "key-%012d", i), Value: v[:128], Timestamp: now}
	}
	return recs
}

func BenchmarkAppendBatch(b *testing.B) {
	recs := benchRecords()
	for _, c := range codecs {
		b.Run(c.String(), func(b *testing.B) {
			buf := make([]byte, 0, 256<<10)
			b.SetBytes(int64(len(recs) * 128))
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if buf, err = AppendBatch(buf[:0], recs, BatchOptions{Compression: c, ProducerID: 1}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)*float64(len(recs))/b.Elapsed().Seconds(), "records/s")
		})
	}
}

func BenchmarkDecodeBatches(b *testing.B) {
	recs := benchRecords()
	for _, c := range codecs {
		b.Run(c.String(), func(b *testing.B) {
			batch, err := AppendBatch(nil, recs, BatchOptions{Compression: c, ProducerID: 1})
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(recs) * 128))
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				if err := DecodeBatches(batch, func(r Record) bool { n += len(r.Value); return true }); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)*float64(len(recs))/b.Elapsed().Seconds(), "records/s")
		})
	}
}
