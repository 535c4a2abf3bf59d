package kafka

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/auth"
	"github.com/stratalog/strata/internal/broker"
)

// OffsetFetch 1-7: a group's committed offsets (-1 where none), the ones
// `strata group` shows, with the metadata strings this coordinator keeps;
// v2+ with topics null returns every committed partition of the topics
// the principal may describe. Needs describe on the group, and on each
// topic named.
func init() { register(9, 1, 7, handleOffsetFetch) }

func handleOffsetFetch(s *Server, r *request) (finish, error) {
	req := r.kreq.(*kmsg.OffsetFetchRequest)
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	code := s.groupPrecheck(r, req.Group, auth.OpDescribe)
	if code != 0 && r.version >= 2 {
		resp.ErrorCode = code
		return done(resp), nil
	}
	g := s.groups().get(req.Group)
	meta := func(topic string, p int32) *string {
		empty := ""
		if g == nil {
			return &empty
		}
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.metaLocked(topic, p)
	}
	part := func(p int32, off int64, code int16, md *string) kmsg.OffsetFetchResponseTopicPartition {
		rp := kmsg.NewOffsetFetchResponseTopicPartition()
		rp.Partition, rp.Offset, rp.ErrorCode, rp.Metadata, rp.LeaderEpoch = p, off, code, md, -1
		return rp
	}
	if req.Topics == nil {
		byTopic := map[string]int{} // index in resp.Topics
		for _, o := range s.b.FetchOffsets(req.Group, nil) {
			if !s.allowed(r, auth.OpDescribe, auth.ResourceTopic, o.Topic) {
				continue
			}
			i, ok := byTopic[o.Topic]
			if !ok {
				i = len(resp.Topics)
				byTopic[o.Topic] = i
				rt := kmsg.NewOffsetFetchResponseTopic()
				rt.Topic = o.Topic
				resp.Topics = append(resp.Topics, rt)
			}
			resp.Topics[i].Partitions = append(resp.Topics[i].Partitions, part(o.Partition, o.Offset, 0, meta(o.Topic, o.Partition)))
		}
		return done(resp), nil
	}
	for _, t := range req.Topics {
		rt := kmsg.NewOffsetFetchResponseTopic()
		rt.Topic = t.Topic
		tcode := code
		if tcode == 0 && !s.allowed(r, auth.OpDescribe, auth.ResourceTopic, t.Topic) {
			tcode = kerr.TopicAuthorizationFailed.Code
		}
		var parts []broker.TopicPartition
		for _, p := range t.Partitions {
			parts = append(parts, broker.TopicPartition{Topic: t.Topic, Partition: p})
		}
		offs := s.b.FetchOffsets(req.Group, parts)
		for k, p := range t.Partitions {
			if tcode != 0 {
				rt.Partitions = append(rt.Partitions, part(p, -1, tcode, nil))
				continue
			}
			rt.Partitions = append(rt.Partitions, part(p, offs[k].Offset, 0, meta(t.Topic, p)))
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return done(resp), nil
}
