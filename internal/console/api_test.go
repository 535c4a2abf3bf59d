package console_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	stratav1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/internal/console"
)

// TestOverviewAndTopics: the overview names the node and its raft
// groups; a topic created through the API is listed and described with
// its partitions, config and readers; deleting it needs its name as the
// confirmation.
func TestOverviewAndTopics(t *testing.T) {
	n := startNode(t)
	var created console.Topic
	mustOK(t, "create topic", n.post("/api/v1/topics", map[string]any{"name": "orders", "partitions": 3, "retention_ms": 60000}), &created)
	if created.Name != "orders" || len(created.Partitions) != 3 || created.Config.RetentionMs != 60000 {
		t.Fatalf("created %+v", created)
	}
	if r := n.post("/api/v1/topics", map[string]any{"name": "orders"}); r.code != http.StatusConflict {
		t.Fatalf("creating it again: %d %s, want 409", r.code, r.body)
	}
	if r := n.post("/api/v1/topics", map[string]any{"name": "bad name!"}); r.code != http.StatusBadRequest {
		t.Fatalf("a bad name: %d %s, want 400", r.code, r.body)
	}
	n.produce("orders", 1, "a:1", "b:2")

	var o console.Overview
	mustOK(t, "overview", n.get("/api/v1/overview"), &o)
	if len(o.Nodes) != 1 || o.Nodes[0].ID != "n1" || o.MetadataLeader != "n1" || len(o.RaftGroups) == 0 ||
		o.Topics != 1 || o.Partitions != 3 || len(o.UnderReplicated) != 0 || len(o.Offline) != 0 {
		t.Fatalf("overview %+v", o)
	}
	var list struct{ Topics []console.Topic }
	mustOK(t, "topics", n.get("/api/v1/topics"), &list)
	if len(list.Topics) != 1 || list.Topics[0].Records != 2 {
		t.Fatalf("topics %+v", list)
	}
	var tp console.Topic
	mustOK(t, "topic", n.get("/api/v1/topics/orders"), &tp)
	p := tp.Partitions[1]
	if p.Leader != "n1" || p.Start != 0 || p.End != 2 || p.SizeBytes == 0 || len(p.InSync) != 1 || p.Source != "leader" ||
		tp.Readers == nil {
		t.Fatalf("partition 1: %+v (readers %+v)", p, tp.Readers)
	}
	if r := n.get("/api/v1/topics/nosuch"); r.code != http.StatusNotFound {
		t.Fatalf("unknown topic: %d %s", r.code, r.body)
	}
	for _, page := range []string{"/console/", "/console/topics", "/console/topics/orders"} {
		if r := n.get(page); r.code != http.StatusOK || !strings.Contains(r.body, "orders") && page != "/console/" {
			t.Fatalf("page %s: %d", page, r.code)
		}
	}
	if r := n.post("/api/v1/topics/orders/delete", map[string]any{"confirm": "order"}); r.code != http.StatusBadRequest {
		t.Fatalf("delete with a wrong confirmation: %d %s, want 400", r.code, r.body)
	}
	mustOK(t, "delete", n.post("/api/v1/topics/orders/delete", map[string]any{"confirm": "orders"}), nil)
	waitFor(t, 10*time.Second, "topic gone", func() string {
		if r := n.get("/api/v1/topics/orders"); r.code != http.StatusNotFound {
			return fmt.Sprintf("%d", r.code)
		}
		return ""
	})
}

