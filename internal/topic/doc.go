// Package topic is Strata's domain vocabulary, shared by every layer from
// the replicated state machines (cluster) up to the gRPC and Kafka
// listeners (internal/server, internal/kafka).
//
// # Types
//
// Topic, Config, Assignment and PartitionOffset are a topic as the metadata
// group stores it, its configuration, the placement of one partition and a
// consumer group's offset of one partition. Package cluster replicates them
// inside its commands and snapshots, encoded as JSON: their JSON names are
// a format that replicas of different versions share (cluster's golden
// tests pin it) and must never change.
//
// # Errors
//
// The errors that mean the same thing wherever they are produced: an
// unknown topic, partition, producer or node, a topic that exists, and the
// idempotent producer's sequence and epoch errors (SequenceError,
// FencedError). Each is defined once, here, and travels up unchanged: the
// metadata state machine returns ErrUnknownTopic and the broker's own
// checks return the same value, so callers compare with errors.Is against
// one sentinel whichever layer refused the request. internal/server maps
// each to a gRPC code and an ErrorReason of api/v1 in one table; the Kafka
// listener maps them to Kafka error codes.
//
// It is a leaf package: it imports nothing from the rest of Strata.
package topic
