package console

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/stratalog/strata/api/record"
	stratav1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/internal/auth"
	"github.com/stratalog/strata/internal/broker"
)

// browseQuery is what a browse asks for (from the URL query).
type browseQuery struct {
	Partitions []int32 // none: all
	// From is earliest, latest, offset, time or end; Resume overrides it.
	From                      string
	Offset                    int64
	TimeMs                    int64
	Resume                    map[int32]int64
	Key                       string // exact key; "" for any
	Contains                  string // substring of the fields in In; "" for any
	InKey, InValue, InHeaders bool
	View                      string // text, json or hex
	Limit                     int
	MaxRecords, MaxBytes      int
	Wait                      time.Duration // long poll when nothing is new (live tail)
	// headerEq keeps records whose headers have these values (dead
	// letters of one group and reason); set by the console, not the URL.
	headerEq map[string]string
}

// filtered reports whether the query filters records.
func (q *browseQuery) filtered() bool { return q.Key != "" || q.Contains != "" || len(q.headerEq) > 0 }

// parseBrowse reads a browse query; bounds above the console's are
// lowered to them.
func (c *Console) parseBrowse(v url.Values) (browseQuery, error) {
	q := browseQuery{From: v.Get("from"), Key: v.Get("key"), Contains: v.Get("contains"), View: v.Get("view"),
		Limit: c.cfg.MaxResults, MaxRecords: c.cfg.MaxScanRecords, MaxBytes: c.cfg.MaxScanBytes}
	if q.From == "" {
		q.From = "earliest"
	}
	if q.View == "" {
		q.View = "text"
	}
	if q.View != "text" && q.View != "json" && q.View != "hex" {
		return q, fmt.Errorf("%w: view %q: want text, json or hex", ErrBadRequest, q.View)
	}
	var err error
	if p := v.Get("partition"); p != "" && p != "all" {
		for _, s := range strings.Split(p, ",") {
			n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 32)
			if err != nil || n < 0 {
				return q, fmt.Errorf("%w: partition %q: want a partition number or all", ErrBadRequest, s)
			}
			q.Partitions = append(q.Partitions, int32(n))
		}
	}
	switch q.From {
	case "earliest", "latest", "end":
	case "offset":
		if q.Offset, err = strconv.ParseInt(v.Get("offset"), 10, 64); err != nil || q.Offset < 0 {
			return q, fmt.Errorf("%w: offset %q: want a number from 0", ErrBadRequest, v.Get("offset"))
		}
	case "time":
		if q.TimeMs, err = parseTime(v.Get("time")); err != nil {
			return q, err
		}
	default:
		return q, fmt.Errorf("%w: from %q: want earliest, latest, offset, time or end", ErrBadRequest, q.From)
	}
	if r := v.Get("resume"); r != "" {
		if q.Resume, err = parseResume(r); err != nil {
			return q, err
		}
	}
	if err := q.parseIn(v.Get("in")); err != nil {
		return q, err
	}
	bounds := []struct {
		name string
		dst  *int
		max  int
	}{{"limit", &q.Limit, c.cfg.MaxResults}, {"max_records", &q.MaxRecords, c.cfg.MaxScanRecords}, {"max_bytes", &q.MaxBytes, c.cfg.MaxScanBytes}}
	for _, b := range bounds {
		if s := v.Get(b.name); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 {
				return q, fmt.Errorf("%w: %s %q: want a number from 1", ErrBadRequest, b.name, s)
			}
			*b.dst = min(n, b.max)
		}
	}
	if s := v.Get("wait_ms"); s != "" {
		ms, err := strconv.Atoi(s)
		if err != nil || ms < 0 {
			return q, fmt.Errorf("%w: wait_ms %q: want milliseconds from 0", ErrBadRequest, s)
		}
		q.Wait = min(time.Duration(ms)*time.Millisecond, c.cfg.MaxTailWait)
	}
	return q, nil
}

