package kafka

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/auth"
	"github.com/stratalog/strata/internal/topic"
)

// Metadata 0-7: every node with its Kafka address (numeric ids, see
// NodeID32), the metadata leader as controller, and per topic its
// partitions' leaders, replicas and in-sync replicas as this node knows
// them. Topics the principal may not describe are left out of "all
// topics" and answered TOPIC_AUTHORIZATION_FAILED when named. A named
// unknown topic is created when auto creation is on (the listener's and
// the request's) and the principal may create it.
func init() { register(3, 0, 7, handleMetadata) }

func handleMetadata(s *Server, r *request) (finish, error) {
	req := r.kreq.(*kmsg.MetadataRequest)
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	resp.Brokers = s.brokers()
	clusterID := "strata"
	resp.ClusterID = &clusterID
	controller, _ := s.b.GroupCoordinator() // the metadata leader
	resp.ControllerID = nodeID32(controller)
	all := req.Topics == nil || (r.version == 0 && len(req.Topics) == 0)
	if all {
		for _, t := range s.b.Topics() {
			if s.allowed(r, auth.OpDescribe, auth.ResourceTopic, t.Name) {
				resp.Topics = append(resp.Topics, s.topicMetadata(t))
			}
		}
		return done(resp), nil
	}
	autoCreate := s.cfg.AutoCreateTopics && (r.version < 4 || req.AllowAutoTopicCreation)
	for _, rt := range req.Topics {
		name := ""
		if rt.Topic != nil {
			name = *rt.Topic
		}
		resp.Topics = append(resp.Topics, s.namedTopicMetadata(r, name, autoCreate))
	}
	return done(resp), nil
}

func (s *Server) namedTopicMetadata(r *request, name string, autoCreate bool) kmsg.MetadataResponseTopic {
	mt := kmsg.NewMetadataResponseTopic()
	mt.Topic = &name
	if !s.allowed(r, auth.OpDescribe, auth.ResourceTopic, name) {
		mt.ErrorCode = kerr.TopicAuthorizationFailed.Code
		return mt
	}
	t, err := s.b.Topic(s.ctx, name)
	if errors.Is(err, topic.ErrUnknownTopic) && autoCreate && s.allowed(r, auth.OpCreate, auth.ResourceTopic, name) {
		t, err = s.autoCreate(name)
	}
	if err != nil {
		mt.ErrorCode = errorCode(err)
		return mt
	}
	return s.topicMetadata(t)
}

// autoCreate creates a topic with the broker's defaults.
func (s *Server) autoCreate(name string) (topic.Topic, error) {
	ctx, cancel := context.WithTimeout(s.ctx, defaultAdminTimeout)
	defer cancel()
	t, err := s.b.CreateTopic(ctx, name, topic.Config{})
	if errors.Is(err, topic.ErrTopicExists) {
		return s.b.Topic(ctx, name)
	}
	return t, err
}

// topicMetadata describes a topic's partitions.
func (s *Server) topicMetadata(t topic.Topic) kmsg.MetadataResponseTopic {
	mt := kmsg.NewMetadataResponseTopic()
	name := t.Name
	mt.Topic = &name
	for _, ps := range s.b.PartitionStates(t) {
		mp := kmsg.NewMetadataResponseTopicPartition()
		mp.Partition = ps.Partition
		mp.Leader = nodeID32(ps.LeaderID)
		mp.LeaderEpoch = -1
		for _, id := range ps.Replicas {
			mp.Replicas = append(mp.Replicas, NodeID32(id))
		}
		for _, id := range ps.InSync {
			mp.ISR = append(mp.ISR, NodeID32(id))
		}
		if ps.LeaderID == "" {
			mp.ErrorCode = kerr.LeaderNotAvailable.Code
		}
		mt.Partitions = append(mt.Partitions, mp)
	}
	return mt
}
