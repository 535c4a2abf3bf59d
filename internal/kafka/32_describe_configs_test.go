package kafka_test

import (
	"errors"
	"strconv"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/kafka"
)

// TestDescribeConfigs: a topic's defaults (no retention limits, delete
// policy), a broker's settings by id and as the cluster default, an
// unknown topic and resource type.
func TestDescribeConfigs(t *testing.T) {
	topic := createTopic(t, 1, nil)
	ctx := ctxT(t)
	cl := newClient(t)
	adm := kadm.NewClient(cl)
	rcs, err := adm.DescribeTopicConfigs(ctx, topic, "no-such-topic")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := rcs.On(topic, nil)
	if err != nil || rc.Err != nil {
		t.Fatalf("describe: %v %v", err, rc.Err)
	}
	got := map[string]kadm.Config{}
	for _, c := range rc.Configs {
		got[c.Key] = c
	}
	for k, v := range map[string]string{"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete", "max.message.bytes": "1048588"} {
		c, ok := got[k]
		if !ok || c.Value == nil || *c.Value != v || c.Source != kmsg.ConfigSourceDefaultConfig {
			t.Errorf("%s: %+v, want %s (default)", k, c, v)
		}
	}
	if rc, _ := rcs.On("no-such-topic", nil); !errors.Is(rc.Err, kerr.UnknownTopicOrPartition) {
		t.Errorf("unknown topic: %v", rc.Err)
	}

	id := strconv.Itoa(int(kafka.NodeID32("k1")))
	for _, name := range []string{"", id} {
		req := kmsg.NewPtrDescribeConfigsRequest()
		req.SetVersion(2)
		res := kmsg.NewDescribeConfigsRequestResource()
		res.ResourceType, res.ResourceName = kmsg.ConfigResourceTypeBroker, name
		req.Resources = append(req.Resources, res)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil || len(resp.Resources) != 1 || resp.Resources[0].ErrorCode != 0 {
			t.Fatalf("broker %q: %v %+v", name, err, resp)
		}
		found := false
		for _, c := range resp.Resources[0].Configs {
			if c.Name == "broker.id" && c.Value != nil && *c.Value == id {
				found = true
			}
		}
		if !found {
			t.Errorf("broker %q: no broker.id %s in %+v", name, id, resp.Resources[0].Configs)
		}
	}

	req := kmsg.NewPtrDescribeConfigsRequest()
	for _, r := range []struct {
		typ  kmsg.ConfigResourceType
		name string
	}{{kmsg.ConfigResourceTypeBroker, "12345"}, {kmsg.ConfigResourceType(8), "x"}, {kmsg.ConfigResourceTypeTopic, topic}} {
		res := kmsg.NewDescribeConfigsRequestResource()
		res.ResourceType, res.ResourceName = r.typ, r.name
		if r.typ == kmsg.ConfigResourceTypeTopic {
			res.ConfigNames = []string{"retention.ms"}
		}
		req.Resources = append(req.Resources, res)
	}
	kresp, err := direct(cl).Request(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	resp := kresp.(*kmsg.DescribeConfigsResponse)
	if len(resp.Resources) != 3 {
		t.Fatalf("%+v", resp)
	}
	for i, want := range []error{kerr.InvalidRequest, kerr.InvalidRequest, nil} {
		if err := kerr.ErrorForCode(resp.Resources[i].ErrorCode); !errors.Is(err, want) && (want != nil || err != nil) {
			t.Errorf("resource %d: %v, want %v", i, err, want)
		}
	}
	if cs := resp.Resources[2].Configs; len(cs) != 1 || cs[0].Name != "retention.ms" {
		t.Errorf("ConfigNames filter: %+v", cs)
	}
}
