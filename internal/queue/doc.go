// Package queue is the state machine of a queue group on one partition:
// which records are done, how often each was delivered, when a nacked one
// may go out again, which go to the dead-letter topic. It has no raft and
// no I/O. Cluster's data FSM applies its commands on every replica of the
// partition and keeps its states in the data group's snapshots; the
// partition's leader (internal/broker) chooses the records to hand out,
// holds the leases, and turns members' requests into commands.
//
// # Who drives what
//
//   - State (replicated): one per group and partition, created by an init
//     command at the log start offset. Set.Apply applies a Cmd; it runs on
//     the FSM goroutine of every replica, so every replica holds the same
//     State after the same commands. Snapshot and Restore carry it through
//     the data group's snapshots.
//   - Leader (not replicated): the partition leader's scratch for a State:
//     the lease of each record (member, until, on the monotonic clock),
//     reservations of operations in flight, and what the leader read of
//     records (key hash, deliver-at time). Pick chooses records and
//     reserves them; the leader applies a deliver command and calls
//     Delivered; Reserve/Release frame acks, nacks and dead marks the same
//     way. A new leader builds a new Leader (BeginLoad, FinishLoad): the
//     old leader's leases are unknown, so every record delivered and
//     neither acked nor nacked counts as leased for one ack timeout.
//
// The broker owns each Leader (and what it reads ahead of the log); a
// Leader's fields are guarded by its State's mutex, so the leader's
// operations and Apply see each other's changes atomically.
//
// # States of a record
//
// For one group on one partition, with floor ≤ next:
//
//	offset < floor           done (acked or dead-lettered), forgotten
//	floor ≤ offset < next    a slot: deliveries, state, out, not-before,
//	                         dead-letter sequence and reason, last error
//	offset ≥ next            never delivered (the leader may have read it)
//
// A slot's state is open, acked, dead-pending (marked for the dead-letter
// topic, not yet written) or dead. Commands change it:
//
//	init(arg)        creates the state at floor = next = arg (no-op if it exists)
//	deliver(offs)    open: deliveries+1 (not with FlagNoCount), out; next passes them
//	ack(offs)        open → acked
//	nack(offs, t)    open: not out, not before t, last error
//	dead-mark(offs)  open → dead-pending, with the next dead-letter sequence number
//	dead(offs)       dead-pending → dead (its dead letter is written)
//	reset(arg)       a new generation at floor = next = arg; refused (ErrBusy)
//	                 while dead letters are pending
//
// After each settle the floor moves over the slots that are done. Every
// command but init and reset names the generation it was issued for; one
// of another generation changes nothing (ErrReset).
//
// On the leader a record is further: free, reserved (Pick or Reserve, a
// command in flight), or leased to a member until a time. Pick hands out
// open records that are neither reserved nor leased, whose backoff (after
// a delivery) or deliver-at time (before the first) has passed, and whose
// deliveries are below the group's max; with key ordering, no record
// whose key has an earlier open record in the window.
//
// # Invariants
//
//   - len(slots) = next - floor; the State depends only on the commands
//     applied, so replicas agree and Restore(Snapshot()) is the same State.
//   - A delivery is counted (a deliver command committed) before the
//     member sees the record: no restart or failover makes a record look
//     less delivered than it was.
//   - A record with deliveries ≥ max is never picked again; it is
//     dead-marked with reason max-deliveries once its last lease ended or
//     it was nacked, so after exactly max failed deliveries. Otherwise a
//     record is dead-lettered only when a member rejects it.
//   - Dead-letter sequence numbers are given in command order without gaps,
//     and the leader writes pending dead letters in sequence order, so the
//     dead-letter partition can drop a rewrite as a duplicate.
//   - An acked or dead record is never handed out again; a record leased
//     and not yet acked or nacked is not handed out to another member
//     before its lease ends.
//   - Every record at or after the group's start is delivered at least
//     once, unless retention deleted it before it was first read (the
//     broker then resets the group past it, and counts it).
package queue
