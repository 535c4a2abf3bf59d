// Package agent runs one Strata node: it loads the configuration, starts
// the parts in order (gRPC listener, raft groups, broker, gRPC service,
// HTTP endpoints) and stops them in reverse. It also owns what operators
// watch (observe.go): the logger every part writes to, with the node's id
// and each part's component, its level changeable at run time through
// PUT /api/v1/log-level, and the registry of every metric on /metrics.
package agent
