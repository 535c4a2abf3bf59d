package console

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/stratalog/strata/internal/auth"
	"github.com/stratalog/strata/internal/broker"
	"github.com/stratalog/strata/internal/topic"
)

// QueueSettings are a queue group's settings.
type QueueSettings struct {
	AckTimeoutMs     int64  `json:"ack_timeout_ms"`
	MaxDeliveries    int32  `json:"max_deliveries"`
	BackoffInitialMs int64  `json:"backoff_initial_ms"`
	BackoffMaxMs     int64  `json:"backoff_max_ms"`
	MaxLeased        int32  `json:"max_leased_per_partition"`
	DeadLetterTopic  string `json:"dead_letter_topic"`
	Ordering         string `json:"ordering"`
}

// QueuePartition is a queue group's state on one partition, as the
// partition's leader has it (only the leader knows the leases).
type QueuePartition struct {
	Partition            int32   `json:"partition"`
	Leader               string  `json:"leader"`
	Source               string  `json:"source"` // leader, or unknown when the leader could not be asked (numbers -1)
	Floor                int64   `json:"floor"`
	End                  int64   `json:"end_offset"`
	Backlog              int64   `json:"backlog"`
	Available            int64   `json:"available"`
	Leased               int64   `json:"leased"`
	Acked                uint64  `json:"acked"`
	DeadLettered         uint64  `json:"dead_lettered"`
	Deliveries           uint64  `json:"deliveries"`
	Redeliveries         uint64  `json:"redeliveries"`
	OldestUnackedSeconds float64 `json:"oldest_unacked_seconds"`
}

// MemberLeases is how many records a member holds leased.
type MemberLeases struct {
	Member string `json:"member"`
	Leased int64  `json:"leased"`
}

// Queue is a queue group described partition by partition.
type Queue struct {
	Topic      string           `json:"topic"`
	Group      string           `json:"group"`
	Settings   QueueSettings    `json:"settings"`
	Partitions []QueuePartition `json:"partitions"`
	Members    []MemberLeases   `json:"members"`
	// Totals sums the partitions whose leader answered.
	Totals QueuePartition `json:"totals"`
	// Unknown counts the partitions whose leader could not be asked, left
	// out of Totals.
	Unknown int `json:"unknown_partitions,omitempty"`
}

// queues lists the queue groups the caller may describe.
func (cl *call) queues() []QueueRef {
	out := []QueueRef{}
	for _, d := range cl.c.b.QueueGroups() {
		if cl.allowed(auth.OpDescribe, auth.ResourceQueue, queueResource(d.Topic, d.Name)) {
			out = append(out, QueueRef{Topic: d.Topic, Group: d.Name})
		}
	}
	return out
}

// queue describes a queue group: each partition as its leader reports it
// (broker.DescribeQueueGroup asks the leaders).
func (cl *call) queue(topic, group string) (Queue, error) {
	if err := cl.require(auth.OpDescribe, auth.ResourceQueue, queueResource(topic, group)); err != nil {
		return Queue{}, err
	}
	d, err := cl.c.b.DescribeQueueGroup(cl.ctx, topic, group)
	if err != nil {
		return Queue{}, err
	}
	s := d.Def.Settings
	q := Queue{Topic: topic, Group: group, Partitions: []QueuePartition{}, Members: []MemberLeases{},
		Settings: QueueSettings{AckTimeoutMs: s.AckTimeoutMs, MaxDeliveries: s.MaxDeliveries, BackoffInitialMs: s.BackoffInitialMs,
			BackoffMaxMs: s.BackoffMaxMs, MaxLeased: s.MaxLeased, DeadLetterTopic: s.DeadLetterTopic, Ordering: s.Ordering}}
	_, refs, err := cl.loadTopic(topic)
	if err != nil {
		return Queue{}, err
	}
	for _, p := range d.Partitions {
		qp := QueuePartition{Partition: p.Partition, Source: "leader", Floor: p.Floor, End: p.HighWatermark, Backlog: p.Backlog,
			Available: p.Available, Leased: p.Leased, Acked: p.Acked, DeadLettered: p.DeadLetters, Deliveries: p.Deliveries,
			Redeliveries: p.Redeliveries, OldestUnackedSeconds: p.OldestUnacked.Seconds()}
		if int(p.Partition) < len(refs) {
			qp.Leader = refs[p.Partition].LeaderID
		}
		if p.Unknown {
			qp.Source = "unknown"
			q.Unknown++
		} else {
			q.Totals.add(qp)
		}
		q.Partitions = append(q.Partitions, qp)
	}
	for _, m := range sortedKeys(d.Members) {
		q.Members = append(q.Members, MemberLeases{Member: m, Leased: d.Members[m]})
	}
	return q, nil
}

