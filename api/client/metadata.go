package client

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"

	stratav1 "github.com/stratalog/strata/api/v1"
)

// topicMeta is the cached metadata of one topic.
type topicMeta struct {
	leaders []string // gRPC address of each partition's leader; "" when none
	fetched time.Time
	stale   bool // an error said the leaders moved
}

// refresh reads the metadata of topics (all when empty) and updates the
// cache. Concurrent refreshes of the same topics share one request.
func (c *Client) refresh(ctx context.Context, topics []string) (*stratav1.MetadataResponse, error) {
	topics = slices.Clone(topics)
	slices.Sort(topics)
	topics = slices.Compact(topics)
	v, err, _ := c.sf.Do("meta:"+strings.Join(topics, "\x00"), func() (any, error) {
		var resp *stratav1.MetadataResponse
		err := c.callAny(ctx, ErrUnknownTopic, func(ctx context.Context, s stratav1.StrataClient) error {
			var err error
			resp, err = s.Metadata(ctx, &stratav1.MetadataRequest{Topics: topics})
			return err
		})
		if err != nil {
			return nil, err
		}
		c.store(resp, topics)
		return resp, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*stratav1.MetadataResponse), nil
}

// store puts a metadata response in the cache. Topics asked for but not
// in the response are forgotten.
func (c *Client) store(resp *stratav1.MetadataResponse, asked []string) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range resp.GetNodes() {
		if n.GetId() != "" && n.GetGrpcAddr() != "" {
			c.nodes[n.GetId()] = n.GetGrpcAddr()
		}
	}
	got := map[string]bool{}
	for _, t := range resp.GetTopics() {
		got[t.GetName()] = true
		tm := &topicMeta{fetched: now, leaders: make([]string, len(t.GetPartitions()))}
		for _, p := range t.GetPartitions() {
			i := int(p.GetPartition())
			if i < 0 || i >= len(tm.leaders) {
				continue // a malformed answer; leave the slot empty
			}
			addr := p.GetLeaderAddr()
			if addr == "" && p.GetLeaderId() != "" {
				addr = c.nodes[p.GetLeaderId()]
			}
			tm.leaders[i] = addr
		}
		c.topics[t.GetName()] = tm
	}
	for _, t := range asked {
		if !got[t] {
			delete(c.topics, t)
		}
	}
}

// cachedTopic returns the cached metadata of topic when it is fresh.
func (c *Client) cachedTopic(topic string) *topicMeta {
	c.mu.Lock()
	defer c.mu.Unlock()
	tm := c.topics[topic]
	if tm == nil || tm.stale || time.Since(tm.fetched) > c.cfg.MetadataMaxAge {
		return nil
	}
	return tm
}

// topic returns the metadata of topic, reading it when the cache has none
// that is fresh.
func (c *Client) topic(ctx context.Context, topic string) (*topicMeta, error) {
	if tm := c.cachedTopic(topic); tm != nil {
		return tm, nil
	}
	if _, err := c.refresh(ctx, []string{topic}); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	tm := c.topics[topic]
	if tm == nil {
		return nil, newError(codes.NotFound, fmt.Sprintf("unknown topic %q", topic), ErrUnknownTopic)
	}
	return tm, nil
}

// PartitionCount returns the number of partitions of topic, from the
// cache when it is fresh.
func (c *Client) PartitionCount(ctx context.Context, topic string) (int, error) {
	tm, err := c.topic(ctx, topic)
	if err != nil {
		return 0, err
	}
	return len(tm.leaders), nil
}

// leader returns the address of the leader of topic/partition. A
// partition without a leader is an Unavailable error, so callers retry.
func (c *Client) leader(ctx context.Context, topic string, partition int32) (string, error) {
	tm, err := c.topic(ctx, topic)
	if err != nil {
		return "", err
	}
	if partition < 0 || int(partition) >= len(tm.leaders) {
		return "", newError(codes.NotFound,
			fmt.Sprintf("unknown partition %d of %q (%d partitions)", partition, topic, len(tm.leaders)), ErrUnknownPartition)
	}
	c.mu.Lock()
	addr := tm.leaders[partition]
	c.mu.Unlock()
	if addr == "" {
		c.invalidate(topic)
		c.passCoordinator()
		return "", newError(codes.Unavailable, fmt.Sprintf("no leader for %s/%d", topic, partition))
	}
	return addr, nil
}

// setLeader records a leader a NotLeader answer named.
func (c *Client) setLeader(topic string, partition int32, addr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if tm := c.topics[topic]; tm != nil && partition >= 0 && int(partition) < len(tm.leaders) {
		tm.leaders[partition] = addr
	}
}

// invalidate marks topic's metadata stale, so the next use reads it again.
func (c *Client) invalidate(topic string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if tm := c.topics[topic]; tm != nil {
		tm.stale = true
	}
}
