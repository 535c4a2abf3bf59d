package bench

import (
	"context"
	"errors"
	"time"
)

var (
	// ErrNotAvailable is returned for a workload the system under test
	// cannot run yet (for example queue groups before they exist).
	ErrNotAvailable = errors.New("bench: not available yet")
	// ErrIncomplete is returned when a workload ended before all its
	// records were acknowledged or consumed.
	ErrIncomplete = errors.New("bench: incomplete run")
)

// Target is a system under test: Strata (NewStrata) or, in
// internal/benchcmp, NATS JetStream. A stream is a topic in Strata.
type Target interface {
	// Name labels the target in reports ("strata", "nats", ...).
	Name() string
	// CreateStream creates the stream with the given number of partitions
	// unless it exists.
	CreateStream(ctx context.Context, stream string, partitions int) error
	// DeleteStream deletes the stream and its records.
	DeleteStream(ctx context.Context, stream string) error
	// StoredRecords returns how many records the stream holds.
	StoredRecords(ctx context.Context, stream string) (int64, error)
	// NewProducer opens a producer writing to stream.
	NewProducer(ctx context.Context, stream string, o ProducerOptions) (Producer, error)
	// NewConsumer opens a consumer of stream.
	NewConsumer(ctx context.Context, stream string, o ConsumerOptions) (Consumer, error)
	// Close releases the target's connections.
	Close() error
}

// ProducerOptions tune a producer; zero values take the client's defaults.
type ProducerOptions struct {
	// Linger is how long a batch waits for more records (Strata).
	Linger time.Duration
	// LingerSet says Linger was given (so 0 means "send at once").
	LingerSet bool
	// BatchBytes is the batch size at which a batch is sent (Strata).
	BatchBytes int
	// Compression names the codec: none, gzip, snappy, lz4, zstd (Strata).
	Compression string
	// MaxPending bounds the records sent and not yet acknowledged.
	MaxPending int
}

// ConsumerOptions say how a consumer reads.
type ConsumerOptions struct {
	// Group consumes as a member of this stream group; empty reads every
	// partition standalone.
	Group string
	// FromEnd starts at the stream's current end instead of its start.
	FromEnd bool
}

// Producer sends records. SendAsync and Send are called from one
// goroutine at a time.
type Producer interface {
	// SendAsync hands one record to the client and returns; done runs
	// once with the outcome, possibly on another goroutine.
	SendAsync(key, value []byte, done func(error))
	// Send sends one record and waits for its acknowledgement.
	Send(ctx context.Context, key, value []byte) error
	// Flush waits until every record sent so far is acknowledged (or
	// failed).
	Flush(ctx context.Context) error
	// Close waits for the outstanding records and releases the producer.
	Close() error
}

// Consumer receives records.
type Consumer interface {
	// Receive waits for at least one record (or ctx), calls fn with the
	// value of each and returns how many there were.
	Receive(ctx context.Context, fn func(value []byte)) (int, error)
	// Close releases the consumer.
	Close() error
}
