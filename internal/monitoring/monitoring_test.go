package monitoring

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/wait"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"gopkg.in/yaml.v3"

	"github.com/stratalog/strata/api/record"
	stratav1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/internal/agent"
)

var metricName = regexp.MustCompile(`\bstrata_[a-zA-Z0-9_]+`)

// dashboardPanel is what the test reads of a Grafana panel; rows nest
// panels.
type dashboardPanel struct {
	Title      string         `json:"title"`
	Type       string         `json:"type"`
	Datasource map[string]any `json:"datasource"`
	Targets    []struct{ Expr string }
	Panels     []dashboardPanel `json:"panels"`
}

// dashboardExprs returns the expressions of every panel, by panel title.
func dashboardExprs(t *testing.T) map[string][]string {
	t.Helper()
	var d struct {
		Title  string           `json:"title"`
		UID    string           `json:"uid"`
		Panels []dashboardPanel `json:"panels"`
	}
	if err := json.Unmarshal(Dashboard, &d); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	if d.Title == "" || d.UID == "" || len(d.Panels) == 0 {
		t.Fatalf("grafana-dashboard.json: title %q, uid %q, %d panels", d.Title, d.UID, len(d.Panels))
	}
	out := map[string][]string{}
	var walk func([]dashboardPanel)
	walk = func(ps []dashboardPanel) {
		for _, p := range ps {
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if p.Title == "" || p.Datasource == nil || len(p.Targets) == 0 {
				t.Errorf("dashboard panel %q: needs a title, a data source and targets", p.Title)
			}
			for _, tg := range p.Targets {
				out[p.Title] = append(out[p.Title], tg.Expr)
			}
		}
	}
	walk(d.Panels)
	return out
}

// alertExprs returns the expression of every alerting rule, by alert.
func alertExprs(t *testing.T) map[string][]string {
	t.Helper()
	var f struct {
		Groups []struct {
			Name  string
			Rules []struct {
				Alert       string
				Expr        string
				For         string
				Labels      map[string]string
				Annotations map[string]string
			}
		}
	}
	dec := yaml.NewDecoder(strings.NewReader(string(Alerts)))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("prometheus-alerts.yaml: %v", err)
	}
	out := map[string][]string{}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("alert %q in group %q: needs a name, an expression, a severity and a summary", r.Alert, g.Name)
			}
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("alert %q: for %q: %v", r.Alert, r.For, err)
				}
			}
			out[r.Alert] = append(out[r.Alert], r.Expr)
		}
	}
	return out
}

// used returns each strata_* metric the expressions name, with where.
func used(t *testing.T, where string, exprs map[string][]string, into map[string][]string) {
	t.Helper()
	for name, es := range exprs {
		for _, e := range es {
			if strings.Count(e, "(") != strings.Count(e, ")") || strings.Count(e, "{") != strings.Count(e, "}") {
				t.Errorf("%s %q: unbalanced expression %s", where, name, e)
			}
			ms := metricName.FindAllString(e, -1)
			if len(ms) == 0 {
				t.Errorf("%s %q: no strata_ metric in %s", where, name, e)
			}
			for _, m := range ms {
				into[m] = append(into[m], where+" "+name)
			}
		}
	}
}

// TestAlertsAndDashboardUseRealMetrics: every strata_* metric the
// dashboard and the alerts name is served on /metrics by a real node
// after traffic through produce, fetch, a group, a queue group and the
// Kafka listener (histograms as _bucket, _sum and _count).
func TestAlertsAndDashboardUseRealMetrics(t *testing.T) {
	want := map[string][]string{}
	used(t, "panel", dashboardExprs(t), want)
	used(t, "alert", alertExprs(t), want)
	if len(want) < 20 {
		t.Fatalf("only %d metrics used: %v", len(want), want)
	}
	a := startNode(t)
	traffic(t, a)
	var missing []string
	// Ages (lag seconds) appear once the node has read their timestamps,
	// after the first scrape asked for them.
	wait.Until(30*time.Second, func() bool {
		served := scrapeNames(t, a)
		missing = missing[:0]
		for m := range want {
			if !served[m] {
				missing = append(missing, m)
			}
		}
		return len(missing) == 0
	})
	slices.Sort(missing)
	for _, m := range missing {
		t.Errorf("%s is not served, but %v use it", m, want[m])
	}
}

