// Package client is the Go client of Strata: a Client that keeps gRPC
// connections and a metadata cache, and on top of it a Producer, a
// Consumer and an Admin.
//
// # Client
//
// Dial connects to one or more brokers and reads the cluster's metadata.
// Requests for a partition (produce, fetch, list offsets) go to the
// partition's leader; cluster-wide requests (topics, groups) go to any
// node, which answers or points at the leader. An Unavailable answer with
// a NotLeader detail moves the request to the named leader at once; other
// Unavailable answers are retried with exponential backoff, after a
// metadata refresh, up to Config.MaxRetries times.
//
// # Producer
//
// A Producer batches records per partition (Linger, BatchBytes) into Kafka
// v2 record batches built with package record, and pipelines them over one
// ProduceStream per broker, up to MaxInFlight batches per partition.
// Records with a key go to record.KeyPartition(key, n), the partition
// Kafka's default partitioner picks; records without a key go round-robin
// or stick to one partition per batch; Record.HasPartition overrides both.
//
// Producers are idempotent unless configured otherwise. InitProducer gives
// the producer an id and an epoch; each partition numbers its records from
// 0, a batch carries the sequence of its first record, and a retry resends
// the same bytes, so the broker recognises a batch it already wrote and
// answers with the original offsets instead of writing it twice. Responses
// for a partition come back in order; when one fails, the batches in
// flight behind it fail too (the broker refuses a gap in the sequence), and
// the producer resends them all, in order, from the first unacknowledged
// one. Sequences wrap to 0 after math.MaxInt32, as Kafka's do, and a batch
// may span the wrap: a producer stays idempotent past 2^31 records.
//
// Resuming: ProducerConfig.ProducerID reuses the id of an earlier run. Its
// sequences start at 0 again, so replaying the same input makes the broker
// see the same sequence numbers: a batch it already holds is acknowledged
// as a duplicate (Result.Duplicate, Offset -1 when the broker no longer
// remembers where it went), and a batch that straddles the end of what is
// written is refused as out of order with the sequence the broker expects
// next, E; the producer then completes the records below E as duplicates,
// rebuilds the batch from E on, and resends it. This relies on the earlier
// run having written fewer than 2^31 records to the partition (its
// sequences had not wrapped).
//
// Fencing: a resumed producer gets the id's next epoch, and from then on
// the brokers refuse the id's older epochs. An earlier run that is still
// alive (a zombie, or a second process given the same id) fails its next
// batch with a *ProducerFencedError (errors.Is ErrProducerFenced), and so
// do its unsent and later records: it writes nothing more, and must be
// closed. Sequences belong to the id, not to an epoch: the first batches
// of the new epoch are checked against what the older epochs wrote, which
// is what makes the replay above work. (Kafka restarts the sequences of a
// new epoch instead, and does not recognise a replay.) So the rule for two
// instances of one id is the rule for a resumed producer: the newer one
// must replay the older one's input; records of its own at sequences the
// older one used are taken for the older one's and acknowledged as
// duplicates. The older one is fenced on every partition as soon as the
// partition's leader knows the new epoch (its metadata replica applied
// it), and on a partition at the latest once the newer one wrote there; a
// batch it sent just before that may still be written. An id restarted
// math.MaxInt16 times gets a new id instead (Producer.ProducerID returns
// it), as Kafka does; the earlier run's records are then not recognised.
//
// Every record given to the producer gets its callback exactly once: with
// its offset, or with the error that ended its retries (or the producer:
// ErrProducerFenced), or with ErrClosed.
// Nothing is dropped silently.
//
// # Consumer
//
// A Consumer reads assigned partitions (standalone: Assign and Seek) or
// the partitions a stream group assigns it (ConsumerConfig.Group and
// Topics). Each assigned partition has a fetcher that long-polls Fetch and
// fetches the next response while the application handles the current
// one. Poll returns what has arrived, grouped by partition; the position
// of a partition is the offset after the last record Poll returned.
//
// In a group, a heartbeat goroutine keeps the membership alive; a new
// generation or assignment is applied at the next Poll, on the caller's
// goroutine: revoked partitions are committed (with auto-commit) and
// given to OnRevoke, new ones to OnAssign. Auto-commit commits the
// positions as of the latest Poll call, so records are committed only
// once the application came back for more (at-least-once). Commit commits
// the current positions, and so does Close (with AutoCommit) before it
// leaves the group. A partition without a committed offset starts at
// ConsumerConfig.StartAt; a position that fell out of the log (retention)
// is reset to StartAt as well.
//
// # Queue consumer
//
// A QueueConsumer is a member of a queue group: Receive leases records,
// Ack, Nack, Reject and Extend settle them, AckAsync pipelines acks, and
// Run does it all around a handler. With QueueConsumerConfig.Prefetch,
// background receives keep up to Prefetch records leased ahead, so the
// next batch is on its way while the application handles this one. A
// buffered record's lease runs and its delivery is counted (by the broker,
// when it handed the record out); Receive returns a buffered record only
// while PrefetchMinLease of its lease remains, timed on the local
// monotonic clock from when its receive was sent, and drops older ones.
// Close stops the background receives and gives the buffered records back
// with a nack of 1 ms, so another member receives them at once; they have
// used one delivery, and one given back on its last allowed delivery is
// dead-lettered, as it would be when its lease ended. The rules in full
// are in queue_prefetch.go.
//
// # Errors
//
// The broker's answers become the sentinels of errors.go (ErrUnknownTopic,
// ErrNotLeader, ErrOffsetOutOfRange, …); match them with errors.Is. Every
// answer matches the sentinel of its gRPC code, and the one of its
// ErrorReason (api/v1) where the client has one; the *Error type carries
// the code, the reason and the message. The message is for people: it
// decides nothing, except with a server older than the reasons, whose
// answers are refined by their words as they were then.
//
// # Lifetimes
//
// Close a Producer, Consumer or Admin before the Client they use. Every
// Close is idempotent and waits for the goroutines it owns.
package client
