package console

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/stratalog/strata/api/record"
	stratav1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/internal/auth"
)

// maxTailWaiters bounds the partitions a live tail long-polls at once;
// a tail of more partitions waits a second and scans again.
const maxTailWaiters = 32

// waitAny long-polls the partitions of a browse that reached their end,
// for up to wait, and reports whether one of them got a record. The
// partitions that did are scanned again by the caller.
func (cl *call) waitAny(scans []*partScan, wait time.Duration) bool {
	var waiting []*partScan
	for _, s := range scans {
		if s.out.Error == "" {
			waiting = append(waiting, s)
		}
	}
	if len(waiting) == 0 {
		return false
	}
	defer func() {
		for _, s := range waiting {
			s.done = false
		}
	}()
	ctx, cancel := context.WithTimeout(cl.ctx, wait)
	defer cancel()
	if len(waiting) > maxTailWaiters {
		t := time.NewTimer(min(wait, time.Second))
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		return true
	}
	got := make(chan struct{}, len(waiting))
	var wg sync.WaitGroup
	for _, s := range waiting {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fr, err := cl.fetchCtx(ctx, s.ref, s.pos, 1024, wait)
			if err == nil && len(fr.Records) > 0 {
				got <- struct{}{}
				cancel()
			}
		}()
	}
	wg.Wait()
	return len(got) > 0
}

func (c *Console) apiBrowse(cl *call) (any, error) {
	q, err := c.parseBrowse(cl.r.URL.Query())
	if err != nil {
		return nil, err
	}
	if q.Wait > 0 {
		// The long poll gets its own time beyond the request's.
		ctx, cancel := context.WithTimeout(cl.r.Context(), c.cfg.RequestTimeout+q.Wait)
		defer cancel()
		cl.ctx = ctx
	}
	return cl.browse(cl.r.PathValue("topic"), q)
}

// produceRequest is the body of POST /api/v1/topics/{topic}/messages: one
// test record, as text.
type produceRequest struct {
	// Partition is the partition to write to; absent: by the key's hash
	// (as the clients do), or a random one without a key.
	Partition *int32 `json:"partition,omitempty"`
	// Key is the record's key; absent: none (null).
	Key     *string `json:"key,omitempty"`
	Value   string  `json:"value"`
	Headers []struct {
		Key   string `json:"key"`
		Value string `json:"value"`
	} `json:"headers,omitempty"`
}

// Produced is where a test record landed.
type Produced struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
}

func (c *Console) apiProduce(cl *call) (any, error) {
	topic := cl.r.PathValue("topic")
	var req produceRequest
	if err := cl.decode(&req); err != nil {
		return nil, err
	}
	if err := cl.require(auth.OpProduce, auth.ResourceTopic, topic); err != nil {
		return nil, err
	}
	_, refs, err := cl.loadTopic(topic)
	if err != nil {
		return nil, err
	}
	rec := record.Record{Value: []byte(req.Value), Timestamp: time.Now()}
	if req.Key != nil {
		rec.Key = []byte(*req.Key)
	}
	for _, h := range req.Headers {
		if h.Key == "" {
			return nil, fmt.Errorf("%w: a header needs a key", ErrBadRequest)
		}
		rec.Headers = append(rec.Headers, record.Header{Key: h.Key, Value: []byte(h.Value)})
	}
	var p int32
	switch {
	case req.Partition != nil:
		if *req.Partition < 0 || int(*req.Partition) >= len(refs) {
			return nil, fmt.Errorf("%w: partition %d: the topic has %d", ErrBadRequest, *req.Partition, len(refs))
		}
		p = *req.Partition
	case rec.Key != nil:
		p = int32(record.KeyPartition(rec.Key, len(refs)))
	default:
		p = int32(rand.IntN(len(refs)))
	}
	batch, err := record.AppendBatch(nil, []record.Record{rec}, record.BatchOptions{})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	off, err := onLeader(cl, refs[p], func() (int64, error) {
		r, err := c.b.Produce(cl.ctx, topic, p, batch)
		return r.BaseOffset, err
	}, func(s stratav1.StrataClient) (int64, error) {
		r, err := s.Produce(cl.ctx, &stratav1.ProduceRequest{Topic: topic, Partition: p, Batch: batch})
		if err != nil {
			return 0, err
		}
		return r.BaseOffset, nil
	})
	if err != nil {
		return nil, err
	}
	return Produced{Topic: topic, Partition: p, Offset: off}, nil
}
