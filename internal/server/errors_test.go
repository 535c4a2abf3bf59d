package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stratalog/strata/api/client"
	stratav1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/internal/broker"
	"github.com/stratalog/strata/internal/topic"
)

// TestDiskFullIsRetryable: a produce refused for a full disk is
// Unavailable, which clients retry, and keeps the broker's message.
func TestDiskFullIsRetryable(t *testing.T) {
	err := fmt.Errorf("%w: 3.1 MiB free in /data, need 64 MiB", broker.ErrDiskFull)
	st, _ := status.FromError(toStatus(err))
	if st.Code() != codes.Unavailable || st.Message() != err.Error() {
		t.Fatalf("disk full maps to %v %q, want Unavailable %q", st.Code(), st.Message(), err)
	}
}

// clientKinds is the sentinel of the Go client each reason must come back
// as, written apart from both tables it checks (the server's errorTable,
// the client's reasonKinds).
var clientKinds = map[stratav1.ErrorReason]error{
	stratav1.ErrorReason_ERROR_REASON_NOT_LEADER:            client.ErrNotLeader,
	stratav1.ErrorReason_ERROR_REASON_NOT_READY:             client.ErrUnavailable,
	stratav1.ErrorReason_ERROR_REASON_DISK_FULL:             client.ErrDiskFull,
	stratav1.ErrorReason_ERROR_REASON_BUSY:                  client.ErrUnavailable,
	stratav1.ErrorReason_ERROR_REASON_UNKNOWN_TOPIC:         client.ErrUnknownTopic,
	stratav1.ErrorReason_ERROR_REASON_UNKNOWN_PARTITION:     client.ErrUnknownPartition,
	stratav1.ErrorReason_ERROR_REASON_UNKNOWN_GROUP:         client.ErrUnknownGroup,
	stratav1.ErrorReason_ERROR_REASON_UNKNOWN_MEMBER:        client.ErrUnknownMember,
	stratav1.ErrorReason_ERROR_REASON_UNKNOWN_PRODUCER:      client.ErrUnknownProducer,
	stratav1.ErrorReason_ERROR_REASON_UNKNOWN_QUEUE_GROUP:   client.ErrUnknownQueueGroup,
	stratav1.ErrorReason_ERROR_REASON_UNKNOWN_NODE:          client.ErrNotFound,
	stratav1.ErrorReason_ERROR_REASON_NOT_FOUND:             client.ErrNotFound,
	stratav1.ErrorReason_ERROR_REASON_TOPIC_EXISTS:          client.ErrTopicExists,
	stratav1.ErrorReason_ERROR_REASON_ALREADY_EXISTS:        client.ErrTopicExists, // the code's sentinel
	stratav1.ErrorReason_ERROR_REASON_INVALID_NAME:          client.ErrInvalidArgument,
	stratav1.ErrorReason_ERROR_REASON_INVALID_CONFIG:        client.ErrInvalidArgument,
	stratav1.ErrorReason_ERROR_REASON_INVALID_REQUEST:       client.ErrInvalidArgument,
	stratav1.ErrorReason_ERROR_REASON_INVALID_BATCH:         client.ErrInvalidArgument,
	stratav1.ErrorReason_ERROR_REASON_BATCH_TOO_LARGE:       client.ErrTooLarge,
	stratav1.ErrorReason_ERROR_REASON_LIMIT:                 client.ErrTooLarge, // the code's sentinel
	stratav1.ErrorReason_ERROR_REASON_OFFSET_OUT_OF_RANGE:   client.ErrOffsetOutOfRange,
	stratav1.ErrorReason_ERROR_REASON_UNSUPPORTED:           client.ErrFailedPrecondition,
	stratav1.ErrorReason_ERROR_REASON_STALE_GENERATION:      client.ErrStaleGeneration,
	stratav1.ErrorReason_ERROR_REASON_GROUP_NOT_EMPTY:       client.ErrGroupNotEmpty,
	stratav1.ErrorReason_ERROR_REASON_QUEUE_CONFLICT:        client.ErrFailedPrecondition,
	stratav1.ErrorReason_ERROR_REASON_OUT_OF_ORDER_SEQUENCE: client.ErrOutOfOrderSequence,
	stratav1.ErrorReason_ERROR_REASON_PRODUCER_FENCED:       client.ErrProducerFenced,
	stratav1.ErrorReason_ERROR_REASON_UNAUTHENTICATED:       client.ErrUnauthenticated,
	stratav1.ErrorReason_ERROR_REASON_PERMISSION_DENIED:     client.ErrPermissionDenied,
}

// TestErrorTableCoversEveryReason: each reason of the proto but
// UNSPECIFIED is in the server's table once (reasonKinds panics on a
// second) and has a client sentinel in this test.
func TestErrorTableCoversEveryReason(t *testing.T) {
	for n, name := range stratav1.ErrorReason_name {
		r := stratav1.ErrorReason(n)
		if r == stratav1.ErrorReason_ERROR_REASON_UNSPECIFIED {
			continue
		}
		if _, ok := reasonKinds[r]; !ok {
			t.Errorf("%s: no domain error in errorTable", name)
		}
		if _, ok := clientKinds[r]; !ok {
			t.Errorf("%s: no client sentinel in this test", name)
		}
	}
}

// reasonServer answers DeleteTopic(name) with the status of errs[name],
// as the real server would.
type reasonServer struct {
	stratav1.UnimplementedStrataServer
	errs map[string]error
}

func (s *reasonServer) Metadata(context.Context, *stratav1.MetadataRequest) (*stratav1.MetadataResponse, error) {
	return &stratav1.MetadataResponse{}, nil
}

