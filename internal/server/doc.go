// Package server exposes internal/broker as the strata.v1 gRPC service.
// Domain errors become gRPC status codes in exactly one place, errors.go.
package server