// parseIn reads where a substring search looks: key, value and/or
// headers (all three when empty).
func (q *browseQuery) parseIn(in string) error {
	if in == "" {
		in = "key,value,headers"
	}
	for _, f := range strings.Split(in, ",") {
		switch strings.TrimSpace(f) {
		case "key":
			q.InKey = true
		case "value":
			q.InValue = true
		case "headers":
			q.InHeaders = true
		default:
			return fmt.Errorf("%w: in %q: want key, value and/or headers", ErrBadRequest, f)
		}
	}
	return nil
}

// parseResume reads "partition:offset,…".
func parseResume(s string) (map[int32]int64, error) {
	out := map[int32]int64{}
	for _, f := range strings.Split(s, ",") {
		ps, os, ok := strings.Cut(strings.TrimSpace(f), ":")
		p, perr := strconv.ParseInt(ps, 10, 32)
		o, oerr := strconv.ParseInt(os, 10, 64)
		if !ok || perr != nil || oerr != nil || p < 0 || o < 0 {
			return nil, fmt.Errorf("%w: resume %q: want partition:offset,…", ErrBadRequest, s)
		}
		out[int32(p)] = o
	}
	return out, nil
}

// formatResume writes positions as parseResume reads them.
func formatResume(pos map[int32]int64) string {
	var b strings.Builder
	for i, p := range sortedParts(pos) {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%d:%d", p, pos[p])
	}
	return b.String()
}

// Browse is the answer of a browse: the matching records and what was
// scanned to find them.
type Browse struct {
	Topic   string    `json:"topic"`
	View    string    `json:"view"`
	Records []Message `json:"records"`
	Scanned Scanned   `json:"scanned"`
	// Resume is the position to continue from (partition:offset,…), to
	// pass back as resume=; it names every partition browsed.
	Resume string `json:"resume"`
	// Complete is true when every partition was read to its end.
	Complete bool `json:"complete"`
	// Stopped says why the scan ended: end (every partition read to its
	// end), results (limit matches found), records or bytes (a scan
	// bound reached).
	Stopped string `json:"stopped"`
	Limits  Limits `json:"limits"`
}

// Scanned is what a browse read.
type Scanned struct {
	Records    int           `json:"records"`
	Bytes      int64         `json:"bytes"`
	Partitions []PartScanned `json:"partitions"`
}

// PartScanned is what a browse read of one partition: offsets From (the
// first read) to Next (the next to read), of a log ending at End.
type PartScanned struct {
	Partition int32 `json:"partition"`
	From      int64 `json:"from"`
	Next      int64 `json:"next"`
	End       int64 `json:"end"`
	Records   int   `json:"records"`
	Done      bool  `json:"done"`
	// Error says why the partition could not be read to its end.
	Error string `json:"error,omitempty"`
}

// Limits are the bounds a browse ran with.
type Limits struct {
	Results    int `json:"results"`
	MaxRecords int `json:"max_records"`
	MaxBytes   int `json:"max_bytes"`
}

// scanChunk is the most one fetch of a browse reads.
const scanChunk = 256 << 10

// partScan is one partition's progress in a browse.
type partScan struct {
	ref  partRef
	out  PartScanned
	pos  int64
	done bool
}

