package broker

import (
	"context"
	"maps"
	"slices"
	"sync"

	"github.com/stratalog/strata/cluster"
)

// A describe (DescribeGroup, DescribeQueueGroup) answers on any node with
// each partition's numbers as its leader has them: a node's own replica
// of a partition it follows may be behind and does not see the leases,
// and a partition it holds no replica of reads as empty. The partitions
// this node leads are measured here; for the others, each leader is asked
// once for all the partitions it leads (Peers.PartitionLags,
// Peers.DescribeQueueLed), all leaders at once, each within
// Config.DescribeTimeout. A partition whose leader is not known or does
// not answer in time is marked unknown, and the describe still answers.
// The metrics never come this way: each leader reports its own partitions.

// groupLeader returns the node that leads data group gid and, when that
// is another node, its gRPC address ("" when unknown).
func (b *Broker) groupLeader(gid uint32) (id, addr string) {
	id = b.node.GroupLeader(gid)
	if id != "" && id != b.NodeID() {
		b.node.MetaFSM.Read(func(s *cluster.MetaState) { addr = s.Nodes[id].GRPCAddr })
	}
	return id, addr
}

// askLeaders calls ask once for each address of byAddr, all at once, each
// call within DescribeTimeout, and returns the answers of the nodes that
// answered; the others are logged and left out.
func askLeaders[K, T any](ctx context.Context, b *Broker, byAddr map[string][]K,
	ask func(ctx context.Context, addr string, keys []K) (T, error)) map[string]T {
	out := make(map[string]T, len(byAddr))
	if len(byAddr) == 0 || b.peers == nil {
		return out
	}
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	for _, addr := range slices.Sorted(maps.Keys(byAddr)) {
		wg.Go(func() {
			actx, cancel := context.WithTimeout(ctx, b.cfg.DescribeTimeout)
			defer cancel()
			v, err := ask(actx, addr, byAddr[addr])
			if err != nil {
				b.log.Warn("describe: a partition leader did not answer; its partitions show as unknown",
					"addr", addr, "partitions", len(byAddr[addr]), "err", err)
				return
			}
			mu.Lock()
			out[addr] = v
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}
