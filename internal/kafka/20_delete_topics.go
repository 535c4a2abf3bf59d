package kafka

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/auth"
)

// DeleteTopics 0-3: deletes each topic with its data and every group's
// offsets for it. Delete permission on the topic, else
// TOPIC_AUTHORIZATION_FAILED; an unknown topic is
// UNKNOWN_TOPIC_OR_PARTITION. Only the metadata leader deletes: another
// node forwards to it (see CreateTopics).
func init() { register(20, 0, 3, handleDeleteTopics) }

func handleDeleteTopics(s *Server, r *request) (finish, error) {
	req := r.kreq.(*kmsg.DeleteTopicsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteTopicsResponse)
	var todo []int
	for i, name := range req.TopicNames {
		st := kmsg.NewDeleteTopicsResponseTopic()
		st.Topic = &name
		if s.allowed(r, auth.OpDelete, auth.ResourceTopic, name) {
			todo = append(todo, i)
		} else {
			st.ErrorCode = kerr.TopicAuthorizationFailed.Code
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
		for _, i := range todo {
			st := &resp.Topics[i]
			st.ErrorCode = adminCode(s.b.DeleteTopicAnywhere(ctx, *st.Topic))
		}
		return resp
	}, nil
}
