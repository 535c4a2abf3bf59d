package kafka

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/auth"
)

// FindCoordinator 0-2: the coordinator of every group is the metadata
// leader (which coordinates native groups too), named by its numeric id
// and Kafka address; COORDINATOR_NOT_AVAILABLE while there is none.
// Transaction coordinators (key type 1) are not served: Strata has no
// transactions, and TRANSACTIONAL_ID_AUTHORIZATION_FAILED ends a
// transactional producer with a clear error instead of endless retries.
// Needs describe on the group.
func init() { register(10, 0, 2, handleFindCoordinator) }

func handleFindCoordinator(s *Server, r *request) (finish, error) {
	req := r.kreq.(*kmsg.FindCoordinatorRequest)
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	resp.NodeID = -1
	fail := func(e *kerr.Error) (finish, error) {
		resp.ErrorCode = e.Code
		msg := e.Message
		resp.ErrorMessage = &msg
		return done(resp), nil
	}
	switch req.CoordinatorType {
	case 0:
	case 1:
		e := *kerr.TransactionalIDAuthorizationFailed
		e.Message = "Strata has no transactions: use an idempotent producer (no transactional id)"
		return fail(&e)
	default:
		return fail(kerr.InvalidRequest)
	}
	if !s.allowed(r, auth.OpDescribe, auth.ResourceGroup, req.CoordinatorKey) {
		return fail(kerr.GroupAuthorizationFailed)
	}
	id, _ := s.b.GroupCoordinator()
	if id == "" {
		return fail(kerr.CoordinatorNotAvailable)
	}
	host, port, ok := s.kafkaAddr(id)
	if !ok {
		return fail(kerr.CoordinatorNotAvailable)
	}
	resp.NodeID, resp.Host, resp.Port = NodeID32(id), host, port
	return done(resp), nil
}