func startNode(t *testing.T) *agent.Agent {
	t.Helper()
	cfg := agent.DefaultConfig()
	cfg.DataDir, cfg.NodeID, cfg.MetadataVoters, cfg.DataGroups = t.TempDir(), "n1", 1, 2
	cfg.GRPCAddr, cfg.HTTPAddr, cfg.ClusterAddr, cfg.GossipAddr, cfg.KafkaAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "", "127.0.0.1:0"
	a, err := agent.New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// traffic runs through every path the dashboard and the alerts watch.
func traffic(t *testing.T, a *agent.Agent) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := grpc.NewClient(a.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := stratav1.NewStrataClient(conn)
	for _, name := range []string{"orders", "jobs"} {
		_, err := c.CreateTopic(ctx, &stratav1.CreateTopicRequest{Name: name, Config: &stratav1.TopicConfig{Partitions: 1}})
		must(t, "create "+name, err)
	}
	produce(ctx, t, c, "orders", 5)
	_, err = c.Fetch(ctx, &stratav1.FetchRequest{Topic: "orders"})
	must(t, "fetch", err)
	_, err = c.CommitOffsets(ctx, &stratav1.CommitOffsetsRequest{Group: "readers",
		Offsets: []*stratav1.PartitionOffset{{Topic: "orders", Offset: 2}}})
	must(t, "commit", err)
	queueTraffic(ctx, t, c)

	kc, err := kgo.NewClient(kgo.SeedBrokers(a.KafkaAddr()))
	must(t, "kafka client", err)
	defer kc.Close()
	must(t, "kafka ping", kc.Ping(ctx))
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// produce writes n records to partition 0 of topic.
func produce(ctx context.Context, t *testing.T, c stratav1.StrataClient, topic string, n int) {
	t.Helper()
	var recs []record.Record
	for range n {
		recs = append(recs, record.Record{Value: []byte("v"), Timestamp: time.Now()})
	}
	batch, err := record.AppendBatch(nil, recs, record.BatchOptions{})
	must(t, "batch", err)
	_, err = c.Produce(ctx, &stratav1.ProduceRequest{Topic: topic, Batch: batch})
	must(t, "produce to "+topic, err)
}

// queueTraffic gives a queue group on topic jobs an ack, a nack (delayed),
// a reject (a dead letter, then redriven) and a lease that runs out.
func queueTraffic(ctx context.Context, t *testing.T, c stratav1.StrataClient) {
	t.Helper()
	_, err := c.CreateQueueGroup(ctx, &stratav1.CreateQueueGroupRequest{Topic: "jobs", Group: "workers",
		Settings: &stratav1.QueueSettings{AckTimeoutMs: 300, MaxDeliveries: 5}})
	must(t, "create queue group", err)
	produce(ctx, t, c, "jobs", 4)
	got, err := c.QueueReceive(ctx, &stratav1.QueueReceiveRequest{Topic: "jobs", Group: "workers", MemberId: "m1", Partition: -1, MaxMessages: 4})
	must(t, "receive", err)
	if len(got.Messages) != 4 {
		t.Fatalf("received %d records, want 4", len(got.Messages))
	}
	settle := func(op func(context.Context, *stratav1.QueueSettleRequest, ...grpc.CallOption) (*stratav1.QueueSettleResponse, error), i int, delay time.Duration) {
		t.Helper()
		m := got.Messages[i]
		r, err := op(ctx, &stratav1.QueueSettleRequest{Topic: "jobs", Group: "workers", MemberId: "m1", DelayMs: delay.Milliseconds(),
			Offsets: []*stratav1.QueuePartitionOffsets{{Partition: m.Partition, Offsets: []int64{m.Offset}}}})
		must(t, "settle", err)
		if r.Settled != 1 {
			t.Fatalf("settled %d, want 1", r.Settled)
		}
	}
	settle(c.QueueAck, 0, 0)
	settle(c.QueueNack, 1, time.Hour)
	settle(c.QueueReject, 2, 0)
	// The fourth lease runs out; a receive after it takes the record back.
	deadline := time.Now().Add(20 * time.Second)
	for {
		r, err := c.QueueReceive(ctx, &stratav1.QueueReceiveRequest{Topic: "jobs", Group: "workers", MemberId: "m2", Partition: -1,
			MaxMessages: 1, MaxWaitMs: 500})
		must(t, "receive again", err)
		if len(r.Messages) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the expired lease's record never came back")
		}
	}
	// The queue loop writes the dead letter; the redrive moves it once it
	// is there.
	wait.NoError(t, 20*time.Second, "the redrive of the rejected record", func() error {
		r, err := c.RedriveQueueGroup(ctx, &stratav1.RedriveQueueGroupRequest{Topic: "jobs", Group: "workers"})
		if err == nil && r.Redriven != 1 {
			err = fmt.Errorf("redriven %d, want 1", r.Redriven)
		}
		return err
	})
}

// scrapeNames returns the names of the series /metrics serves.
func scrapeNames(t *testing.T, a *agent.Agent) map[string]bool {
	t.Helper()
	resp, err := http.Get("http://" + a.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]bool{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			out[line[:i]] = true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
