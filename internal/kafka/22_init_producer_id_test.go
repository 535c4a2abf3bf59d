package kafka_test

import (
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestInitProducerID: a new id at epoch 0, then (v3+) the next epoch of
// that id; a transactional id is refused with
// TRANSACTIONAL_ID_AUTHORIZATION_FAILED, which a transactional kgo
// producer reports.
func TestInitProducerID(t *testing.T) {
	cl := newClient(t)
	for _, v := range []int16{0, 1, 2, 3, 4} {
		req := kmsg.NewPtrInitProducerIDRequest()
		req.SetVersion(v)
		resp, err := req.RequestWith(ctxT(t), cl)
		if err != nil || resp.ErrorCode != 0 || resp.ProducerID <= 0 || resp.ProducerEpoch != 0 {
			t.Fatalf("v%d new id: %v %v %+v", v, err, kerr.ErrorForCode(resp.ErrorCode), resp)
		}
		if v < 3 {
			continue
		}
		bump := kmsg.NewPtrInitProducerIDRequest()
		bump.SetVersion(v)
		bump.ProducerID, bump.ProducerEpoch = resp.ProducerID, resp.ProducerEpoch
		br, err := bump.RequestWith(ctxT(t), cl)
		if err != nil || br.ErrorCode != 0 || br.ProducerID != resp.ProducerID || br.ProducerEpoch != 1 {
			t.Fatalf("v%d bump: %v %v %+v", v, err, kerr.ErrorForCode(br.ErrorCode), br)
		}
	}

	req := kmsg.NewPtrInitProducerIDRequest()
	req.TransactionalID = ptr("txn")
	kresp, err := direct(cl).Request(ctxT(t), req)
	if err != nil {
		t.Fatal(err)
	}
	if code := kresp.(*kmsg.InitProducerIDResponse).ErrorCode; !errors.Is(kerr.ErrorForCode(code), kerr.TransactionalIDAuthorizationFailed) {
		t.Fatalf("transactional id: %v", kerr.ErrorForCode(code))
	}

	topic := createTopic(t, 1, nil)
	txn := newClient(t, kgo.TransactionalID("txn"), kgo.DefaultProduceTopic(topic))
	if err := txn.BeginTransaction(); err == nil {
		err = txn.ProduceSync(ctxT(t), &kgo.Record{Value: []byte("x")}).FirstErr()
		if err == nil {
			t.Fatal("a transactional produce succeeded")
		}
		t.Logf("transactional kgo producer: %v", err)
	}
}
