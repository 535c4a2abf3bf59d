package broker

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"strconv"
	"sync"
	"time"

	"github.com/stratalog/strata/api/record"
	"github.com/stratalog/strata/cluster"
	"github.com/stratalog/strata/internal/queue"
)

// Queue groups: members share a topic's records one by one. Definitions
// live in the metadata group; per-record state (delivery counts, acks,
// backoffs, dead-letter marks, the floor) lives with each partition in its
// data group (a queue.State, applied by cluster's data FSM); leases live
// in the partition leader's memory (a queue.Leader, kept here in
// queue_lead.go). See doc.go.

// HeaderDeliverAt is the record header that delays a record for queue
// groups: its value is a time, as unix milliseconds in decimal or as
// RFC 3339. Queue groups lease the record no earlier; stream groups see it
// at its offset as any other record.
const HeaderDeliverAt = "strata-deliver-at"

// queueManager holds what the broker keeps for queue groups beyond the
// replicated state: the wake-up channel of long-polling receivers and the
// loop that expires leases and writes dead letters.
type queueManager struct {
	b    *Broker
	seed maphash.Seed

	mu     sync.Mutex
	notify chan struct{} // closed and replaced when records may have become available
	kick   chan struct{} // wakes the loop at once
	rr     uint32        // receive round-robin start

	// dlqEpochs holds, per dead-letter producer and partition, the
	// producer epoch that partition last accepted (queue_dlq_producer.go).
	dlqEpochs sync.Map
	// redrives holds a chan struct{} of capacity 1 per queue group and
	// dead-letter partition: one redrive at a time (redriveTurn).
	redrives sync.Map
	// leads holds the leader's side of the queue states of partitions led
	// here (queue_lead.go).
	leads leads

	// countsInMemory is a failpoint that only tests set (before Start): a
	// receive counts deliveries in the leader's memory instead of through
	// raft (a deliver command with queue.FlagNoCount), so that a restart
	// forgets them. It exists to show that the delivery-count test fails
	// without the protection; no configuration reaches it.
	countsInMemory bool
}

func newQueueManager(b *Broker) *queueManager {
	return &queueManager{b: b, seed: maphash.MakeSeed(), notify: make(chan struct{}), kick: make(chan struct{}, 1)}
}

// waitCh returns the channel the next change closes.
func (m *queueManager) waitCh() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.notify
}

// changed wakes long-polling receivers.
func (m *queueManager) changed() {
	m.mu.Lock()
	close(m.notify)
	m.notify = make(chan struct{})
	m.mu.Unlock()
}

// wake makes the loop run now.
func (m *queueManager) wake() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// CreateQueueGroup defines a queue group on a topic, or updates its
// settings (zero fields take the defaults). It returns the stored group. A
// new group starts, on each partition, at the first record retained when
// it is first used there; ResetQueueGroup to SpecLatest skips history.
func (b *Broker) CreateQueueGroup(ctx context.Context, topic, group string, s queue.Settings) (queue.Def, error) {
	if err := ValidName("group", group); err != nil {
		return queue.Def{}, err
	}
	// The metadata leader decides, as for topics: a follower names it
	// rather than answering from a view of the topics that may lag.
	if !b.node.Meta.IsLeader() {
		return queue.Def{}, b.notLeader(b.node.Meta, "metadata")
	}
	if _, err := b.knownTopic(topic); err != nil {
		return queue.Def{}, err
	}
	s, err := completeQueueSettings(topic, group, s)
	if err != nil {
		return queue.Def{}, err
	}
	res, err := b.applyMeta(ctx, cluster.PutQueueCmd(queue.Def{Name: group, Topic: topic, Settings: s}))
	if err != nil {
		return queue.Def{}, mapClusterErr(err)
	}
	b.queue.changed()
	return res.(queue.Def), nil
}

// QueueGroup returns a queue group's definition.
func (b *Broker) QueueGroup(ctx context.Context, topic, group string) (queue.Def, error) {
	d, ok := lookupMeta(ctx, b, func() (queue.Def, bool) { return b.node.MetaFSM.QueueDef(topic, group) })
	if !ok {
		if _, err := b.knownTopic(topic); err != nil { // waited already
			return d, err
		}
		return d, fmt.Errorf("%w: %q on topic %q", ErrUnknownQueueGroup, group, topic)
	}
	return d, nil
}

// QueueGroups returns every queue group.
func (b *Broker) QueueGroups() []queue.Def { return b.node.MetaFSM.QueueDefs() }

// queueCursor is one queue group on one partition led here, ready for the
// leader's operations.
type queueCursor struct {
	def  queue.Def
	dg   *cluster.DataGroup
	part *cluster.Partition
	key  cluster.PartKey
	q    *queue.State // the replicated state
	lead *queueLead   // this leader's scratch for q
	term uint64
}

func ackTimeout(d queue.Def) time.Duration {
	return time.Duration(d.Settings.AckTimeoutMs) * time.Millisecond
}

// cursor returns the group's state on a partition this node leads: it
// creates the state through raft on first use (at the log start offset)
// and loads the leader's scratch once per raft term and generation. ok is
// false while another goroutine loads it. A new leader that has not yet applied what
// its predecessor committed answers ErrNotReady: its state may miss the
// deliveries of the predecessor's last rounds, and a load from it would
// lease those records again.
func (b *Broker) cursor(ctx context.Context, def queue.Def, partition int32) (queueCursor, bool, error) {
	return b.cursorWait(ctx, def, partition, 0)
}

