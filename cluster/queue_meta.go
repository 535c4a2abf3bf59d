package cluster

import (
	"fmt"
	"maps"
	"slices"

	"github.com/stratalog/strata/internal/queue"
	"github.com/stratalog/strata/internal/topic"
)

// Queue group definitions (queue.Def) live in the metadata group; the
// state of a queue group on a partition lives in the partition's data
// group (data_queue.go).

// DLQProducerID is the producer id partition p of d's topic writes dead
// letters with. It has InternalProducerBit set, which lets it close a gap
// in its sequence numbers by starting a new epoch (see checkSeq).
func DLQProducerID(d queue.Def, p int32) int64 {
	return InternalProducerBit | (d.ProducerIDBase + int64(p))
}

func queueKey(topic, name string) string { return topic + "/" + name }

// PutQueueCmd creates a queue group, or updates the settings of an
// existing one (its state is kept).
func PutQueueCmd(d queue.Def) []byte { return mustJSON(metaCmd{Op: opPutQueue, Queue: &d}) }

// QueueDef returns a queue group's definition.
func (f *MetaFSM) QueueDef(topic, name string) (queue.Def, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	d, ok := f.state.Queues[queueKey(topic, name)]
	if !ok {
		return queue.Def{}, false
	}
	return *d, true
}

// QueueDefs returns every queue group, sorted by topic and name.
func (f *MetaFSM) QueueDefs() []queue.Def {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]queue.Def, 0, len(f.state.Queues))
	for _, k := range slices.Sorted(maps.Keys(f.state.Queues)) {
		out = append(out, *f.state.Queues[k])
	}
	return out
}

// applyQueueLocked applies a queue-group command. Caller must hold f.mu.
func (f *MetaFSM) applyQueueLocked(c *metaCmd) any {
	s := f.state
	if s.Queues == nil {
		s.Queues = map[string]*queue.Def{}
	}
	d := *c.Queue
	t, ok := s.Topics[d.Topic]
	if !ok {
		return fmt.Errorf("%w: %q", topic.ErrUnknownTopic, d.Topic)
	}
	k := queueKey(d.Topic, d.Name)
	if old, ok := s.Queues[k]; ok && old.TopicID == t.ID {
		old.Settings = d.Settings
		return *old
	}
	d.TopicID = t.ID
	d.ProducerIDBase = s.NextProducerID
	s.NextProducerID += int64(len(t.Partitions))
	s.Queues[k] = &d
	return d
}

// deleteTopicQueuesLocked forgets the queue groups of a deleted topic.
// Caller must hold f.mu.
func (f *MetaFSM) deleteTopicQueuesLocked(topic string) {
	for k, d := range f.state.Queues {
		if d.Topic == topic {
			delete(f.state.Queues, k)
		}
	}
}
