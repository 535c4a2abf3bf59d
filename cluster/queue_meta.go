package cluster

import (
	"fmt"
	"maps"
	"slices"

	"github.com/stratalog/strata/internal/topic"
)

// Queue group definitions live in the metadata group; the per-record state
// of a queue group lives with each partition in its data group (see
// queue_state.go).

// Queue group orderings.
const (
	// OrderingNone leases records in any order to any member.
	OrderingNone = "none"
	// OrderingKey never leases two records with the same key at once and
	// leases a key's records in offset order.
	OrderingKey = "key"
)

// QueueSettings are a queue group's settings as the metadata stores them.
type QueueSettings struct {
	// AckTimeoutMs is how long a lease lasts before the record is handed
	// out again, in milliseconds.
	AckTimeoutMs int64 `json:"ack_timeout_ms"`
	// MaxDeliveries is how many deliveries without an ack send a record to
	// the dead-letter topic.
	MaxDeliveries int32 `json:"max_deliveries"`
	// BackoffInitialMs and BackoffMaxMs bound the exponential retry backoff
	// after a nack, in milliseconds.
	BackoffInitialMs int64 `json:"backoff_initial_ms"`
	BackoffMaxMs     int64 `json:"backoff_max_ms"`
	// MaxLeased caps the records leased at once per partition.
	MaxLeased int32 `json:"max_leased"`
	// DeadLetterTopic receives the dead letters.
	DeadLetterTopic string `json:"dead_letter_topic"`
	// Ordering is OrderingNone or OrderingKey.
	Ordering string `json:"ordering"`
}

// QueueDef is a queue group on a topic.
type QueueDef struct {
	Name     string        `json:"name"`
	Topic    string        `json:"topic"`
	TopicID  uint64        `json:"topic_id"`
	Settings QueueSettings `json:"settings"`
	// ProducerIDBase is the first of one idempotent-producer id per
	// partition of the topic (partition p writes its dead letters as
	// producer ProducerIDBase+p), assigned by the FSM at creation so that
	// dead-lettering is idempotent.
	ProducerIDBase int64 `json:"producer_id_base"`
}

// DLQProducerID is the producer id partition p writes dead letters with.
// It has InternalProducerBit set, which lets it close a gap in its
// sequence numbers by starting a new epoch (see checkSeq).
func (d QueueDef) DLQProducerID(p int32) int64 {
	return InternalProducerBit | (d.ProducerIDBase + int64(p))
}

func queueKey(topic, name string) string { return topic + "/" + name }

// PutQueueCmd creates a queue group, or updates the settings of an
// existing one (its state is kept).
func PutQueueCmd(d QueueDef) []byte { return mustJSON(metaCmd{Op: opPutQueue, Queue: &d}) }

// QueueDef returns a queue group's definition.
func (f *MetaFSM) QueueDef(topic, name string) (QueueDef, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	d, ok := f.state.Queues[queueKey(topic, name)]
	if !ok {
		return QueueDef{}, false
	}
	return *d, true
}

// QueueDefs returns every queue group, sorted by topic and name.
func (f *MetaFSM) QueueDefs() []QueueDef {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]QueueDef, 0, len(f.state.Queues))
	for _, k := range slices.Sorted(maps.Keys(f.state.Queues)) {
		out = append(out, *f.state.Queues[k])
	}
	return out
}

// applyQueueLocked applies a queue-group command. Caller must hold f.mu.
func (f *MetaFSM) applyQueueLocked(c *metaCmd) any {
	s := f.state
	if s.Queues == nil {
		s.Queues = map[string]*QueueDef{}
	}
	d := *c.Queue
	t, ok := s.Topics[d.Topic]
	if !ok {
		return fmt.Errorf("%w: %q", topic.ErrUnknownTopic, d.Topic)
	}
	k := queueKey(d.Topic, d.Name)
	if old, ok := s.Queues[k]; ok && old.TopicID == t.ID {
		old.Settings = d.Settings
		return *old
	}
	d.TopicID = t.ID
	d.ProducerIDBase = s.NextProducerID
	s.NextProducerID += int64(len(t.Partitions))
	s.Queues[k] = &d
	return d
}

// deleteTopicQueuesLocked forgets the queue groups of a deleted topic.
// Caller must hold f.mu.
func (f *MetaFSM) deleteTopicQueuesLocked(topic string) {
	for k, d := range f.state.Queues {
		if d.Topic == topic {
			delete(f.state.Queues, k)
		}
	}
}