// cursorWait is cursor, first waiting up to wait for a new leader to
// catch up.
func (b *Broker) cursorWait(ctx context.Context, def queue.Def, partition int32, wait time.Duration) (c queueCursor, ok bool, err error) {
	_, dg, k, err := b.partition(ctx, def.Topic, partition)
	if err != nil {
		return c, false, err
	}
	what := fmt.Sprintf("%s/%d", def.Topic, partition)
	if wait > 0 {
		if err := b.awaitCaughtUp(ctx, dg.Group, wait); err != nil {
			return c, false, err
		}
	}
	// The term the scratch is loaded for is one in which this node had
	// applied every earlier leader's commands.
	term := dg.Group.ReadyTerm()
	if term == 0 {
		if !dg.Group.IsLeader() {
			return c, false, b.notLeader(dg.Group, what)
		}
		return c, false, fmt.Errorf("%w: %s: the new leader is still applying what its predecessor committed", ErrNotReady, what)
	}
	p := dg.FSM.Partition(k)
	if p == nil || p.Failed() {
		return c, false, fmt.Errorf("%w: %s", ErrNotReady, what)
	}
	c = queueCursor{def: def, dg: dg, part: p, key: k, term: term}
	if c.q = p.Queue(def.Name); c.q == nil {
		cmd := queue.Cmd{Op: queue.OpInit, TopicID: k.TopicID, Partition: k.Partition, Group: def.Name, Gen: 1, Arg: p.Log.StartOffset()}
		if _, err := dg.Group.Apply(ctx, cluster.QueueCmd(&cmd)); err != nil {
			return c, false, b.queueErr(dg, what, err)
		}
		if c.q = p.Queue(def.Name); c.q == nil {
			return c, false, fmt.Errorf("%w: %s", ErrNotReady, what)
		}
	}
	c.lead = b.queue.leads.get(dg, p, def.Name, c.q)
	if c.lead.Loaded(c.term) {
		return c, true, nil
	}
	from, to, ok := c.lead.BeginLoad(b.now(), ackTimeout(def))
	if !ok {
		return c, false, nil
	}
	c.lead.FinishLoad(c.term, b.queue.recInfos(p, from, to))
	return c, true, nil
}

// queueErr maps an error of a queue command.
func (b *Broker) queueErr(dg *cluster.DataGroup, what string, err error) error {
	switch {
	case errors.Is(err, cluster.ErrNotLeader):
		return b.notLeader(dg.Group, what)
	case errors.Is(err, queue.ErrReset), errors.Is(err, queue.ErrBusy):
		return fmt.Errorf("%w: %s: %w", ErrQueueConflict, what, err)
	case errors.Is(err, queue.ErrNotReady):
		return fmt.Errorf("%w: %s: %w", ErrNotReady, what, err)
	}
	return mapClusterErr(err)
}

// recInfo describes a record for the leader's scratch.
func (m *queueManager) recInfo(r *record.Record) queue.RecInfo {
	ri := queue.RecInfo{Offset: r.Offset}
	if r.Key != nil {
		ri.HasKey, ri.KeyHash = true, maphash.Bytes(m.seed, r.Key)
	}
	for _, h := range r.Headers {
		if h.Key == HeaderDeliverAt {
			ri.DeliverAt = parseDeliverAt(string(h.Value))
		}
	}
	return ri
}

// parseDeliverAt reads a deliver-at header: unix ms or RFC 3339. A value
// that is neither is ignored (0: no delay).
func parseDeliverAt(v string) int64 {
	if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
		return ms
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t.UnixMilli()
	}
	return 0
}

// recInfos reads the records [from, to) of a partition for a load.
// Records it cannot read (retention removed them) are left out.
func (m *queueManager) recInfos(p *cluster.Partition, from, to int64) []queue.RecInfo {
	out := make([]queue.RecInfo, 0, to-from)
	for off := max(from, p.Log.StartOffset()); off < to; {
		data, err := p.Log.Read(off, 1<<20)
		if err != nil || len(data) == 0 {
			break
		}
		next, err := record.DecodeBatchesFrom(data, off, func(r record.Record) bool {
			if r.Offset >= to {
				return false
			}
			out = append(out, m.recInfo(&r))
			return true
		})
		if err != nil || next <= off {
			break
		}
		off = next
	}
	return out
}

// readRecords returns the records at the given offsets (sorted), reading
// each stretch once. Offsets it cannot read are missing from the map.
func readRecords(p *cluster.Partition, offs []int64) map[int64]record.Record {
	out := make(map[int64]record.Record, len(offs))
	for i := 0; i < len(offs); {
		off := offs[i]
		data, err := p.Log.Read(off, 256<<10)
		if err != nil || len(data) == 0 {
			i++
			continue
		}
		j := i
		_, _ = record.DecodeBatchesFrom(data, off, func(r record.Record) bool {
			for j < len(offs) && offs[j] < r.Offset {
				j++
			}
			if j < len(offs) && offs[j] == r.Offset {
				out[r.Offset] = r
				j++
			}
			return j < len(offs)
		})
		i = max(j, i+1)
	}
	return out
}
