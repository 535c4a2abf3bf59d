package kafka

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/auth"
	"github.com/stratalog/strata/internal/broker"
)

// Fetch 4-11. Only a partition's leader answers for it
// (NOT_LEADER_OR_FOLLOWER elsewhere, so clients refresh their metadata):
// a follower's high watermark may lag, and a consumer must never see it
// go back, not even across a failover (a new leader still applying what
// its predecessor committed reports at least the offset asked for).
//
// A fetch long-polls all its partitions at once: it answers as soon as
// MinBytes are there across them, or an error is, or MaxWaitMillis
// passes. MaxBytes bounds the whole answer and PartitionMaxBytes each
// partition's part; as in Kafka (KIP-74) the first partition with data
// gets at least its first batch even when that is larger, and any later
// partition's data must fit. LastStableOffset is the high watermark
// (there are no transactions), so read_committed reads what
// read_uncommitted does.
//
// Fetch sessions (KIP-227, v7+) are not kept: every answer has session
// id 0, which makes clients fetch without sessions, and a request naming
// a session (an id, or an incremental epoch) gets FETCH_SESSION_ID_NOT_FOUND.
func init() { register(1, 4, 11, handleFetch) }

const (
	// maxFetchWait caps a fetch's long poll.
	maxFetchWait = 30 * time.Second
	// maxFetchResponseBytes caps a fetch's answer, as Kafka's broker
	// setting fetch.max.bytes (55 MiB) does.
	maxFetchResponseBytes = 55 << 20
)

// fetchPart is one requested partition.
type fetchPart struct {
	topic, part int // indexes into the response
	name        string
	partition   int32
	offset      int64
	maxBytes    int
	allowed     bool
}

func handleFetch(s *Server, r *request) (finish, error) {
	req := r.kreq.(*kmsg.FetchRequest)
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	if r.version >= 7 && (req.SessionID != 0 || req.SessionEpoch > 0) {
		resp.ErrorCode = kerr.FetchSessionIDNotFound.Code
		return done(resp), nil
	}
	var parts []fetchPart
	for ti, rt := range req.Topics {
		st := kmsg.NewFetchResponseTopic()
		st.Topic = rt.Topic
		ok := s.allowed(r, auth.OpConsume, auth.ResourceTopic, rt.Topic)
		for pi, rp := range rt.Partitions {
			sp := kmsg.NewFetchResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.RecordBatches = []byte{} // librdkafka reads a null record set as malformed
			st.Partitions = append(st.Partitions, sp)
			parts = append(parts, fetchPart{topic: ti, part: pi, name: rt.Topic, partition: rp.Partition,
				offset: rp.FetchOffset, maxBytes: int(rp.PartitionMaxBytes), allowed: ok})
		}
		resp.Topics = append(resp.Topics, st)
	}
	start := time.Now()
	return func() kmsg.Response {
		wait := min(max(time.Duration(req.MaxWaitMillis)*time.Millisecond, 0), maxFetchWait)
		ctx, cancel := context.WithDeadline(s.ctx, start.Add(wait))
		defer cancel()
		leases := make([]*broker.FetchLease, len(parts))
		out := s.longPoll(ctx, req, resp, parts, leases)
		return &leasedResponse{Response: out, leases: leases}
	}, nil
}

// leasedResponse is a fetch answer whose record batches alias pooled read
// buffers (broker.FetchLeased): the connection writes it, then releases
// them, so a stream of fetches reuses memory instead of allocating and
// zeroing a buffer per partition per fetch.
type leasedResponse struct {
	kmsg.Response
	leases []*broker.FetchLease
}

func (l *leasedResponse) release() {
	for _, le := range l.leases {
		le.Release()
	}
}

// longPoll reads every partition, and while there is less than MinBytes,
// no error and time left, waits for data on any of them and reads again.
func (s *Server) longPoll(ctx context.Context, req *kmsg.FetchRequest, resp *kmsg.FetchResponse, parts []fetchPart, leases []*broker.FetchLease) kmsg.Response {
	for {
		n, early, waits := s.fetchPass(ctx, req, resp, parts, leases)
		if early || n >= int(req.MinBytes) || ctx.Err() != nil {
			return resp
		}
		if err := s.b.WaitAny(ctx, waits); err != nil {
			// The wait is over: one last read answers what came meanwhile.
			s.fetchPass(s.ctx, req, resp, parts, leases)
			return resp
		}
	}
}

// fetchPass fills every partition's answer without waiting. It returns
// the bytes read, whether an error makes the answer go out at once, and
// where to wait for more: each readable partition past what it holds.
func (s *Server) fetchPass(ctx context.Context, req *kmsg.FetchRequest, resp *kmsg.FetchResponse, parts []fetchPart, leases []*broker.FetchLease) (n int, early bool, waits []broker.PartitionOffset) {
	budget := maxFetchResponseBytes
	if req.MaxBytes > 0 {
		budget = min(budget, int(req.MaxBytes))
	}
	for i, fp := range parts {
		sp := &resp.Topics[fp.topic].Partitions[fp.part]
		sp.RecordBatches = []byte{}
		leases[i].Release() // a pass reads every partition again
		leases[i] = nil
		read, code := s.fetchPartition(ctx, sp, fp, budget-n, n > 0, &leases[i])
		sp.ErrorCode = code
		if code != 0 {
			early = true
			continue
		}
		n += read
		waits = append(waits, broker.PartitionOffset{Topic: fp.name, Partition: fp.partition,
			Offset: max(fp.offset, sp.HighWatermark)})
	}
	return n, early, waits
}

// fetchPartition reads one partition into sp, at most limit bytes unless
// first (nothing read yet in this answer): then at least one batch.
func (s *Server) fetchPartition(ctx context.Context, sp *kmsg.FetchResponseTopicPartition, fp fetchPart, limit int, hasData bool, lease **broker.FetchLease) (int, int16) {
	if !fp.allowed {
		return 0, kerr.TopicAuthorizationFailed.Code
	}
	pb, err := s.b.LeaderBounds(ctx, fp.name, fp.partition, fp.offset)
	if err != nil {
		return 0, errorCode(err)
	}
	setBounds(sp, pb.LogStartOffset, pb.HighWatermark)
	limit = min(limit, fp.maxBytes)
	if limit <= 0 && hasData {
		return 0, 0 // no room left: bounds only, as Kafka answers
	}
	res, l, err := s.b.FetchLeased(ctx, fp.name, fp.partition, fp.offset, max(limit, 1), 0)
	if err != nil {
		return 0, errorCode(err)
	}
	setBounds(sp, res.LogStartOffset, res.HighWatermark)
	if hasData && len(res.Records) > limit {
		l.Release()
		return 0, 0 // a later partition's first batch that does not fit
	}
	*lease = l
	if len(res.Records) > 0 {
		sp.RecordBatches = res.Records
	}
	return len(res.Records), 0
}

func setBounds(sp *kmsg.FetchResponseTopicPartition, logStart, hw int64) {
	sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = hw, hw, logStart
}