// TestBrowse: a key search finds its record in any partition; a substring
// search looks in key, value and headers as asked; the views render JSON
// and hex; from offset, time and latest start where they say.
func TestBrowse(t *testing.T) {
	n := startNode(t)
	n.createTopic("events", 3)
	for p := range int32(3) {
		n.produce("events", p, fmt.Sprintf("user-%d:{\"n\":%d}", p, p), fmt.Sprintf("other-%d:plain text %d", p, p))
	}
	var b console.Browse
	mustOK(t, "key search", n.get("/api/v1/topics/events/messages?from=earliest&key=user-2"), &b)
	if len(b.Records) != 1 || b.Records[0].Partition != 2 || b.Records[0].Key.Text != "user-2" || b.Scanned.Records != 6 ||
		!b.Complete || b.Stopped != "end" {
		t.Fatalf("key search: %+v", b)
	}
	mustOK(t, "contains in value", n.get("/api/v1/topics/events/messages?from=earliest&contains=plain&in=value"), &b)
	if len(b.Records) != 3 {
		t.Fatalf("contains plain: %d records", len(b.Records))
	}
	mustOK(t, "contains in key only", n.get("/api/v1/topics/events/messages?from=earliest&contains=plain&in=key"), &b)
	if len(b.Records) != 0 {
		t.Fatalf("contains plain in keys: %d records, want 0", len(b.Records))
	}
	mustOK(t, "json view", n.get("/api/v1/topics/events/messages?from=earliest&partition=1&key=user-1&view=json"), &b)
	if len(b.Records) != 1 || b.Records[0].Value.Text != "{\n  \"n\": 1\n}" || b.Records[0].Value.View != "json" {
		t.Fatalf("json view: %+v", b.Records)
	}
	mustOK(t, "hex view", n.get("/api/v1/topics/events/messages?from=offset&offset=1&partition=0&view=hex"), &b)
	if len(b.Records) != 1 || !strings.HasPrefix(b.Records[0].Value.Text, "00000000  70 6c 61 69 6e") ||
		!strings.Contains(b.Records[0].Value.Text, "|plain text 0|") {
		t.Fatalf("hex view: %+v", b.Records)
	}
	mustOK(t, "limit 3 of all partitions", n.get("/api/v1/topics/events/messages?from=earliest&limit=3"), &b)
	if parts := map[int32]bool{}; len(b.Records) == 3 {
		for _, m := range b.Records {
			parts[m.Partition] = true
		}
		if len(parts) != 3 || b.Resume != "0:1,1:1,2:1" {
			t.Fatalf("3 records of all partitions come from %v, resume %s: each partition should give its share", parts, b.Resume)
		}
	} else {
		t.Fatalf("limit 3: %d records", len(b.Records))
	}
	mustOK(t, "latest", n.get("/api/v1/topics/events/messages?from=latest&limit=1&partition=0"), &b)
	if len(b.Records) != 1 || b.Records[0].Offset != 1 {
		t.Fatalf("latest 1 of partition 0: %+v", b.Records)
	}
	future := url.QueryEscape(time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	mustOK(t, "from a future time", n.get("/api/v1/topics/events/messages?from=time&time="+future), &b)
	if len(b.Records) != 0 || !b.Complete {
		t.Fatalf("from a future time: %+v", b)
	}
	mustOK(t, "from the epoch", n.get("/api/v1/topics/events/messages?from=time&time=0"), &b)
	if len(b.Records) != 6 {
		t.Fatalf("from time 0: %d records, want 6", len(b.Records))
	}
	for _, bad := range []string{"from=sideways", "from=offset&offset=-1", "view=pdf", "partition=7", "resume=x", "limit=0", "in=body"} {
		if r := n.get("/api/v1/topics/events/messages?" + bad); r.code != http.StatusBadRequest {
			t.Fatalf("%s: %d %s, want 400", bad, r.code, r.body)
		}
	}
	if r := n.get("/console/topics/events/messages?from=earliest&key=user-0"); r.code != http.StatusOK ||
		!strings.Contains(r.body, `id="found">1<`) {
		t.Fatalf("message page: %d", r.code)
	}
}

// TestBrowseBounded: a scan stops at max_records (and max_bytes), says
// what it read and where to resume, and following the resume points
// reads every record exactly once.
func TestBrowseBounded(t *testing.T) {
	n := startNode(t)
	n.createTopic("log", 2)
	for p := range int32(2) {
		var kvs []string
		for i := range 25 {
			kvs = append(kvs, fmt.Sprintf("k%d-%d:v%d %s", p, i, i, strings.Repeat("x", 100)))
		}
		n.produce("log", p, kvs...)
	}
	seen := map[string]int{}
	resume, rounds := "", 0
	for {
		rounds++
		q := "/api/v1/topics/log/messages?from=earliest&max_records=7"
		if resume != "" {
			q += "&resume=" + url.QueryEscape(resume)
		}
		var b console.Browse
		mustOK(t, "bounded browse", n.get(q), &b)
		if b.Scanned.Records > 7 || b.Limits.MaxRecords != 7 {
			t.Fatalf("scanned %d records with max_records=7", b.Scanned.Records)
		}
		for _, m := range b.Records {
			seen[fmt.Sprintf("%d/%d", m.Partition, m.Offset)]++
		}
		if b.Complete {
			if b.Stopped != "end" {
				t.Fatalf("complete but stopped: %s", b.Stopped)
			}
			break
		}
		if b.Stopped != "records" || b.Resume == resume {
			t.Fatalf("round %d: stopped %q, resume %q after %q", rounds, b.Stopped, b.Resume, resume)
		}
		resume = b.Resume
		if rounds > 20 {
			t.Fatal("no end after 20 rounds")
		}
	}
	if len(seen) != 50 {
		t.Fatalf("read %d distinct records, want 50", len(seen))
	}
	for k, c := range seen {
		if c != 1 {
			t.Fatalf("record %s read %d times", k, c)
		}
	}
	var b console.Browse
	mustOK(t, "first round", n.get("/api/v1/topics/log/messages?from=earliest&max_records=7&partition=0"), &b)
	if b.Resume != "0:7" || b.Scanned.Partitions[0].Next != 7 || b.Scanned.Partitions[0].End != 25 {
		t.Fatalf("resume %q, scanned %+v", b.Resume, b.Scanned)
	}
	mustOK(t, "results bound", n.get("/api/v1/topics/log/messages?from=earliest&limit=3&partition=1"), &b)
	if len(b.Records) != 3 || b.Stopped != "results" || b.Resume != "1:3" {
		t.Fatalf("limit 3: %d records, stopped %s, resume %s", len(b.Records), b.Stopped, b.Resume)
	}
	mustOK(t, "bytes bound", n.get("/api/v1/topics/log/messages?from=earliest&max_bytes=1024"), &b)
	if b.Stopped != "bytes" || b.Complete || b.Scanned.Bytes < 1024 {
		t.Fatalf("max_bytes 1024: stopped %s, scanned %d bytes", b.Stopped, b.Scanned.Bytes)
	}
}

// TestLiveTail: a browse with wait_ms at the end of the log long-polls
// and returns the record produced meanwhile.
func TestLiveTail(t *testing.T) {
	n := startNode(t)
	n.createTopic("tail", 2)
	var b console.Browse
	mustOK(t, "at the end", n.get("/api/v1/topics/tail/messages?from=end"), &b)
	if len(b.Records) != 0 || b.Resume != "0:0,1:0" {
		t.Fatalf("at the end: %+v", b)
	}
	done := make(chan console.Browse, 1)
	go func() {
		var b console.Browse
		r := n.get("/api/v1/topics/tail/messages?wait_ms=10000&resume=" + url.QueryEscape("0:0,1:0"))
		if r.code == http.StatusOK {
			r.json(t, &b)
		}
		done <- b
	}()
	start := time.Now()
	// The long poll is parked by the time this record is committed, or
	// it finds it at once: either way it must return it.
	n.produce("tail", 1, "late:arrival")
	select {
	case b := <-done:
		if len(b.Records) != 1 || b.Records[0].Value.Text != "arrival" || b.Resume != "0:0,1:1" {
			t.Fatalf("tail: %+v", b)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the tail did not return")
	}
	if d := time.Since(start); d > 9*time.Second {
		t.Fatalf("the tail answered after %v: it waited its whole poll", d)
	}
}

// TestProduce: the produce form's API writes a record with key and
// headers, by the key's hash or to the partition given.
func TestProduce(t *testing.T) {
	n := startNode(t)
	n.createTopic("in", 4)
	var p console.Produced
	mustOK(t, "produce", n.post("/api/v1/topics/in/messages", map[string]any{"partition": 3, "key": "k", "value": "v",
		"headers": []map[string]string{{"key": "trace", "value": "abc"}}}), &p)
	if p.Partition != 3 || p.Offset != 0 {
		t.Fatalf("produced %+v", p)
	}
	var b console.Browse
	mustOK(t, "read back", n.get("/api/v1/topics/in/messages?from=earliest&partition=3"), &b)
	if len(b.Records) != 1 || b.Records[0].Headers[0].Key != "trace" || b.Records[0].Headers[0].Value.Text != "abc" {
		t.Fatalf("read back %+v", b.Records)
	}
	mustOK(t, "by key", n.post("/api/v1/topics/in/messages", map[string]any{"key": "k", "value": "again"}), &p)
	var again console.Produced
	mustOK(t, "by key again", n.post("/api/v1/topics/in/messages", map[string]any{"key": "k", "value": "again"}), &again)
	if again.Partition != p.Partition {
		t.Fatalf("same key, partitions %d and %d", p.Partition, again.Partition)
	}
	if r := n.post("/api/v1/topics/in/messages", map[string]any{"partition": 9, "value": "x"}); r.code != http.StatusBadRequest {
		t.Fatalf("partition 9 of 4: %d", r.code)
	}
	if r := n.post("/api/v1/topics/in/messages", map[string]any{"value": "x", "extra": 1}); r.code != http.StatusBadRequest {
		t.Fatalf("unknown field: %d", r.code)
	}
}

// TestConsumerGroups: a group's lag in records and time, its members, and
// an offset reset: the dry run changes nothing, a reset without its
// confirmation is refused, one with live members too, and a confirmed
// reset of an empty group moves the offsets.
func TestConsumerGroups(t *testing.T) {
	n := startNode(t)
	n.createTopic("orders", 2)
	n.produce("orders", 0, "a:1", "b:2", "c:3", "d:4")
	n.produce("orders", 1, "e:5")
	ctx := ctxT(t)
	j, err := n.grpc.JoinGroup(ctx, &stratav1.JoinGroupRequest{Group: "billing", ClientId: "biller", Topics: []string{"orders"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.grpc.CommitOffsets(ctx, &stratav1.CommitOffsetsRequest{Group: "billing", MemberId: j.MemberId, Generation: j.Generation,
		Offsets: []*stratav1.PartitionOffset{{Topic: "orders", Partition: 0, Offset: 1}}}); err != nil {
		t.Fatal(err)
	}
	var gl struct{ Groups []console.GroupSummary }
	mustOK(t, "groups", n.get("/api/v1/groups"), &gl)
	if len(gl.Groups) != 1 || gl.Groups[0].Group != "billing" || gl.Groups[0].Members != 1 {
		t.Fatalf("groups %+v", gl)
	}
	var g console.Group
	mustOK(t, "group", n.get("/api/v1/groups/billing"), &g)
	if len(g.Members) != 1 || g.Members[0].ClientID != "biller" || g.LagRecords != 4 || len(g.Partitions) != 2 ||
		g.Partitions[0].Committed != 1 || g.Partitions[0].LagRecords != 3 || g.Partitions[0].LagSeconds <= 0 {
		t.Fatalf("group %+v", g)
	}
	var tp console.Topic
	mustOK(t, "topic readers", n.get("/api/v1/topics/orders"), &tp)
	if len(tp.Readers.Groups) != 1 || tp.Readers.Groups[0].Group != "billing" || tp.Readers.Groups[0].LagRecords != 3 {
		t.Fatalf("readers %+v", tp.Readers)
	}

	var plan console.ResetPlan
	mustOK(t, "dry run", n.post("/api/v1/groups/billing/reset", map[string]any{"topic": "orders", "to": "latest", "dry_run": true}), &plan)
	if !plan.DryRun || plan.LiveMembers != 1 || plan.Warning == "" || len(plan.Partitions) != 2 ||
		plan.Partitions[0] != (console.ResetShift{Partition: 0, Current: 1, Target: 4, Delta: -3}) ||
		plan.Partitions[1] != (console.ResetShift{Partition: 1, Current: -1, Target: 1}) {
		t.Fatalf("dry run %+v", plan)
	}
	mustOK(t, "group after the dry run", n.get("/api/v1/groups/billing"), &g)
	if g.Partitions[0].Committed != 1 {
		t.Fatalf("the dry run moved the offset to %d", g.Partitions[0].Committed)
	}
	if r := n.post("/api/v1/groups/billing/reset", map[string]any{"topic": "orders", "to": "latest"}); r.code != http.StatusBadRequest {
		t.Fatalf("reset without confirm: %d %s", r.code, r.body)
	}
	if r := n.post("/api/v1/groups/billing/reset", map[string]any{"topic": "orders", "to": "latest", "confirm": true}); r.code != http.StatusConflict {
		t.Fatalf("reset with a live member: %d %s", r.code, r.body)
	}
	if _, err := n.grpc.LeaveGroup(ctx, &stratav1.LeaveGroupRequest{Group: "billing", MemberId: j.MemberId}); err != nil {
		t.Fatal(err)
	}
	mustOK(t, "reset", n.post("/api/v1/groups/billing/reset", map[string]any{"topic": "orders", "to": "offset", "offset": 2,
		"partitions": []int{0}, "confirm": true}), &plan)
	if plan.DryRun || len(plan.Partitions) != 1 || plan.Partitions[0].Target != 2 || plan.Partitions[0].Current != 1 {
		t.Fatalf("reset %+v", plan)
	}
	mustOK(t, "group after the reset", n.get("/api/v1/groups/billing"), &g)
	if g.Partitions[0].Committed != 2 || len(g.Members) != 0 {
		t.Fatalf("after the reset: %+v", g)
	}
	if r := n.get("/console/groups/billing"); r.code != http.StatusOK || !strings.Contains(r.body, "records behind") {
		t.Fatalf("group page: %d", r.code)
	}
}

// TestQueueAndRedrive: a queue group's counts and leases per partition;
// its dead letters with their reason, error and source decoded; a redrive
// without confirmation moves nothing, and one of max N moves exactly N.
func TestQueueAndRedrive(t *testing.T) {
	n := startNode(t)
	n.createTopic("work", 1)
	ctx := ctxT(t)
	if _, err := n.grpc.CreateQueueGroup(ctx, &stratav1.CreateQueueGroupRequest{Topic: "work", Group: "workers",
		Settings: &stratav1.QueueSettings{MaxDeliveries: 3, AckTimeoutMs: 60000}}); err != nil {
		t.Fatal(err)
	}
	var kvs []string
	for i := range 12 {
		kvs = append(kvs, fmt.Sprintf("job-%d:payload %d", i, i))
	}
	n.produce("work", 0, kvs...)
	recv, err := n.grpc.QueueReceive(ctx, &stratav1.QueueReceiveRequest{Topic: "work", Group: "workers", MemberId: "w1",
		Partition: -1, MaxMessages: 12, MaxWaitMs: 5000})
	if err != nil || len(recv.Messages) != 12 {
		t.Fatalf("receive: %d messages, %v", len(recv.GetMessages()), err)
	}
	var q console.Queue
	mustOK(t, "queue with leases", n.get("/api/v1/queues/work/workers"), &q)
	if len(q.Partitions) != 1 || q.Partitions[0].Leased != 12 || len(q.Members) != 1 || q.Members[0].Member != "w1" ||
		q.Members[0].Leased != 12 || q.Settings.MaxDeliveries != 3 || q.Settings.DeadLetterTopic != "work.workers.dlq" {
		t.Fatalf("queue %+v", q)
	}
	var offs []int64
	for _, m := range recv.Messages {
		offs = append(offs, m.Offset)
	}
	if _, err := n.grpc.QueueReject(ctx, &stratav1.QueueSettleRequest{Topic: "work", Group: "workers", MemberId: "w1",
		Offsets: []*stratav1.QueuePartitionOffsets{{Partition: 0, Offsets: offs}}, Error: "<b>bad</b> input"}); err != nil {
		t.Fatal(err)
	}
	var dl console.DeadLetters
	waitFor(t, 20*time.Second, "12 dead letters", func() string {
		r := n.get("/api/v1/queues/work/workers/dead-letters")
		if r.code != http.StatusOK {
			return r.body // the dead-letter topic is being made
		}
		r.json(t, &dl)
		if len(dl.DeadLetters) != 12 {
			return fmt.Sprintf("%d dead letters", len(dl.DeadLetters))
		}
		return ""
	})
	d := dl.DeadLetters[5]
	if d.Reason != "rejected" || d.Error != "<b>bad</b> input" || d.SourceTopic != "work" || d.SourcePartition != 0 ||
		d.SourceOffset != 5 || d.Deliveries != 1 || d.Key.Text != "job-5" || d.ID != "work/0/5/workers" {
		t.Fatalf("dead letter %+v", d)
	}
	mustOK(t, "dead letters of another reason", n.get("/api/v1/queues/work/workers/dead-letters?reason=max-deliveries"), &dl)
	if len(dl.DeadLetters) != 0 {
		t.Fatalf("%d dead letters with reason max-deliveries, want 0", len(dl.DeadLetters))
	}
	if r := n.get("/console/queues/work/workers"); r.code != http.StatusOK || !strings.Contains(r.body, "&lt;b&gt;bad&lt;/b&gt; input") {
		t.Fatalf("queue page: %d", r.code)
	}

	end := func() int64 {
		var tp console.Topic
		mustOK(t, "topic", n.get("/api/v1/topics/work"), &tp)
		return tp.Partitions[0].End
	}
	if r := n.post("/api/v1/queues/work/workers/redrive", map[string]any{"max": 4}); r.code != http.StatusBadRequest || end() != 12 {
		t.Fatalf("redrive without confirm: %d %s; end %d", r.code, r.body, end())
	}
	var rd console.Redriven
	mustOK(t, "redrive 4", n.post("/api/v1/queues/work/workers/redrive", map[string]any{"max": 4, "reason": "rejected", "confirm": true}), &rd)
	if rd.Redriven != 4 || end() != 16 {
		t.Fatalf("redrive of 4 moved %d; the topic ends at %d, want 16", rd.Redriven, end())
	}
	mustOK(t, "redrive the rest", n.post("/api/v1/queues/work/workers/redrive", map[string]any{"confirm": true}), &rd)
	if rd.Redriven != 8 || end() != 24 {
		t.Fatalf("redrive of the rest moved %d; the topic ends at %d, want 24", rd.Redriven, end())
	}
	var b console.Browse
	mustOK(t, "redriven records", n.get("/api/v1/topics/work/messages?from=offset&offset=12&contains=strata-redriven-from&in=headers"), &b)
	if len(b.Records) != 12 {
		t.Fatalf("%d redriven records carry strata-redriven-from, want 12", len(b.Records))
	}
	for _, bad := range []map[string]any{{"max": -1, "confirm": true}, {"reason": "bored", "confirm": true}} {
		if r := n.post("/api/v1/queues/work/workers/redrive", bad); r.code != http.StatusBadRequest {
			t.Fatalf("redrive %v: %d", bad, r.code)
		}
	}
	var ql struct {
		QueueGroups []console.QueueRef `json:"queue_groups"`
	}
	mustOK(t, "queue groups", n.get("/api/v1/queues"), &ql)
	if len(ql.QueueGroups) != 1 || ql.QueueGroups[0].Group != "workers" {
		t.Fatalf("queue groups %+v", ql)
	}
}
