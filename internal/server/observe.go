package server

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/stratalog/strata/internal/broker"
)

// ObserveConfig configures an Observer.
type ObserveConfig struct {
	// SlowRequest is the time above which a unary call is logged at Warn,
	// not counting the time it waited in a long poll (a fetch waiting for
	// records, a queue receive waiting for a lease). 0 logs none. Default
	// 1 s.
	SlowRequest time.Duration
	// Logger receives the slow-request log; nil discards it.
	Logger *slog.Logger
}

// DefaultObserveConfig returns the defaults.
func DefaultObserveConfig() ObserveConfig { return ObserveConfig{SlowRequest: time.Second} }

// Validate checks the configuration.
func (c ObserveConfig) Validate() error {
	if c.SlowRequest < 0 {
		return fmt.Errorf("server: slow request threshold %v < 0", c.SlowRequest)
	}
	return nil
}

// Observer counts and times the calls of a gRPC server by method and
// status code, and logs the slow ones. It is a prometheus.Collector; its
// interceptors go after those of GRPCOptions and before the security
// interceptors, so that refused calls are counted too.
type Observer struct {
	cfg      ObserveConfig
	log      *slog.Logger
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewObserver returns an Observer.
func NewObserver(cfg ObserveConfig) (*Observer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	lg := cfg.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	return &Observer{
		cfg: cfg,
		log: lg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_rpc_requests_total", Help: "gRPC calls answered, by method and status code."}, []string{"method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "strata_rpc_duration_seconds", Help: "Duration of gRPC calls (of a stream: its life), long polls included, by method.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 12)}, []string{"method"}), // 100 µs to about 7 min
	}, nil
}

// Describe implements prometheus.Collector.
func (o *Observer) Describe(ch chan<- *prometheus.Desc) {
	o.requests.Describe(ch)
	o.duration.Describe(ch)
}

// Collect implements prometheus.Collector.
func (o *Observer) Collect(ch chan<- prometheus.Metric) {
	o.requests.Collect(ch)
	o.duration.Collect(ch)
}

// methodLabel names a method by its name alone for the strata.v1 service
// and by service/method for the others (health, reflection).
func methodLabel(full string) string {
	if m, ok := strings.CutPrefix(full, "/strata.v1.Strata/"); ok {
		return m
	}
	return strings.TrimPrefix(full, "/")
}

// UnaryInterceptor counts, times and, when slow, logs a unary call.
func (o *Observer) UnaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	ctx, waits := broker.WithWaitMeter(ctx)
	resp, err := handler(ctx, req)
	d := time.Since(start)
	o.observe(info.FullMethod, err, d)
	if served := d - waits.Waited(); o.cfg.SlowRequest > 0 && served > o.cfg.SlowRequest {
		id := identityOf(ctx)
		o.log.Warn("slow request", "method", methodLabel(info.FullMethod), "duration", served, "waited", waits.Waited(),
			"code", status.Code(err).String(), "peer", id.remote, "principal", id.principal)
	}
	return resp, err
}

// StreamInterceptor counts and times a streaming call (its whole life).
func (o *Observer) StreamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	start := time.Now()
	err := handler(srv, ss)
	o.observe(info.FullMethod, err, time.Since(start))
	return err
}

func (o *Observer) observe(full string, err error, d time.Duration) {
	m := methodLabel(full)
	o.requests.WithLabelValues(m, status.Code(err).String()).Inc()
	o.duration.WithLabelValues(m).Observe(d.Seconds())
}
