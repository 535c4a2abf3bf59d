package cluster

import "context"

// ApplyAsync hands cmd to raft at once and returns a function that waits
// for its result, as Apply does. Commands handed over by successive calls
// from one goroutine enter raft's log in that order, so a caller can
// pipeline ordered writes (a producer's batches to one partition) without
// waiting for each commit in turn.
func (g *Group) ApplyAsync(ctx context.Context, cmd []byte) func() (any, error) {
	ctx, cancel := g.withDeadline(ctx)
	timeout, err := g.enqueueTimeout(ctx)
	if err != nil {
		cancel()
		return func() (any, error) { return nil, g.mapErr("apply", err) }
	}
	f := g.raft.Apply(cmd, timeout)
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
