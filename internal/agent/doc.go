// Package agent runs one Strata node: it loads the configuration, starts
// the parts in order (gRPC listener, raft groups, broker, gRPC service,
// HTTP endpoints) and stops them in reverse.
package agent
