// Package server exposes internal/broker as the strata.v1 gRPC service.
//
// # Errors
//
// Domain errors (of packages topic and broker) become gRPC statuses in
// exactly one place, errors.go: its table gives each a code and an
// ErrorReason, sent in an ErrorInfo detail (and in ProduceResponse on a
// ProduceStream). Refusals the server makes by itself (authentication,
// authorization) go through the same table. Peers, which forwards requests
// to other nodes, reads their statuses back into the same domain errors
// with the same table, by reason, so that a forwarded error means what it
// meant where it was made; a status without a reason (from a node older
// than the reasons) is read by its code.
//
// # Observing
//
// An Observer (observe.go) counts and times every call by method and
// status code and logs the slow ones.
package server
