// Package kafka is Strata's Kafka wire-protocol listener: unmodified Kafka
// clients (kcat, librdkafka, franz-go, sarama, kafka-python) produce,
// consume and use consumer groups against the broker.
//
// One file per API, named by its key as franz-go's kfake does
// (00_produce.go, 01_fetch.go, ...); requests and responses are encoded and
// decoded with github.com/twmb/franz-go/pkg/kmsg. The package imports only
// internal/broker (and the leaf internal/auth for SASL/SCRAM and ACLs).
//
// # Connections
//
// A connection reads length-prefixed requests (a length above
// Config.MaxRequestBytes, a malformed header, an unknown API key or version
// closes that connection and nothing else). Each request runs in two
// steps: start, in the reading goroutine and in request order, and finish,
// which may block (a produce waiting for its commit, a fetch long-poll, a
// join waiting for the rebalance) in a goroutine of its own. Responses are
// written in request order, as Kafka requires. Produce batches reach raft
// in the order they arrived (start hands them over), so a pipelining
// idempotent producer keeps its order while several requests wait for
// their commits at once.
//
// # Node ids
//
// Kafka names brokers by int32 ids. A node's id is derived from its Strata
// node id (NodeID32: FNV-1a, 31 bits), the same on every node without any
// state; every node answers Metadata for the whole cluster with each
// node's Kafka address.
package kafka
