package kafka

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/auth"

	"github.com/stratalog/strata/internal/broker"
)

// InitProducerId 0-4, for idempotent producers: a new producer id at
// epoch 0 (ProducerID -1), or, from v3, the next epoch of the id given
// (an idempotent producer recovering from a sequence error), through the
// metadata group (broker.InitProducer). It needs the right to produce to
// some topic (or to the cluster), as Kafka's IdempotentWrite and as the
// gRPC InitProducer; else CLUSTER_AUTHORIZATION_FAILED.
//
// Only the metadata leader allocates ids: another node forwards the
// request there, and answers NOT_COORDINATOR only while there is no
// leader, which Kafka clients retry on another broker.
//
// Transactions are not supported: a transactional id is refused with
// TRANSACTIONAL_ID_AUTHORIZATION_FAILED, which clients report as fatal
// ("transactional id authorization failed") instead of retrying.
func init() { register(22, 0, 4, handleInitProducerID) }

func handleInitProducerID(s *Server, r *request) (finish, error) {
	req := r.kreq.(*kmsg.InitProducerIDRequest)
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if req.TransactionalID != nil {
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
		return done(resp), nil
	}
	if !s.allowedAny(r, auth.OpProduce) {
		// As Kafka's IdempotentWrite on the cluster or Write on any topic,
		// and as the gRPC InitProducer.
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return done(resp), nil
	}
	return func() kmsg.Response {
		ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
		defer cancel()
		id := max(req.ProducerID, 0) // the broker's "new id" is 0
		pid, epoch, err := s.b.InitProducerAnywhere(ctx, id)
		if err != nil {
			resp.ErrorCode = initProducerCode(err)
			return resp
		}
		resp.ProducerID, resp.ProducerEpoch = pid, epoch
		return resp
	}, nil
}

func initProducerCode(err error) int16 {
	var nl *broker.NotLeaderError
	switch {
	case errors.As(err, &nl), errors.Is(err, broker.ErrNotLeader):
		return kerr.NotCoordinator.Code
	case errors.Is(err, context.DeadlineExceeded):
		return kerr.CoordinatorNotAvailable.Code
	}
	return errorCode(err)
}
