package client

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/stratalog/strata/api/record"
)

// Partitioning says where records without a key go.
type Partitioning int

// Partitionings.
const (
	// Sticky fills one partition's batch, then moves to the next
	// partition: larger batches at low rates (Kafka's default since 2.4).
	Sticky Partitioning = iota
	// RoundRobin gives each record the next partition in turn.
	RoundRobin
)

// ProducerConfig is the configuration of a Producer.
type ProducerConfig struct {
	// Linger is how long a partition's batch waits for more records
	// before it is sent; 0 sends at once. Default 5 ms.
	Linger time.Duration
	// BatchBytes is the size (uncompressed records) at which a batch is
	// sent without waiting for Linger. A record larger than this goes in
	// a batch of its own. It must stay below the topic's max_batch_bytes
	// (1 MiB by default). Default 512 KiB, at most 16 MiB.
	BatchBytes int
	// MaxBufferedRecords bounds the records given to the producer and not
	// yet acknowledged; Produce and ProduceAsync block while it is
	// reached. Default 100000.
	MaxBufferedRecords int
	// MaxInFlight is how many batches per partition may await their
	// answer. With idempotence it is at most 5 (the broker remembers the
	// last 5 batches of a producer to recognise retries). Default 5.
	MaxInFlight int
	// Compression is the codec of the batches. Default none.
	Compression record.Compression
	// Partitioning places records without a key. Default Sticky.
	Partitioning Partitioning
	// DisableIdempotence sends batches without a producer id: retries may
	// then write a batch twice, and with MaxInFlight > 1 reorder batches.
	DisableIdempotence bool
	// ProducerID resumes the idempotent producer of an earlier run (the
	// value Producer.ProducerID returned then); 0 gets a new id. A resumed
	// producer fences every older instance with the id. See the package
	// documentation for how a resumed producer avoids writing duplicates,
	// and for fencing.
	ProducerID int64
	// MaxRetries is how many times a batch is sent again after a
	// retriable error before its records fail. Default 10.
	MaxRetries int
	// RetryBackoff is the wait before a partition's first retry; it
	// doubles up to MaxRetryBackoff. Defaults 100 ms and 2 s.
	RetryBackoff    time.Duration
	MaxRetryBackoff time.Duration
	// CloseTimeout bounds how long Close waits for buffered records to be
	// delivered; the ones left fail with ErrClosed. Default 30 s.
	CloseTimeout time.Duration
	// Logger receives the producer's logs; nil discards them.
	Logger *slog.Logger
}

// DefaultProducerConfig returns the defaults described on ProducerConfig.
func DefaultProducerConfig() ProducerConfig {
	return ProducerConfig{
		Linger:             5 * time.Millisecond,
		BatchBytes:         512 << 10,
		MaxBufferedRecords: 100_000,
		MaxInFlight:        5,
		Compression:        record.NoCompression,
		Partitioning:       Sticky,
		MaxRetries:         10,
		RetryBackoff:       100 * time.Millisecond,
		MaxRetryBackoff:    2 * time.Second,
		CloseTimeout:       30 * time.Second,
	}
}

// Validate reports a field out of bounds.
func (c ProducerConfig) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: producer: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	switch {
	case c.Linger < 0 || c.Linger > time.Minute:
		return bad("Linger %v not in [0, 1m]", c.Linger)
	case c.BatchBytes < 1 || c.BatchBytes > 16<<20:
		return bad("BatchBytes %d not in [1, 16 MiB]", c.BatchBytes)
	case c.MaxBufferedRecords < 1:
		return bad("MaxBufferedRecords %d < 1", c.MaxBufferedRecords)
	case c.MaxInFlight < 1 || (!c.DisableIdempotence && c.MaxInFlight > 5):
		return bad("MaxInFlight %d not in [1, 5] (or > 5 without idempotence)", c.MaxInFlight)
	case !c.Compression.Valid():
		return bad("compression %v", c.Compression)
	case c.Partitioning != Sticky && c.Partitioning != RoundRobin:
		return bad("partitioning %d", c.Partitioning)
	case c.ProducerID < 0 || (c.ProducerID > 0 && c.DisableIdempotence):
		return bad("ProducerID %d (needs idempotence)", c.ProducerID)
	case c.MaxRetries < 0:
		return bad("MaxRetries %d < 0", c.MaxRetries)
	case c.RetryBackoff <= 0 || c.MaxRetryBackoff < c.RetryBackoff:
		return bad("RetryBackoff %v, MaxRetryBackoff %v", c.RetryBackoff, c.MaxRetryBackoff)
	case c.CloseTimeout <= 0:
		return bad("CloseTimeout %v", c.CloseTimeout)
	}
	return nil
}
