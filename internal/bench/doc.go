// Package bench is the measurement core of `strata bench` and of the
// side-by-side comparison with NATS JetStream (internal/benchcmp): the
// workloads (produce asynchronously or one record at a time, consume
// stored records, produce-to-consume latency), a latency histogram, a live
// progress line and the report (a table for people, one JSON object for
// scripts).
//
// The workloads drive a Target, the system under test seen through a few
// methods (create a stream, open a producer, open a consumer). Strata's
// Target (NewStrata) uses the Go client in api/client; NATS's lives in
// internal/benchcmp, so the strata binary does not link nats.go. Both are
// measured by the same code and the same clocks.
//
// Latency is measured from the call that hands a record to the client to
// the callback (or return) that reports its acknowledgement: for every
// record sent one at a time, for every 8th record of a pipelined run (see
// asyncSampleEvery); for e2e, for every record, from just before the send to
// the moment the consumer sees it. Throughput is records (and payload bytes,
// values only) divided by the time from the first send to the moment every
// record is acknowledged (Flush returned). MB is 10^6 bytes.
package bench