// add sums p into t.
func (t *QueuePartition) add(p QueuePartition) {
	t.Backlog += p.Backlog
	t.Available += p.Available
	t.Leased += p.Leased
	t.Acked += p.Acked
	t.DeadLettered += p.DeadLettered
	t.Deliveries += p.Deliveries
	t.Redeliveries += p.Redeliveries
	t.OldestUnackedSeconds = max(t.OldestUnackedSeconds, p.OldestUnackedSeconds)
}

func (c *Console) apiQueues(cl *call) (any, error) {
	return struct {
		QueueGroups []QueueRef `json:"queue_groups"`
	}{cl.queues()}, nil
}

func (c *Console) apiQueue(cl *call) (any, error) {
	return cl.queue(cl.r.PathValue("topic"), cl.r.PathValue("group"))
}

// DeadLetter is a dead letter with its strata-dlq-* headers decoded.
type DeadLetter struct {
	Message
	Reason          string `json:"reason"`
	Error           string `json:"error"`
	SourceTopic     string `json:"source_topic"`
	SourcePartition int32  `json:"source_partition"`
	SourceOffset    int64  `json:"source_offset"`
	Deliveries      int32  `json:"deliveries"`
	// SourceTimeMs is the original record's timestamp.
	SourceTimeMs int64  `json:"source_time_ms"`
	ID           string `json:"id"`
}

// DeadLetters is a page of a queue group's dead letters.
type DeadLetters struct {
	Topic           string       `json:"topic"`
	Group           string       `json:"group"`
	DeadLetterTopic string       `json:"dead_letter_topic"`
	Reason          string       `json:"reason,omitempty"`
	DeadLetters     []DeadLetter `json:"dead_letters"`
	// Browse is the scan that found them (records left empty).
	Browse Browse `json:"scan"`
}

// deadLetters lists a queue group's dead letters (optionally of one
// reason) by browsing its dead-letter topic. The caller needs describe on
// the queue group and consume on the dead-letter topic.
func (cl *call) deadLetters(topicName, group string, q browseQuery, reason string) (DeadLetters, error) {
	if err := validReason(reason); err != nil {
		return DeadLetters{}, err
	}
	if err := cl.require(auth.OpDescribe, auth.ResourceQueue, queueResource(topicName, group)); err != nil {
		return DeadLetters{}, err
	}
	def, err := cl.c.b.QueueGroup(cl.ctx, topicName, group)
	if err != nil {
		return DeadLetters{}, err
	}
	dlq := def.Settings.DeadLetterTopic
	out := DeadLetters{Topic: topicName, Group: group, DeadLetterTopic: dlq, Reason: reason, DeadLetters: []DeadLetter{}}
	q.headerEq = map[string]string{broker.HeaderDLQGroup: group, broker.HeaderDLQTopic: topicName}
	if reason != "" {
		q.headerEq[broker.HeaderDLQReason] = reason
	}
	b, err := cl.browse(dlq, q)
	if errors.Is(err, topic.ErrUnknownTopic) {
		return out, nil // made on the first dead letter
	}
	if err != nil {
		return DeadLetters{}, err
	}
	for _, m := range b.Records {
		out.DeadLetters = append(out.DeadLetters, decodeDeadLetter(m))
	}
	b.Records = []Message{}
	out.Browse = b
	return out, nil
}

