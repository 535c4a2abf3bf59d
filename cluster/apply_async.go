package cluster

import (
	"context"
	"time"

	"github.com/hashicorp/raft"
)

// ApplyAsync hands cmd to raft at once and returns a function that waits
// for its result, as Apply does. Commands handed over by successive calls
// from one goroutine enter raft's log in that order, so a caller can
// pipeline ordered writes (a producer's batches to one partition) without
// waiting for each commit in turn.
func (g *Group) ApplyAsync(ctx context.Context, cmd []byte) func() (any, error) {
	return g.applyAsync(ctx, func(timeout time.Duration) raft.ApplyFuture { return g.raft.Apply(cmd, timeout) })
}

// ApplyLogAsync is ApplyAsync for an entry with Extensions beside its
// Data (see ProduceExt).
func (g *Group) ApplyLogAsync(ctx context.Context, data, ext []byte) func() (any, error) {
	return g.applyAsync(ctx, func(timeout time.Duration) raft.ApplyFuture {
		return g.raft.ApplyLog(raft.Log{Data: data, Extensions: ext}, timeout)
	})
}

func (g *Group) applyAsync(ctx context.Context, apply func(time.Duration) raft.ApplyFuture) func() (any, error) {
	ctx, cancel := g.withDeadline(ctx)
	timeout, err := g.enqueueTimeout(ctx)
	if err != nil {
		cancel()
		return func() (any, error) { return nil, g.mapErr("apply", err) }
	}
	f := apply(timeout)
	return func() (any, error) {
		defer cancel()
		if err := g.await(ctx, f); err != nil {
			return nil, g.mapErr("apply", err)
		}
		resp := f.Response()
		if err, ok := resp.(error); ok {
			return nil, err
		}
		return resp, nil
	}
}
