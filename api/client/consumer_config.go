package client

import (
	"fmt"
	"log/slog"
	"time"
)

// ConsumerConfig is the configuration of a Consumer.
//
// With Group and Topics the consumer is a member of a stream group and
// reads what the group assigns it. Without Topics it is standalone: it
// reads the partitions given to Assign; with a Group it may still commit
// (only while the group has no live members) and start from the group's
// offsets with AtCommitted.
type ConsumerConfig struct {
	// Group is the consumer group; empty for none.
	Group string
	// Topics are the topics a group member subscribes to.
	Topics []string
	// StartAt is where a partition without a committed offset starts, and
	// where a partition whose position fell outside the log (retention
	// deleted it) starts again. Default Earliest.
	StartAt StartAt
	// AutoCommit commits the group's offsets every AutoCommitInterval, on
	// a rebalance and on Close. Default true (DefaultConsumerConfig);
	// ignored without Group.
	AutoCommit bool
	// AutoCommitInterval is the period of auto-commits. Default 5 s.
	AutoCommitInterval time.Duration
	// SessionTimeout is how long the group keeps a member that stopped
	// heartbeating. Default 10 s.
	SessionTimeout time.Duration
	// OnAssign and OnRevoke are called from Poll, on the caller's
	// goroutine, with the partitions the group gave or took away. Either
	// may be nil. OnRevoke runs before the revoked partitions' positions
	// are auto-committed, so it may also call Commit.
	OnAssign func([]TopicPartition)
	OnRevoke func([]TopicPartition)
	// FetchMaxBytes bounds one fetch of one partition (the broker returns
	// at least one batch). Default 1 MiB. A partition holds up to three
	// responses at a time: one waiting for Poll, one being decoded and
	// the next fetch, sent ahead.
	FetchMaxBytes int
	// FetchMaxWait is how long a fetch waits on the broker for records to
	// arrive. Default 500 ms.
	FetchMaxWait time.Duration
	// MaxPollRecords bounds the records one Poll returns; 0 for no bound.
	MaxPollRecords int
	// CloseTimeout bounds the final commit and LeaveGroup in Close.
	// Default 10 s.
	CloseTimeout time.Duration
	// Logger receives the consumer's logs; nil discards them.
	Logger *slog.Logger
}

// DefaultConsumerConfig returns the defaults described on ConsumerConfig.
func DefaultConsumerConfig() ConsumerConfig {
	return ConsumerConfig{
		StartAt:            Earliest,
		AutoCommit:         true,
		AutoCommitInterval: 5 * time.Second,
		SessionTimeout:     10 * time.Second,
		FetchMaxBytes:      1 << 20,
		FetchMaxWait:       500 * time.Millisecond,
		CloseTimeout:       10 * time.Second,
	}
}

// Validate reports a field out of bounds.
func (c ConsumerConfig) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: consumer: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	switch {
	case len(c.Topics) > 0 && c.Group == "":
		return bad("Topics need a Group (use Assign without one)")
	case c.StartAt != Earliest && c.StartAt != Latest:
		return bad("StartAt %d", c.StartAt)
	case c.AutoCommit && c.Group != "" && c.AutoCommitInterval <= 0:
		return bad("AutoCommitInterval %v", c.AutoCommitInterval)
	case c.SessionTimeout < time.Second:
		return bad("SessionTimeout %v < 1s", c.SessionTimeout)
	case c.FetchMaxBytes < 1:
		return bad("FetchMaxBytes %d", c.FetchMaxBytes)
	case c.FetchMaxWait < 0:
		return bad("FetchMaxWait %v", c.FetchMaxWait)
	case c.MaxPollRecords < 0:
		return bad("MaxPollRecords %d", c.MaxPollRecords)
	case c.CloseTimeout <= 0:
		return bad("CloseTimeout %v", c.CloseTimeout)
	}
	for _, t := range c.Topics {
		if t == "" {
			return bad("empty topic name")
		}
	}
	return nil
}

// member reports whether the configuration makes a group member.
func (c ConsumerConfig) member() bool { return c.Group != "" && len(c.Topics) > 0 }
