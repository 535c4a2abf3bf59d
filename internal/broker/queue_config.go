package broker

import (
	"fmt"
	"time"

	"github.com/stratalog/strata/internal/queue"
)

// QueueConfig configures the broker's side of queue groups.
type QueueConfig struct {
	// MaxWindow caps, per queue group and partition, the records between
	// the group's floor (below which everything is done) and the newest
	// record read: the state the group keeps in memory and in raft. A
	// record that stays unacked long (a long delay, a slow backoff) holds
	// the floor, and once the window is full the group leases nothing new
	// on that partition until it moves. Default 100,000.
	MaxWindow int
	// MaxWait caps a receive's long-poll; default 30 s.
	MaxWait time.Duration
	// TickInterval is how often the queue loop looks for expired leases at
	// max deliveries and for dead letters to write; default 100 ms.
	TickInterval time.Duration
}

// DefaultQueueConfig returns the defaults.
func DefaultQueueConfig() QueueConfig {
	return QueueConfig{MaxWindow: 100000, MaxWait: 30 * time.Second, TickInterval: 100 * time.Millisecond}
}

// Validate checks the configuration.
func (c QueueConfig) Validate() error {
	if c.MaxWindow < 1 || c.MaxWait <= 0 || c.TickInterval <= 0 {
		return fmt.Errorf("%w: queue max window must be positive and queue durations positive", ErrInvalidConfig)
	}
	return nil
}

// Queue-group setting defaults and bounds.
const (
	DefaultAckTimeout     = 30 * time.Second
	DefaultMaxDeliveries  = 5
	DefaultBackoffInitial = time.Second
	DefaultBackoffMax     = 5 * time.Minute
	DefaultMaxLeased      = 10000
	maxAckTimeout         = 12 * time.Hour
	maxMaxDeliveries      = 1000
)

// DeadLetterTopicFor returns the default dead-letter topic of a group.
func DeadLetterTopicFor(topic, group string) string { return topic + "." + group + ".dlq" }

// completeQueueSettings fills defaults (zero fields) and checks bounds.
func completeQueueSettings(topic, group string, s queue.Settings) (queue.Settings, error) {
	if s.AckTimeoutMs == 0 {
		s.AckTimeoutMs = DefaultAckTimeout.Milliseconds()
	}
	if s.MaxDeliveries == 0 {
		s.MaxDeliveries = DefaultMaxDeliveries
	}
	if s.BackoffInitialMs == 0 {
		s.BackoffInitialMs = DefaultBackoffInitial.Milliseconds()
	}
	if s.BackoffMaxMs == 0 {
		s.BackoffMaxMs = max(DefaultBackoffMax.Milliseconds(), s.BackoffInitialMs)
	}
	if s.MaxLeased == 0 {
		s.MaxLeased = DefaultMaxLeased
	}
	if s.DeadLetterTopic == "" {
		s.DeadLetterTopic = DeadLetterTopicFor(topic, group)
	}
	if s.Ordering == "" {
		s.Ordering = queue.OrderingNone
	}
	bad := func(f string, a ...any) (queue.Settings, error) {
		return s, fmt.Errorf("%w: queue group %q: %s", ErrInvalidRequest, group, fmt.Sprintf(f, a...))
	}
	switch {
	case s.AckTimeoutMs < 10 || s.AckTimeoutMs > maxAckTimeout.Milliseconds():
		return bad("ack timeout %d ms not in [10 ms, 12 h]", s.AckTimeoutMs)
	case s.MaxDeliveries < 1 || s.MaxDeliveries > maxMaxDeliveries:
		return bad("max deliveries %d not in [1, %d]", s.MaxDeliveries, maxMaxDeliveries)
	case s.BackoffInitialMs < 1 || s.BackoffMaxMs < s.BackoffInitialMs:
		return bad("backoff must satisfy 1 ms <= initial (%d) <= max (%d)", s.BackoffInitialMs, s.BackoffMaxMs)
	case s.MaxLeased < 1:
		return bad("max leased %d < 1", s.MaxLeased)
	case s.Ordering != queue.OrderingNone && s.Ordering != queue.OrderingKey:
		return bad("ordering %q is neither %q nor %q", s.Ordering, queue.OrderingNone, queue.OrderingKey)
	case s.DeadLetterTopic == topic:
		return bad("the dead-letter topic cannot be the topic itself")
	}
	if err := ValidName("topic", s.DeadLetterTopic); err != nil {
		return s, err
	}
	return s, nil
}
