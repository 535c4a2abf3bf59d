package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/auth"
	"github.com/stratalog/strata/internal/broker"
)

// ListOffsets 1-4: the earliest offset (timestamp -2), the latest (-1: the
// high watermark, which is also the last stable offset, so both isolation
// levels get it), or the first offset whose record is at or after a
// timestamp, with that record's timestamp (offset and timestamp -1 when no
// record is that recent). Only the partition's leader answers
// (NOT_LEADER_OR_FOLLOWER elsewhere), so the latest offset never seems to
// go back; a new leader answers once it has applied what its predecessor
// committed. Describe permission on the topic, else
// TOPIC_AUTHORIZATION_FAILED.
func init() { register(2, 1, 4, handleListOffsets) }

// Kafka's special ListOffsets timestamps.
const (
	tsLatest   = -1
	tsEarliest = -2
)

func handleListOffsets(s *Server, r *request) (finish, error) {
	req := r.kreq.(*kmsg.ListOffsetsRequest)
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	allowed := make([]bool, len(req.Topics))
	for i, rt := range req.Topics {
		allowed[i] = s.allowed(r, auth.OpDescribe, auth.ResourceTopic, rt.Topic)
	}
	return func() kmsg.Response {
		ctx, cancel := context.WithTimeout(s.ctx, defaultAdminTimeout)
		defer cancel()
		for i, rt := range req.Topics {
			st := kmsg.NewListOffsetsResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewListOffsetsResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.Timestamp, sp.Offset, sp.LeaderEpoch = -1, -1, -1
				if !allowed[i] {
					sp.ErrorCode = kerr.TopicAuthorizationFailed.Code
				} else {
					sp.ErrorCode = s.listOffset(ctx, &sp, rt.Topic, rp)
				}
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp
	}, nil
}

// listOffset answers one partition.
func (s *Server) listOffset(ctx context.Context, sp *kmsg.ListOffsetsResponseTopicPartition, topic string, rp kmsg.ListOffsetsRequestTopicPartition) int16 {
	switch rp.Timestamp {
	case tsLatest, tsEarliest:
		if _, err := s.b.LeaderBounds(ctx, topic, rp.Partition, 0); err != nil {
			return errorCode(err)
		}
		spec := broker.SpecLatest
		if rp.Timestamp == tsEarliest {
			spec = broker.SpecEarliest
		}
		off, err := s.b.ListOffsets(ctx, topic, rp.Partition, spec, 0)
		if err != nil {
			return errorCode(err)
		}
		sp.Offset = off
		return 0
	}
	if rp.Timestamp < 0 {
		return kerr.InvalidRequest.Code
	}
	off, ts, found, err := s.b.LeaderOffsetForTime(ctx, topic, rp.Partition, rp.Timestamp)
	if err != nil {
		return errorCode(err)
	}
	if found {
		sp.Offset, sp.Timestamp = off, ts
	}
	return 0
}