// validReason checks a dead-letter reason filter.
func validReason(r string) error {
	switch r {
	case "", "max-deliveries", "rejected":
		return nil
	}
	return fmt.Errorf("%w: reason %q: want max-deliveries, rejected or none", ErrBadRequest, r)
}

// decodeDeadLetter reads the strata-dlq-* headers of a dead letter.
func decodeDeadLetter(m Message) DeadLetter {
	d := DeadLetter{Message: m}
	for _, h := range m.Headers {
		v := h.Value.Text
		switch h.Key {
		case broker.HeaderDLQReason:
			d.Reason = v
		case broker.HeaderDLQError:
			d.Error = v
		case broker.HeaderDLQTopic:
			d.SourceTopic = v
		case broker.HeaderDLQPartition:
			n, _ := strconv.ParseInt(v, 10, 32)
			d.SourcePartition = int32(n)
		case broker.HeaderDLQOffset:
			d.SourceOffset, _ = strconv.ParseInt(v, 10, 64)
		case broker.HeaderDLQDeliveries:
			n, _ := strconv.ParseInt(v, 10, 32)
			d.Deliveries = int32(n)
		case broker.HeaderDLQTimestamp:
			d.SourceTimeMs, _ = strconv.ParseInt(v, 10, 64)
		case broker.HeaderDLQID:
			d.ID = v
		}
	}
	return d
}

func (c *Console) apiDeadLetters(cl *call) (any, error) {
	v := cl.r.URL.Query()
	q, err := c.parseBrowse(v)
	if err != nil {
		return nil, err
	}
	return cl.deadLetters(cl.r.PathValue("topic"), cl.r.PathValue("group"), q, v.Get("reason"))
}

// redriveRequest is the body of POST /api/v1/queues/{topic}/{group}/redrive.
type redriveRequest struct {
	// Reason moves only dead letters of this reason; empty: all.
	Reason string `json:"reason"`
	// Max is the most dead letters to move; 0: all.
	Max int `json:"max"`
	// Confirm must be true.
	Confirm bool `json:"confirm"`
}

// Redriven is what a redrive moved.
type Redriven struct {
	Topic    string `json:"topic"`
	Group    string `json:"group"`
	Reason   string `json:"reason,omitempty"`
	Redriven int    `json:"redriven"`
}

func (c *Console) apiRedrive(cl *call) (any, error) {
	topic, group := cl.r.PathValue("topic"), cl.r.PathValue("group")
	var req redriveRequest
	if err := cl.decode(&req); err != nil {
		return nil, err
	}
	if err := validReason(req.Reason); err != nil {
		return nil, err
	}
	if req.Max < 0 || req.Max > 1<<31-1 {
		return nil, fmt.Errorf("%w: max %d: want 0 (all) or a positive count", ErrBadRequest, req.Max)
	}
	// The gRPC service's checks for RedriveQueueGroup.
	if err := cl.require(auth.OpAdmin, auth.ResourceQueue, queueResource(topic, group)); err != nil {
		return nil, err
	}
	if err := cl.require(auth.OpProduce, auth.ResourceTopic, topic); err != nil {
		return nil, err
	}
	def, err := c.b.QueueGroup(cl.ctx, topic, group)
	if err != nil {
		return nil, err
	}
	if err := cl.require(auth.OpConsume, auth.ResourceTopic, def.Settings.DeadLetterTopic); err != nil {
		return nil, err
	}
	if !req.Confirm {
		return nil, fmt.Errorf("%w: a redrive writes dead letters back into %q: send \"confirm\": true", ErrConfirm, topic)
	}
	n, err := c.b.RedriveQueueGroup(cl.ctx, topic, group, req.Reason, req.Max, nil)
	cl.adminChange("redrive_queue_group", queueResource(topic, group), err)
	if err != nil {
		return nil, err
	}
	return Redriven{Topic: topic, Group: group, Reason: req.Reason, Redriven: n}, nil
}