func (s *reasonServer) DeleteTopic(_ context.Context, req *stratav1.DeleteTopicRequest) (*stratav1.DeleteTopicResponse, error) {
	return nil, toStatus(s.errs[req.Name])
}

// startReasonServer serves rs on 127.0.0.1 and returns a client admin of it
// that does not retry.
func startReasonServer(t *testing.T, rs *reasonServer) *client.Admin {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	stratav1.RegisterStrataServer(gs, rs)
	go func() { _ = gs.Serve(ln) }()
	t.Cleanup(gs.Stop)
	cfg := client.DefaultConfig()
	cfg.MaxRetries = 0
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, []string{ln.Addr().String()}, client.WithConfig(cfg))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return client.NewAdmin(c)
}

// TestEveryReasonReachesTheClient: every domain error of errorTable goes
// over a real gRPC connection and comes out of the Go client as an *Error
// with its code and reason that matches the sentinel of its reason. The
// message names an unknown topic each time: the client must decide by the
// reason, not by the words.
func TestEveryReasonReachesTheClient(t *testing.T) {
	const misleading = "(words that mislead a reader of messages: unknown topic, disk full, fenced)"
	rs := &reasonServer{errs: map[string]error{}}
	for _, k := range errorTable {
		rs.errs[k.reason.String()] = fmt.Errorf("%w %s", k.err, misleading)
	}
	rs.errs["not-leader-detail"] = &broker.NotLeaderError{LeaderID: "n2", LeaderAddr: "127.0.0.2:7070", What: "t/0"}
	rs.errs["fenced-by-3"] = &topic.FencedError{ProducerID: 7, Epoch: 2, Current: 3}
	admin := startReasonServer(t, rs)
	ctx := context.Background()

	for _, k := range errorTable {
		t.Run(k.reason.String(), func(t *testing.T) {
			err := admin.DeleteTopic(ctx, k.reason.String())
			var ce *client.Error
			if !errors.As(err, &ce) || ce.Code != k.code || ce.Reason != k.reason {
				t.Fatalf("%v came back as %v (%T), want code %v reason %v", k.err, err, err, k.code, k.reason)
			}
			if want := clientKinds[k.reason]; !errors.Is(err, want) {
				t.Errorf("%v is not %v", err, want)
			}
			for _, other := range []error{client.ErrUnknownTopic, client.ErrDiskFull, client.ErrProducerFenced} {
				if other != clientKinds[k.reason] && errors.Is(err, other) {
					t.Errorf("%v is %v: the client read the message", err, other)
				}
			}
		})
	}
	err := admin.DeleteTopic(ctx, "not-leader-detail")
	var ce *client.Error
	if !errors.As(err, &ce) || !ce.NotLeader || ce.LeaderAddr != "127.0.0.2:7070" || !errors.Is(err, client.ErrNotLeader) {
		t.Errorf("not leader came back as %v", err)
	}
	if err := admin.DeleteTopic(ctx, "fenced-by-3"); !errors.Is(err, client.ErrProducerFenced) {
		t.Errorf("fenced came back as %v", err)
	}
}

// TestProduceStreamErrorMatchesStatus: a ProduceStream response, which
// has no status details, carries the same code and reason as the status
// of the same error.
func TestProduceStreamErrorMatchesStatus(t *testing.T) {
	errs := []error{&topic.SequenceError{ProducerID: 1, Got: 4, Expected: 2}, &topic.FencedError{ProducerID: 1, Epoch: 0, Current: 5},
		&broker.NotLeaderError{What: "t/0"}}
	for _, k := range errorTable {
		errs = append(errs, fmt.Errorf("%w: x", k.err))
	}
	for _, err := range errs {
		resp := &stratav1.ProduceResponse{}
		setProduceError(resp, err)
		st := status.Convert(toStatus(err))
		var info *stratav1.ErrorInfo
		for _, d := range st.Details() {
			if d, ok := d.(*stratav1.ErrorInfo); ok {
				info = d
			}
		}
		if info == nil || codes.Code(resp.ErrorCode) != st.Code() || resp.ErrorInfo.GetReason() != info.Reason ||
			resp.ErrorInfo.GetProducerEpoch() != info.ProducerEpoch || resp.ErrorMessage != st.Message() {
			t.Errorf("%v: stream answer %v %v %q, status %v %v %q", err, codes.Code(resp.ErrorCode), resp.ErrorInfo, resp.ErrorMessage,
				st.Code(), info, st.Message())
		}
	}
	resp := &stratav1.ProduceResponse{}
	setProduceError(resp, &topic.FencedError{ProducerID: 1, Epoch: 0, Current: 5})
	if resp.ErrorInfo.GetProducerEpoch() != 5 {
		t.Errorf("fenced: producer epoch %d in the answer, want 5", resp.ErrorInfo.GetProducerEpoch())
	}
	setProduceError(resp, &topic.SequenceError{Expected: 9})
	if resp.ExpectedSequence != 9 {
		t.Errorf("out of order: expected sequence %d in the answer, want 9", resp.ExpectedSequence)
	}
}

// TestRawNotLeaderIsUnavailable: a not-leader error straight from a raft
// group (no gRPC address known) is still NOT_LEADER.
func TestRawNotLeaderIsUnavailable(t *testing.T) {
	err := fmt.Errorf("%w: raft: leadership lost", broker.ErrNotLeader)
	if k := kindOf(err); k.code != codes.Unavailable || k.reason != stratav1.ErrorReason_ERROR_REASON_NOT_LEADER {
		t.Fatalf("%v: %v %v", err, k.code, k.reason)
	}
}
