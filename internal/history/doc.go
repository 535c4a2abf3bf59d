// Package history records what clients of a Strata cluster did and saw
// while faults were injected, and checks it against what Strata promises.
//
// A test records every produce (with its outcome: acknowledged at an
// offset, failed, or unknown when the client gave up without an answer),
// every read (a fetch from an offset, with the high watermark and records
// it returned, or offset-out-of-range), what each stream consumer received
// in order, and every queue receive, ack, nack and reject, and at the end
// the full contents of every partition and dead-letter topic. Then:
//
//   - CheckLog verifies the log: every acknowledged record is in its
//     partition exactly once, at the offset it was acknowledged with;
//     nothing failed is there and nothing unknown is there twice; no
//     record appears that was never produced. Then, per partition, it runs
//     porcupine's linearizability checker on a model whose state is the
//     committed length of the log (a register that only grows):
//     a produce acknowledged at offset o is linearized when the length was
//     o, a read is valid when it returns no record past the committed
//     length, and offset-out-of-range is valid only if the requested offset
//     was past the committed length at some point during the call. So a
//     leader that answers out-of-range for an offset committed before the
//     read began, or a record given two offsets, fails the check.
//   - CheckStream verifies a stream consumer's deliveries: per partition the
//     offsets it received rise by one each time (no acknowledged offset
//     skipped, no replay from the start after a failover).
//   - CheckQueue verifies a queue group: every record produced is acked or
//     dead-lettered (lost otherwise), never both, dead-lettered at most
//     once, never delivered more than max-deliveries times, never leased
//     to two members at once, and on a key-ordered group never delivered
//     while an earlier record of its key is in flight.
//
// The recorder is safe for concurrent use; the checks run after the
// workload stopped.
package history
