package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
	"google.golang.org/grpc"
	"google.golang.org/grpc/experimental"

	"github.com/stratalog/strata/api/bufpool"
	stratav1 "github.com/stratalog/strata/api/v1"
)

// windowBytes is the HTTP/2 flow-control window, per stream and per
// connection, that the client grants the brokers (which grant the same). A
// fixed window turns off gRPC's BDP estimation, which answers a received
// DATA frame with a PING whenever no estimate is in flight: with one
// request at a time, a PING and its ack for every answer, each a write and
// a wake-up on both sides. 16 MiB is the largest window BDP estimation
// would grant, so fetch throughput does not drop.
const windowBytes = 16 << 20

// Client holds the gRPC connections to the brokers and the cluster
// metadata. It is safe for concurrent use; Producers, Consumers and Admins
// share one.
type Client struct {
	cfg       Config
	log       *slog.Logger
	bootstrap []string
	dialOpts  []grpc.DialOption
	sf        singleflight.Group // coalesces metadata refreshes

	mu     sync.Mutex // guards the fields below
	closed bool
	conns  map[string]*grpc.ClientConn // by address
	nodes  map[string]string           // node id → gRPC address
	topics map[string]*topicMeta
	// coordinator is the address that last answered a cluster-wide
	// request (the metadata leader, as far as we know); tried first.
	coordinator string
}

// Dial connects to the brokers (host:port each; one that answers is
// enough) and reads the cluster's metadata. It retries per the Config
// until ctx ends.
func Dial(ctx context.Context, brokers []string, opts ...Option) (*Client, error) {
	cfg := DefaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(brokers) == 0 {
		return nil, fmt.Errorf("%w: no broker addresses", ErrInvalidConfig)
	}
	c := &Client{
		cfg:       cfg,
		log:       loggerOr(cfg.Logger),
		bootstrap: slices.Clone(brokers),
		conns:     map[string]*grpc.ClientConn{},
		nodes:     map[string]string{},
		topics:    map[string]*topicMeta{},
	}
	c.dialOpts = append(SecurityDialOptions(cfg.TLS, cfg.Username, cfg.Password),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(cfg.MaxMessageBytes), grpc.MaxCallSendMsgSize(cfg.MaxMessageBytes)),
		grpc.WithUserAgent("strata-go/"+cfg.ClientID),
		experimental.WithBufferPool(bufpool.Shared()), // see package bufpool
		// A fixed window turns off gRPC's BDP estimation and its PING
		// per received message (see windowBytes).
		grpc.WithInitialWindowSize(windowBytes), grpc.WithInitialConnWindowSize(windowBytes))
	c.dialOpts = append(c.dialOpts, cfg.DialOptions...)
	if _, err := c.refresh(ctx, nil); err != nil {
		cerr := c.Close()
		return nil, errors.Join(fmt.Errorf("%w: %v: %w", ErrNoBrokers, brokers, err), cerr)
	}
	return c, nil
}

// Close closes every connection. It is idempotent. Close the Producers,
// Consumers and Admins that use the Client first.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	conns := c.conns
	c.conns = map[string]*grpc.ClientConn{}
	c.mu.Unlock()
	var errs []error
	for addr, cc := range conns {
		if err := cc.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close connection to %s: %w", addr, err))
		}
	}
	return errors.Join(errs...)
}

// stub returns the Strata client of the node at addr, connecting lazily
// (grpc.NewClient does no I/O).
func (c *Client) stub(addr string) (stratav1.StrataClient, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	cc := c.conns[addr]
	if cc == nil {
		var err error
		if cc, err = grpc.NewClient(addr, c.dialOpts...); err != nil {
			return nil, fmt.Errorf("client: connect to %s: %w", addr, err)
		}
		c.conns[addr] = cc
	}
	return stratav1.NewStrataClient(cc), nil
}

// anyAddrs returns the addresses to try for a cluster-wide request: the
// last coordinator first, then the known nodes, then the bootstrap list.
func (c *Client) anyAddrs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	if c.coordinator != "" {
		out = append(out, c.coordinator)
	}
	ids := make([]string, 0, len(c.nodes))
	for id := range c.nodes {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		out = append(out, c.nodes[id])
	}
	out = append(out, c.bootstrap...)
	return compactAddrs(out)
}

