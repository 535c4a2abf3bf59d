// Package broker holds Strata's rules above replication: topics and their
// placement in data groups, the produce and fetch paths, offsets, the
// consumer-group coordinator, retention, and the reconcile loop that keeps
// the data groups in step with the metadata.
//
// The broker never writes storage itself: every change goes through a raft
// group of package cluster (the metadata group for topics, producer ids and
// committed offsets; a data group for records), so a single node and a
// cluster run the same code path.
//
// # Queue groups
//
// A queue group (queue*.go) shares a topic's records among members one by
// one. Its definition (queue.Def) is in the metadata group. Its state on
// each partition is a queue.State in the partition's data group, applied
// by cluster's data FSM on every replica: the floor below which every
// record is done, and for each record between the floor and the highest
// one delivered its delivery count, done or not, backoff (not before, unix
// ms), last error and dead-letter mark. Package queue documents that state
// machine and its invariants. Leases (member, until) live only in the
// memory of the partition's leader and are timed on the monotonic clock:
// the broker keeps, per group and partition it leads, a queue.Leader (the
// leader's scratch over the State) and the records it read ahead of the
// log (queue_lead.go, queue_readahead.go), and drops them once it no
// longer leads the partition.
//
// The broker drives the leader's side: receive (queue_receive.go: pick,
// deliver command, hand out), ack, nack, reject and extend
// (queue_settle.go), the loop that dead-marks expired records and writes
// dead letters, and reset (queue_dlq.go), redrive (queue_redrive.go), and
// describe and metrics (queue_describe.go).
//
// A receive reserves records in memory, then applies one deliver command
// for all of them through raft, and only then returns them: a delivery is
// counted durably before the member sees the record, so no restart or
// failover can make a record look less delivered than it was (the counts
// decide dead-lettering). Acks, nacks and dead marks are one command per
// request. The state is bounded: at most QueueConfig.MaxWindow records
// between the floor and the newest record read.
//
// Leader change: the new leader does not know the old leader's leases, so
// it treats every record delivered and not yet acked or nacked as leased
// (to an unknown member, who may still ack it or nack it) for one ack
// timeout from when it took over. Nothing is delivered twice at once
// because of a failover, and nothing waits longer than one ack timeout.
//
// Delayed delivery: a record with header strata-deliver-at (HeaderDeliverAt:
// unix milliseconds in decimal, or RFC 3339) is not leased before that time
// by any queue group; stream groups and plain fetches see it at its offset
// at once. A long delay holds the group's floor on that partition.
//
// Dead letters go to the group's dead-letter topic (created on first use
// with one partition) through the normal produce path, with the original
// key, value and headers and the strata-dlq-* headers (queue_dlq.go). They
// are written exactly once: the dead mark is a raft command that gives the
// record a sequence number, and each source partition writes its dead
// letters as its own idempotent producer with those sequence numbers, so a
// leader that dies between the write and the command that marks the record
// dead leaves a rewrite that the dead-letter partition recognises as a
// duplicate. (strata-dlq-id, "topic/partition/offset/group", is also unique
// per dead letter, for readers of copies made by other means.)
//
// Redrive writes dead letters back to their source partitions (at least
// once: a crash between the write and the commit of the redrive position
// repeats the last batch), with strata-redriven-from naming the dead
// letter; every queue group on the topic sees the redriven record as a new
// one. Reset moves a group's floor and starts a new generation of its
// state; commands of the old generation no longer apply.
package broker
