// Package server exposes internal/broker as the strata.v1 gRPC service.
// Domain errors become gRPC status codes in exactly one place, errors.go.
// An Observer (observe.go) counts and times every call by method and
// status code and logs the slow ones.
package server
