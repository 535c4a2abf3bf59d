package kafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/auth"
	"github.com/stratalog/strata/internal/broker"
	"github.com/stratalog/strata/internal/topic"
)

// CreateTopics 0-4. NumPartitions and ReplicationFactor -1 take the
// defaults (the broker's partition count; min(3, nodes) replicas);
// manual replica assignments are refused (INVALID_REPLICA_ASSIGNMENT).
// Configs map to Strata's: retention.ms (-1 keeps forever),
// retention.bytes (-1: no limit; per partition), max.message.bytes (the
// largest batch), cleanup.policy=delete. cleanup.policy=compact is
// INVALID_CONFIG until compaction exists, as are unknown names and values
// Strata cannot honour (a retention of 0). ValidateOnly (v1+) checks
// without creating.
//
// Only the metadata leader (Metadata's ControllerID) creates topics;
// another node forwards the creation to it (as Kafka brokers forward to
// the controller, KIP-590), and answers NOT_CONTROLLER only while there is
// no leader, on which Kafka clients refresh their metadata and retry. Create permission on the topic, else
// TOPIC_AUTHORIZATION_FAILED.
func init() { register(19, 0, 4, handleCreateTopics) }

func handleCreateTopics(s *Server, r *request) (finish, error) {
	req := r.kreq.(*kmsg.CreateTopicsRequest)
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
	seen := map[string]int{}
	for _, rt := range req.Topics {
		seen[rt.Topic]++
	}
	type job struct {
		i   int
		cfg topic.Config
	}
	var jobs []job
	for i, rt := range req.Topics {
		st := kmsg.NewCreateTopicsResponseTopic()
		st.Topic = rt.Topic
		var cfg topic.Config
		var err error
		switch {
		case seen[rt.Topic] > 1:
			st.ErrorCode, err = kerr.InvalidRequest.Code, fmt.Errorf("topic %q is named more than once", rt.Topic)
		case !s.allowed(r, auth.OpCreate, auth.ResourceTopic, rt.Topic):
			st.ErrorCode = kerr.TopicAuthorizationFailed.Code
		default:
			cfg, st.ErrorCode, err = s.topicConfig(rt)
		}
		if err != nil && r.version >= 1 {
			msg := err.Error()
			st.ErrorMessage = &msg
		}
		if st.ErrorCode == 0 {
			jobs = append(jobs, job{i, cfg})
		}
		resp.Topics = append(resp.Topics, st)
	}
	timeout := time.Duration(req.TimeoutMillis) * time.Millisecond
	if timeout <= 0 {
		timeout = defaultAdminTimeout
	}
	return func() kmsg.Response {
		ctx, cancel := context.WithTimeout(s.ctx, timeout)
		defer cancel()
		for _, j := range jobs {
			st := &resp.Topics[j.i]
			var err error
			if req.ValidateOnly {
				err = s.b.ValidateTopic(st.Topic, j.cfg)
			} else {
				_, err = s.b.CreateTopicAnywhere(ctx, st.Topic, j.cfg)
			}
			if err != nil {
				st.ErrorCode = adminCode(err)
				if r.version >= 1 {
					msg := err.Error()
					st.ErrorMessage = &msg
				}
			}
		}
		return resp
	}, nil
}

// adminCode maps an error of a request only the metadata leader serves
// (other nodes forward it there): while there is no leader to forward to,
// NOT_CONTROLLER, so that the client retries.
func adminCode(err error) int16 {
	var nl *broker.NotLeaderError
	if errors.As(err, &nl) || errors.Is(err, broker.ErrNotLeader) {
		return kerr.NotController.Code
	}
	return errorCode(err)
}

// Topic config names Strata maps, with Kafka's names.
const (
	cfgRetentionMs     = "retention.ms"
	cfgRetentionBytes  = "retention.bytes"
	cfgMaxMessageBytes = "max.message.bytes"
	cfgCleanupPolicy   = "cleanup.policy"
)

// topicConfig maps a CreateTopics topic to Strata's config, or an error
// code with its reason.
func (s *Server) topicConfig(rt kmsg.CreateTopicsRequestTopic) (topic.Config, int16, error) {
	var cfg topic.Config
	switch {
	case len(rt.ReplicaAssignment) > 0:
		return cfg, kerr.InvalidReplicaAssignment.Code, errors.New("manual replica assignment is not supported: Strata places partitions")
	case rt.NumPartitions == 0 || rt.NumPartitions < -1:
		return cfg, kerr.InvalidPartitions.Code, fmt.Errorf("partitions %d: must be positive, or -1 for the default", rt.NumPartitions)
	case rt.ReplicationFactor == 0 || rt.ReplicationFactor < -1:
		return cfg, kerr.InvalidReplicationFactor.Code, fmt.Errorf("replication factor %d: must be positive, or -1 for the default", rt.ReplicationFactor)
	case int(rt.ReplicationFactor) > len(s.b.Nodes()):
		return cfg, kerr.InvalidReplicationFactor.Code, fmt.Errorf("replication factor %d exceeds the %d node(s) of the cluster", rt.ReplicationFactor, len(s.b.Nodes()))
	}
	cfg.Partitions = max(rt.NumPartitions, 0)                   // 0: the broker's default
	cfg.ReplicationFactor = max(int32(rt.ReplicationFactor), 0) // 0: the broker's default
	for _, c := range rt.Configs {
		if c.Value == nil {
			continue // null: the default
		}
		if err := setTopicConfig(&cfg, c.Name, *c.Value); err != nil {
			return cfg, kerr.InvalidConfig.Code, err
		}
	}
	return cfg, 0, nil
}

// setTopicConfig applies one Kafka topic config to cfg.
func setTopicConfig(cfg *topic.Config, name, value string) error {
	switch name {
	case cfgCleanupPolicy:
		for _, p := range strings.Split(value, ",") {
			if strings.TrimSpace(p) != "delete" {
				return fmt.Errorf("%s=%s: only delete is supported (Strata does not compact)", name, value)
			}
		}
		return nil
	case cfgRetentionMs, cfgRetentionBytes:
		v, err := strconv.ParseInt(value, 10, 64)
		if err != nil || v == 0 || v < -1 {
			return fmt.Errorf("%s=%s: must be positive, or -1 for no limit", name, value)
		}
		v = max(v, 0) // Strata's "no limit" is 0
		if name == cfgRetentionMs {
			cfg.RetentionMs = v
		} else {
			cfg.RetentionBytes = v
		}
		return nil
	case cfgMaxMessageBytes:
		v, err := strconv.ParseInt(value, 10, 32)
		if err != nil || v <= 0 {
			return fmt.Errorf("%s=%s: must be a positive 32-bit number", name, value)
		}
		cfg.MaxBatchBytes = int32(v)
		return nil
	}
	return fmt.Errorf("config %q is not supported (supported: %s, %s, %s, %s)", name,
		cfgRetentionMs, cfgRetentionBytes, cfgMaxMessageBytes, cfgCleanupPolicy)
}
