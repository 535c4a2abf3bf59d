package cluster

import (
	"errors"
	"fmt"

	"github.com/hashicorp/raft"

	"github.com/stratalog/strata/internal/queue"
)

// Queue groups' state on a partition lives in the partition's data group:
// the data FSM applies queue commands (package queue holds the state, its
// commands and their encoding) on every replica, and snapshots the states
// with the partition. The partition's leader drives them (internal/broker).

// QueueCmd returns the data-group command that applies c: the data FSM's
// queue command type, then c's encoding.
func QueueCmd(c *queue.Cmd) []byte {
	b := make([]byte, 1, 1+c.SizeHint())
	b[0] = dataCmdQueue
	return c.Append(b)
}

// Queue returns a queue group's state on the partition, or nil.
func (p *Partition) Queue(group string) *queue.State { return p.queues.Get(group) }

func (f *DataFSM) applyQueue(l *raft.Log) any {
	c, err := queue.DecodeCmd(l.Data[1:])
	if err != nil {
		panic(fmt.Sprintf("cluster: queue command at index %d: %v", l.Index, err))
	}
	p := f.Partition(PartKey{TopicID: c.TopicID, Partition: c.Partition})
	if p == nil {
		return fmt.Errorf("%w: topic id %d partition %d", ErrUnknownPartition, c.TopicID, c.Partition)
	}
	if err := p.queues.Apply(&c); err != nil {
		if errors.Is(err, queue.ErrNotReady) {
			return fmt.Errorf("%w on %s/%d", err, p.Topic, c.Partition)
		}
		return err
	}
	return nil
}