// browse reads topic as q asks. The caller needs consume on the topic
// (a fetch's permission).
func (cl *call) browse(topic string, q browseQuery) (Browse, error) {
	if err := cl.require(auth.OpConsume, auth.ResourceTopic, topic); err != nil {
		return Browse{}, err
	}
	_, refs, err := cl.loadTopic(topic)
	if err != nil {
		return Browse{}, err
	}
	parts, err := pickPartitions(q.Partitions, len(refs))
	if err != nil {
		return Browse{}, err
	}
	res := Browse{Topic: topic, View: q.View, Records: []Message{},
		Limits: Limits{Results: q.Limit, MaxRecords: q.MaxRecords, MaxBytes: q.MaxBytes}}
	scans := make([]*partScan, 0, len(parts))
	var firstErr error
	failed := 0
	for _, p := range parts {
		s := &partScan{ref: refs[p]}
		pos, err := cl.startAt(refs[p], q, len(parts))
		s.pos, s.out = pos, PartScanned{Partition: p, From: pos, Next: pos}
		if err != nil {
			// This partition cannot be read now (not ready, no leader):
			// the others still are, and the answer says why not this one.
			s.done, s.out.Error = true, err.Error()
			firstErr = cmp.Or(firstErr, err)
			failed++
		}
		scans = append(scans, s)
	}
	if failed > 0 && failed == len(parts) {
		return Browse{}, firstErr
	}
	res.Stopped = cl.scan(scans, q, &res)
	if res.Stopped == "end" && len(res.Records) == 0 && q.Wait > 0 {
		if cl.waitAny(scans, q.Wait) {
			res.Stopped = cl.scan(scans, q, &res)
		}
	}
	resume := map[int32]int64{}
	res.Complete = true
	for _, s := range scans {
		s.out.Next, s.out.Done = s.pos, s.done
		res.Scanned.Partitions = append(res.Scanned.Partitions, s.out)
		resume[s.out.Partition] = s.pos
		res.Complete = res.Complete && s.done
	}
	res.Resume = formatResume(resume)
	sort.SliceStable(res.Records, func(i, j int) bool { return res.Records[i].TimestampMs < res.Records[j].TimestampMs })
	return res, nil
}

// startAt is where a browse of a partition starts.
func (cl *call) startAt(ref partRef, q browseQuery, nParts int) (int64, error) {
	if off, ok := q.Resume[ref.Partition]; ok {
		return off, nil
	}
	switch q.From {
	case "earliest":
		return cl.listOffset(ref, broker.SpecEarliest, 0)
	case "end":
		return cl.listOffset(ref, broker.SpecLatest, 0)
	case "offset":
		return q.Offset, nil
	case "time":
		return cl.listOffset(ref, broker.SpecTimestamp, q.TimeMs)
	}
	// latest: the last records, as many as would be shown (or, with a
	// filter, as the scan bound allows).
	lo, err := cl.listOffset(ref, broker.SpecEarliest, 0)
	if err != nil {
		return 0, err
	}
	hi, err := cl.listOffset(ref, broker.SpecLatest, 0)
	if err != nil {
		return 0, err
	}
	n := int64(q.Limit)
	if q.filtered() {
		n = int64(max(q.MaxRecords/max(nParts, 1), 1))
	}
	return max(lo, hi-n), nil
}

// scan reads the partitions round-robin, a chunk at a time, until every
// one is at its end or a bound is reached, and returns why it stopped.
func (cl *call) scan(scans []*partScan, q browseQuery, res *Browse) string {
	for {
		progressed := false
		for _, s := range scans {
			if s.done {
				continue
			}
			switch {
			case len(res.Records) >= q.Limit:
				return "results"
			case res.Scanned.Records >= q.MaxRecords:
				return "records"
			case res.Scanned.Bytes >= int64(q.MaxBytes):
				return "bytes"
			}
			progressed = true
			// Each partition may fill its share of what is left to show
			// per round, so that a browse of all partitions shows them
			// all, not only the first one's records.
			quota := max((q.Limit-len(res.Records))/max(unfinished(scans), 1), 1)
			if stop := cl.scanChunk(s, q, res, quota); stop != "" {
				return stop
			}
		}
		if !progressed {
			return "end"
		}
	}
}

