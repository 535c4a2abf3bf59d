package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/auth"
	"github.com/stratalog/strata/internal/topic"
)

// OffsetCommit 2-7: offsets go to the broker's committed offsets, the ones
// `strata group describe|reset` show. Last write wins, as in Kafka (an
// offset may move back: broker.CommitKafkaOffsets applies the commit as a
// reset, unlike native commits). A commit with a member id and generation
// is checked against the group (UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION,
// REBALANCE_IN_PROGRESS while the group waits for syncs); generation -1
// without a member id is a simple consumer's, allowed while the group has
// no members. Metadata strings are kept in the coordinator's memory (lost
// on failover; the offsets are not). Needs consume on the group and on
// each topic.
func init() { register(8, 2, 7, handleOffsetCommit) }

func handleOffsetCommit(s *Server, r *request) (finish, error) {
	req := r.kreq.(*kmsg.OffsetCommitRequest)
	resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
	codes := make([][]int16, len(req.Topics)) // per topic, per partition
	for i, t := range req.Topics {
		codes[i] = make([]int16, len(t.Partitions))
	}
	answer := func() kmsg.Response {
		for i, t := range req.Topics {
			rt := kmsg.NewOffsetCommitResponseTopic()
			rt.Topic = t.Topic
			for j, p := range t.Partitions {
				rp := kmsg.NewOffsetCommitResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, codes[i][j]
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}
	all := func(code int16) (finish, error) {
		for i := range codes {
			for j := range codes[i] {
				codes[i][j] = code
			}
		}
		return done(answer()), nil
	}
	if code := s.groupPrecheck(r, req.Group, auth.OpConsume); code != 0 {
		return all(code)
	}
	g := s.groups().getOrCreate(req.Group)
	if code := g.checkCommit(req); code != 0 {
		return all(code)
	}
	offs, idx := s.validCommits(r, req, codes)
	if len(offs) == 0 {
		return done(answer()), nil
	}
	return func() kmsg.Response {
		ctx, cancel := context.WithTimeout(s.ctx, defaultAdminTimeout)
		defer cancel()
		if err := s.b.CommitKafkaOffsets(ctx, req.Group, offs); err != nil {
			code := groupErrorCode(err)
			for _, ij := range idx {
				codes[ij[0]][ij[1]] = code
			}
			return answer()
		}
		g.mu.Lock()
		for k, ij := range idx {
			p := req.Topics[ij[0]].Partitions[ij[1]]
			g.setMetaLocked(offs[k].Topic, p.Partition, p.Metadata)
		}
		g.mu.Unlock()
		return answer()
	}, nil
}

// checkCommit checks a commit's member and generation.
func (g *group) checkCommit(req *kmsg.OffsetCommitRequest) int16 {
	g.mu.Lock()
	defer g.mu.Unlock()
	if req.Generation < 0 && req.MemberID == "" {
		if len(g.members) > 0 {
			return kerr.UnknownMemberID.Code
		}
		return 0
	}
	m, code := g.memberLocked(req.MemberID, req.InstanceID, req.Generation)
	if code != 0 {
		return code
	}
	if g.state == groupCompletingRebalance {
		return kerr.RebalanceInProgress.Code
	}
	g.heartbeatLocked(m)
	return 0
}

// validCommits checks each partition (permission, topic, partition,
// metadata size), setting codes for those refused, and returns the rest
// with their indexes in the request.
func (s *Server) validCommits(r *request, req *kmsg.OffsetCommitRequest, codes [][]int16) ([]topic.PartitionOffset, [][2]int) {
	var offs []topic.PartitionOffset
	var idx [][2]int
	for i, t := range req.Topics {
		code := int16(0)
		nparts := 0
		if !s.allowed(r, auth.OpConsume, auth.ResourceTopic, t.Topic) {
			code = kerr.TopicAuthorizationFailed.Code
		} else if tp, err := s.b.Topic(s.ctx, t.Topic); err != nil {
			code = errorCode(err)
		} else {
			nparts = len(tp.Partitions)
		}
		for j, p := range t.Partitions {
			switch {
			case code != 0:
				codes[i][j] = code
			case p.Partition < 0 || int(p.Partition) >= nparts:
				codes[i][j] = kerr.UnknownTopicOrPartition.Code
			case p.Metadata != nil && len(*p.Metadata) > maxOffsetMetadata:
				codes[i][j] = kerr.OffsetMetadataTooLarge.Code
			case p.Offset < 0:
				codes[i][j] = kerr.InvalidCommitOffsetSize.Code
			default:
				offs = append(offs, topic.PartitionOffset{Topic: t.Topic, Partition: p.Partition, Offset: p.Offset})
				idx = append(idx, [2]int{i, j})
			}
		}
	}
	return offs, idx
}

// setMetaLocked keeps a committed offset's metadata string. Caller must
// hold g.mu.
func (g *group) setMetaLocked(topic string, partition int32, meta *string) {
	ps := g.meta[topic]
	if meta == nil || *meta == "" {
		delete(ps, partition)
		return
	}
	if ps == nil {
		ps = map[int32]string{}
		g.meta[topic] = ps
	}
	ps[partition] = *meta
}

// metaLocked returns a committed offset's metadata string. Caller must
// hold g.mu.
func (g *group) metaLocked(topic string, partition int32) *string {
	if m, ok := g.meta[topic][partition]; ok {
		return &m
	}
	empty := ""
	return &empty
}
