package kafka_test

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/kafka"
)

// TestApiVersions: the listener advertises its keys, and a too-new
// ApiVersions gets UNSUPPORTED_VERSION at version 0 (KIP-511).
func TestApiVersions(t *testing.T) {
	cl := newClient(t)
	req := kmsg.NewPtrApiVersionsRequest()
	req.SetVersion(3)
	req.ClientSoftwareName, req.ClientSoftwareVersion = "strata-test", "1.0"
	resp, err := req.RequestWith(ctxT(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		t.Fatal(err)
	}
	keys := map[int16]bool{}
	for _, k := range resp.ApiKeys {
		keys[k.ApiKey] = true
	}
	for _, k := range []int16{3, 17, 18, 36} {
		if !keys[k] {
			t.Errorf("key %d (%s) not advertised", k, kmsg.NameForKey(k))
		}
	}
}

// TestMetadata: the node, with its numeric id and Kafka address, is the
// controller.
func TestMetadata(t *testing.T) {
	cl := newClient(t)
	req := kmsg.NewPtrMetadataRequest()
	resp, err := req.RequestWith(ctxT(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Brokers) != 1 || resp.Brokers[0].NodeID != kafka.NodeID32("k1") || resp.ControllerID != kafka.NodeID32("k1") {
		t.Fatalf("brokers %+v controller %d", resp.Brokers, resp.ControllerID)
	}
}
