package queue

// Queue group definitions live in the metadata group (cluster's meta FSM
// stores them as JSON, so the tags below are part of its snapshots and
// raft log); the state of a group on each partition lives in the
// partition's data group (State).

// Orderings of a queue group.
const (
	// OrderingNone leases records in any order to any member.
	OrderingNone = "none"
	// OrderingKey never leases two records with the same key at once and
	// leases a key's records in offset order.
	OrderingKey = "key"
)

// Settings are a queue group's settings as the metadata stores them.
type Settings struct {
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

// Def is a queue group on a topic.
type Def struct {
	Name     string   `json:"name"`
	Topic    string   `json:"topic"`
	TopicID  uint64   `json:"topic_id"`
	Settings Settings `json:"settings"`
	// ProducerIDBase is the first of one idempotent-producer id per
	// partition of the topic (partition p writes its dead letters as
	// producer ProducerIDBase+p, with cluster's internal-producer bit
	// set), assigned by the metadata FSM at creation so that
	// dead-lettering is idempotent.
	ProducerIDBase int64 `json:"producer_id_base"`
}

// Dead-letter reasons, as a dead mark carries them.
const (
	ReasonMaxDeliveries byte = 1
	ReasonRejected      byte = 2
)

// ReasonName returns the reason as the dead-letter header spells it.
func ReasonName(r byte) string {
	switch r {
	case ReasonMaxDeliveries:
		return "max-deliveries"
	case ReasonRejected:
		return "rejected"
	}
	return ""
}
