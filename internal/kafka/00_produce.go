package kafka

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/auth"
	"github.com/stratalog/strata/internal/broker"
	"github.com/stratalog/strata/internal/topic"
)

// Produce 3-7. Each partition's batch is checked and handed to raft
// (broker.ProduceAsync) in the handler body, in request order, so a
// pipelining idempotent producer's batches keep their order while several
// requests wait for their commits; finish waits for them all.
//
// Batches are stored byte for byte: the broker does not decompress, so
// every codec (none, gzip, snappy, lz4, zstd) passes through. The batch
// size limit is the topic's max.message.bytes (MESSAGE_TOO_LARGE above
// it). Idempotent producers' ids, epochs and sequences are checked by the
// broker; a recognised retry answers the original offset with no error.
//
// acks: Strata acknowledges a batch once raft has committed it (fsynced
// on a majority of the partition's replicas), so acks=1 and acks=-1 both
// mean committed. With acks=0 nothing is answered, as Kafka does; the
// request still waits for its commits before the connection's next
// response goes out, which paces such a producer.
//
// Transactions are not supported: a request with a transactional id or a
// transactional batch is refused with TRANSACTIONAL_ID_AUTHORIZATION_FAILED
// (no principal may use a transactional id here), which clients report as
// a fatal error rather than retrying; a control batch is INVALID_RECORD.
func init() { register(0, 3, 7, handleProduce) }

// Batch attribute bits (Kafka's RecordBatch attributes).
const (
	attrTransactional = 0x10
	attrControl       = 0x20
	// batchAttrsOffset is where a v2 batch's int16 attributes are: after
	// base offset (8), length (4), leader epoch (4), magic (1), CRC (4).
	batchAttrsOffset = 21
)

// producePart is one partition's batch on its way.
type producePart struct {
	topic, part int // indexes into the response
	code        int16
	wait        func() (broker.ProduceResult, error)
}

func handleProduce(s *Server, r *request) (finish, error) {
	req := r.kreq.(*kmsg.ProduceRequest)
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	timeout := time.Duration(req.TimeoutMillis) * time.Millisecond
	if timeout <= 0 {
		timeout = defaultAdminTimeout
	}
	ctx, cancel := context.WithTimeout(s.ctx, timeout)
	var parts []producePart
	for ti, rt := range req.Topics {
		st := kmsg.NewProduceResponseTopic()
		st.Topic = rt.Topic
		code := s.produceTopicCode(r, req, rt.Topic)
		for pi, rp := range rt.Partitions {
			sp := kmsg.NewProduceResponseTopicPartition()
			sp.Partition = rp.Partition
			st.Partitions = append(st.Partitions, sp)
			pp := producePart{topic: ti, part: pi, code: code}
			if pp.code == 0 {
				pp.code = batchCode(rp.Records)
			}
			if pp.code == 0 {
				pp.wait = s.b.ProduceAsync(ctx, rt.Topic, rp.Partition, rp.Records)
			}
			parts = append(parts, pp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return func() kmsg.Response {
		defer cancel()
		for _, pp := range parts {
			s.finishPart(ctx, r, resp, req, pp)
		}
		if req.Acks == 0 {
			return nil
		}
		return resp
	}, nil
}

// produceTopicCode is the error every partition of a topic gets before
// its batches are looked at: acks, transactions, permission, and an
// unknown topic (created first when auto creation is on).
func (s *Server) produceTopicCode(r *request, req *kmsg.ProduceRequest, name string) int16 {
	switch {
	case req.Acks != 0 && req.Acks != 1 && req.Acks != -1:
		return kerr.InvalidRequiredAcks.Code
	case req.TransactionID != nil:
		return kerr.TransactionalIDAuthorizationFailed.Code
	case !s.allowed(r, auth.OpProduce, auth.ResourceTopic, name):
		return kerr.TopicAuthorizationFailed.Code
	}
	if s.cfg.AutoCreateTopics {
		if _, err := s.b.Topic(s.ctx, name); errors.Is(err, topic.ErrUnknownTopic) &&
			s.allowed(r, auth.OpCreate, auth.ResourceTopic, name) {
			if _, err := s.autoCreate(name); err != nil {
				return errorCode(err)
			}
		}
	}
	return 0
}

// batchCode refuses what the broker would store but Strata cannot honour:
// transactional and control batches. The broker checks the rest (layout,
// CRC, size, one batch per partition as Kafka requires from v3).
func batchCode(batch []byte) int16 {
	if len(batch) < batchAttrsOffset+2 {
		return 0 // the broker answers CORRUPT_MESSAGE
	}
	attrs := uint16(batch[batchAttrsOffset])<<8 | uint16(batch[batchAttrsOffset+1])
	switch {
	case attrs&attrControl != 0:
		return kerr.InvalidRecord.Code
	case attrs&attrTransactional != 0:
		return kerr.TransactionalIDAuthorizationFailed.Code
	}
	return 0
}

// finishPart waits for one partition's commit and fills its answer.
func (s *Server) finishPart(ctx context.Context, r *request, resp *kmsg.ProduceResponse, req *kmsg.ProduceRequest, pp producePart) {
	sp := &resp.Topics[pp.topic].Partitions[pp.part]
	if pp.wait == nil {
		sp.ErrorCode = pp.code
		return
	}
	res, err := pp.wait()
	if err != nil {
		sp.ErrorCode = errorCode(err)
		return
	}
	sp.BaseOffset = res.BaseOffset
	if r.version >= 5 {
		topic := req.Topics[pp.topic].Topic
		if pb, err := s.b.LeaderBounds(ctx, topic, sp.Partition, res.BaseOffset); err == nil {
			sp.LogStartOffset = pb.LogStartOffset
		}
	}
}