// compactAddrs drops empty and repeated addresses, keeping the order.
func compactAddrs(in []string) []string {
	seen := make(map[string]bool, len(in))
	out := in[:0]
	for _, a := range in {
		if a != "" && !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	return out
}

func (c *Client) setCoordinator(addr string) {
	c.mu.Lock()
	c.coordinator = addr
	c.mu.Unlock()
}

// passCoordinator makes the next cluster-wide request start at the node
// after the current coordinator: the coordinator answered, but knows no
// leader for a partition (a node cut off from the others does not), so
// ask another node.
func (c *Client) passCoordinator() {
	addrs := c.anyAddrs()
	if len(addrs) > 1 {
		c.setCoordinator(addrs[1])
	}
}

// rpc is one attempt of a request against a node.
type rpc func(ctx context.Context, s stratav1.StrataClient) error

// callAny sends a cluster-wide request (metadata, topics, groups) to a
// node, follows NotLeader redirects, and retries retriable errors on the
// next node after a backoff. subject is the sentinel a bare NotFound
// means for this request.
func (c *Client) callAny(ctx context.Context, subject error, fn rpc) error {
	addrs := c.anyAddrs()
	if len(addrs) == 0 {
		return ErrNoBrokers
	}
	addr, next, redirected := "", 0, false
	for attempt := 0; ; attempt++ {
		if addr == "" {
			addr = addrs[next%len(addrs)]
			next++
		}
		s, err := c.stub(addr)
		if err != nil {
			return err
		}
		err = mapError(fn(ctx, s), subject)
		if err == nil {
			c.setCoordinator(addr)
			return nil
		}
		if !retriable(err) || attempt >= c.cfg.MaxRetries || ctx.Err() != nil {
			return err
		}
		c.log.Debug("retrying request", "addr", addr, "attempt", attempt+1, "err", err)
		if leader := leaderHint(err); leader != "" && leader != addr && !redirected {
			addr, redirected = leader, true
			c.setCoordinator(leader)
			continue
		}
		addr, redirected = "", false
		if werr := c.backoff(ctx, attempt); werr != nil {
			return err
		}
	}
}

// callPartition sends a request to the leader of topic/partition. A
// NotLeader answer naming the leader updates the cache and goes there at
// once; other retriable errors refresh the metadata and retry after a
// backoff.
func (c *Client) callPartition(ctx context.Context, topic string, partition int32, fn rpc) error {
	redirected := false
	for attempt := 0; ; attempt++ {
		addr, err := c.leader(ctx, topic, partition)
		if err == nil {
			var s stratav1.StrataClient
			if s, err = c.stub(addr); err != nil {
				return err
			}
			err = mapError(fn(ctx, s), ErrUnknownTopic)
			if err == nil {
				return nil
			}
		}
		if !retriable(err) || attempt >= c.cfg.MaxRetries || ctx.Err() != nil {
			return err
		}
		c.log.Debug("retrying partition request", "topic", topic, "partition", partition, "attempt", attempt+1, "err", err)
		if leader := leaderHint(err); leader != "" && !redirected {
			c.setLeader(topic, partition, leader)
			redirected = true
			continue
		}
		redirected = false
		c.invalidate(topic)
		if werr := c.backoff(ctx, attempt); werr != nil {
			return err
		}
	}
}

// backoff waits before retry number attempt+1, or until ctx ends.
func (c *Client) backoff(ctx context.Context, attempt int) error {
	t := time.NewTimer(backoffDelay(c.cfg.RetryBackoff, c.cfg.MaxRetryBackoff, attempt))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// backoffDelay is base·2^attempt, capped at maxDelay, less up to a fifth
// at random so that clients do not retry in step.
func backoffDelay(base, maxDelay time.Duration, attempt int) time.Duration {
	d := maxDelay
	if attempt < 30 && base<<attempt < maxDelay {
		d = base << attempt
	}
	return d - time.Duration(rand.Int64N(int64(d)/5+1))
}
