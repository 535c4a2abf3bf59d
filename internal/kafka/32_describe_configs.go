package kafka

import (
	"context"
	"fmt"
	"slices"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/auth"
	"github.com/stratalog/strata/internal/broker"
	"github.com/stratalog/strata/internal/topic"
)

// DescribeConfigs 0-2, for topics and brokers. A topic has retention.ms
// and retention.bytes (-1: no limit), max.message.bytes and
// cleanup.policy=delete (its partition count is not a config: Metadata
// has it); describe permission on the topic, else
// TOPIC_AUTHORIZATION_FAILED. A broker (its id, or "" for the cluster's
// defaults) has a few settings of this listener and the broker, with
// describe permission on the cluster, else CLUSTER_AUTHORIZATION_FAILED.
// Every config is read-only: Strata does not alter configs. Synonyms are
// not listed.
func init() { register(32, 0, 2, handleDescribeConfigs) }

func handleDescribeConfigs(s *Server, r *request) (finish, error) {
	req := r.kreq.(*kmsg.DescribeConfigsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeConfigsResponse)
	allowed := make([]bool, len(req.Resources))
	for i, rr := range req.Resources {
		switch rr.ResourceType {
		case kmsg.ConfigResourceTypeTopic:
			allowed[i] = s.allowed(r, auth.OpDescribe, auth.ResourceTopic, rr.ResourceName)
		case kmsg.ConfigResourceTypeBroker:
			allowed[i] = s.allowed(r, auth.OpDescribe, auth.ResourceCluster, clusterResource)
		}
	}
	return func() kmsg.Response {
		ctx, cancel := context.WithTimeout(s.ctx, defaultAdminTimeout)
		defer cancel()
		for i, rr := range req.Resources {
			res := kmsg.NewDescribeConfigsResponseResource()
			res.ResourceType, res.ResourceName = rr.ResourceType, rr.ResourceName
			var configs []kmsg.DescribeConfigsResponseResourceConfig
			var err error
			switch rr.ResourceType {
			case kmsg.ConfigResourceTypeTopic:
				if !allowed[i] {
					res.ErrorCode = kerr.TopicAuthorizationFailed.Code
					break
				}
				configs, err = s.topicConfigs(ctx, rr.ResourceName)
			case kmsg.ConfigResourceTypeBroker:
				if !allowed[i] {
					res.ErrorCode = kerr.ClusterAuthorizationFailed.Code
					break
				}
				configs, err = s.brokerConfigs(rr.ResourceName)
			default:
				res.ErrorCode = kerr.InvalidRequest.Code
				err = fmt.Errorf("resource type %d is not supported (topics and brokers are)", rr.ResourceType)
			}
			if err != nil {
				if res.ErrorCode == 0 {
					res.ErrorCode = errorCode(err)
				}
				msg := err.Error()
				res.ErrorMessage = &msg
			}
			for _, c := range configs {
				if rr.ConfigNames == nil || slices.Contains(rr.ConfigNames, c.Name) {
					res.Configs = append(res.Configs, c)
				}
			}
			resp.Resources = append(resp.Resources, res)
		}
		return resp
	}, nil
}

// configEntry is one read-only config; isDefault says whether it holds
// the default value.
func configEntry(name, value string, isDefault bool, set kmsg.ConfigSource) kmsg.DescribeConfigsResponseResourceConfig {
	c := kmsg.NewDescribeConfigsResponseResourceConfig()
	c.Name, c.Value, c.ReadOnly, c.IsDefault = name, &value, true, isDefault
	c.Source = set
	if isDefault {
		c.Source = kmsg.ConfigSourceDefaultConfig
	}
	return c
}

// noLimit turns Strata's "no limit" (0) into Kafka's (-1).
func noLimit(v int64) int64 {
	if v == 0 {
		return -1
	}
	return v
}

// topicConfigs returns a topic's configs, with Kafka's names.
func (s *Server) topicConfigs(ctx context.Context, name string) ([]kmsg.DescribeConfigsResponseResourceConfig, error) {
	t, err := s.b.Topic(ctx, name)
	if err != nil {
		return nil, err
	}
	return topicConfigEntries(t.Config, s.b.TopicDefaults()), nil
}

func topicConfigEntries(c, def topic.Config) []kmsg.DescribeConfigsResponseResourceConfig {
	set := kmsg.ConfigSourceDynamicTopicConfig
	i64 := func(v int64) string { return strconv.FormatInt(v, 10) }
	return []kmsg.DescribeConfigsResponseResourceConfig{
		configEntry(cfgCleanupPolicy, "delete", true, set),
		configEntry(cfgMaxMessageBytes, i64(int64(c.MaxBatchBytes)), c.MaxBatchBytes == def.MaxBatchBytes, set),
		configEntry(cfgRetentionBytes, i64(noLimit(c.RetentionBytes)), c.RetentionBytes == 0, set),
		configEntry(cfgRetentionMs, i64(noLimit(c.RetentionMs)), c.RetentionMs == 0, set),
	}
}

// brokerConfigs returns this node's settings, as a broker's configs;
// name is a broker id (this node's) or "" (the cluster's defaults, the
// same here).
func (s *Server) brokerConfigs(name string) ([]kmsg.DescribeConfigsResponseResourceConfig, error) {
	self := strconv.Itoa(int(NodeID32(s.b.NodeID())))
	if name != "" && name != self {
		return nil, fmt.Errorf("%w: broker %q: this is broker %s; ask each broker for its own configs", broker.ErrInvalidRequest, name, self)
	}
	def := s.b.TopicDefaults()
	st := kmsg.ConfigSourceStaticBrokerConfig
	i64 := func(v int64) string { return strconv.FormatInt(v, 10) }
	return []kmsg.DescribeConfigsResponseResourceConfig{
		configEntry("auto.create.topics.enable", strconv.FormatBool(s.cfg.AutoCreateTopics), !s.cfg.AutoCreateTopics, st),
		configEntry("broker.id", self, false, st),
		configEntry("connections.max.idle.ms", i64(s.cfg.IdleTimeout.Milliseconds()), false, st),
		configEntry("log.cleanup.policy", "delete", true, st),
		configEntry("message.max.bytes", i64(int64(def.MaxBatchBytes)), false, st),
		configEntry("num.partitions", i64(int64(def.Partitions)), false, st),
		configEntry("socket.request.max.bytes", i64(int64(s.cfg.MaxRequestBytes)), false, st),
	}, nil
}