// scanChunk reads one chunk of a partition; it returns a reason when a
// bound stopped it inside the chunk.
func (cl *call) scanChunk(s *partScan, q browseQuery, res *Browse, quota int) string {
	maxBytes := min(scanChunk, max(q.MaxBytes-int(res.Scanned.Bytes), 1024))
	fr, err := cl.fetch(s.ref, s.pos, maxBytes, 0)
	if err != nil {
		if errors.Is(err, broker.ErrOffsetOutOfRange) {
			cl.clampPosition(s)
			return ""
		}
		s.done, s.out.Error = true, err.Error()
		cl.c.log.Debug("console: browse fetch", "topic", s.ref.Topic, "partition", s.ref.Partition, "err", err)
		return ""
	}
	s.out.End = fr.HighWatermark
	res.Scanned.Bytes += int64(len(fr.Records))
	stop, found := "", 0
	next, derr := record.DecodeBatchesFrom(fr.Records, s.pos, func(r record.Record) bool {
		res.Scanned.Records++
		s.out.Records++
		s.pos = r.Offset + 1
		if q.matches(r) {
			res.Records = append(res.Records, cl.c.message(s.ref.Partition, r, q.View))
			found++
		}
		switch {
		case len(res.Records) >= q.Limit:
			stop = "results"
		case res.Scanned.Records >= q.MaxRecords:
			stop = "records"
		}
		return stop == "" && found < quota
	})
	if derr != nil {
		s.done, s.out.Error = true, derr.Error()
		cl.c.log.Warn("console: undecodable batch", "topic", s.ref.Topic, "partition", s.ref.Partition, "offset", s.pos, "err", derr)
		return ""
	}
	if stop == "" && found < quota {
		s.pos = max(s.pos, next) // past a trailing control batch
	}
	if s.pos >= fr.HighWatermark {
		s.done = true
	}
	return stop
}

// unfinished counts the partitions not yet read to their end.
func unfinished(scans []*partScan) int {
	n := 0
	for _, s := range scans {
		if !s.done {
			n++
		}
	}
	return n
}

// clampPosition moves a position outside the log to its nearer end.
func (cl *call) clampPosition(s *partScan) {
	lo, err := cl.listOffset(s.ref, broker.SpecEarliest, 0)
	if err != nil {
		s.done = true
		return
	}
	if s.pos < lo {
		s.pos = lo
		s.out.From = lo
		return
	}
	hi, err := cl.listOffset(s.ref, broker.SpecLatest, 0)
	if err != nil {
		s.done = true
		return
	}
	s.pos, s.out.End, s.done = min(s.pos, hi), hi, true
}

// matches reports whether r passes the query's filters.
func (q *browseQuery) matches(r record.Record) bool {
	if q.Key != "" && string(r.Key) != q.Key {
		return false
	}
	for k, want := range q.headerEq {
		if !hasHeader(r, k, want) {
			return false
		}
	}
	if q.Contains == "" {
		return true
	}
	sub := []byte(q.Contains)
	if q.InKey && bytes.Contains(r.Key, sub) || q.InValue && bytes.Contains(r.Value, sub) {
		return true
	}
	if q.InHeaders {
		for _, h := range r.Headers {
			if strings.Contains(h.Key, q.Contains) || bytes.Contains(h.Value, sub) {
				return true
			}
		}
	}
	return false
}

// fetched is a fetch's answer.
type fetched struct {
	Records       []byte
	HighWatermark int64
}

// fetch reads a partition on its leader.
func (cl *call) fetch(ref partRef, offset int64, maxBytes int, wait time.Duration) (fetched, error) {
	return cl.fetchCtx(cl.ctx, ref, offset, maxBytes, wait)
}

// fetchCtx is fetch bounded by ctx.
func (cl *call) fetchCtx(ctx context.Context, ref partRef, offset int64, maxBytes int, wait time.Duration) (fetched, error) {
	return onLeader(cl, ref, func() (fetched, error) {
		r, err := cl.c.b.Fetch(ctx, ref.Topic, ref.Partition, offset, maxBytes, wait)
		return fetched{Records: r.Records, HighWatermark: r.HighWatermark}, err
	}, func(s stratav1.StrataClient) (fetched, error) {
		r, err := s.Fetch(ctx, &stratav1.FetchRequest{Topic: ref.Topic, Partition: ref.Partition, Offset: offset,
			MaxBytes: int32(maxBytes), MaxWaitMs: int32(wait / time.Millisecond)})
		if err != nil {
			return fetched{}, err
		}
		return fetched{Records: r.Records, HighWatermark: r.HighWatermark}, nil
	})
}

// hasHeader reports whether r has header key with value want.
func hasHeader(r record.Record, key, want string) bool {
	for _, h := range r.Headers {
		if h.Key == key && string(h.Value) == want {
			return true
		}
	}
	return false
}
