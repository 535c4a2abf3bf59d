package kafka

import (
	"errors"
	"reflect"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// metrics count the listener's requests by API and by the first error
// code of their response ("NONE" when all is well).
type metrics struct {
	requests *prometheus.CounterVec
}

func newMetrics() *metrics {
	return &metrics{requests: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "strata_kafka_requests_total",
		Help: "Kafka requests answered, by API and by the first error code of the response (NONE: none).",
	}, []string{"api", "error"})}
}

// Metrics returns the listener's Prometheus metrics.
func (s *Server) Metrics() prometheus.Collector { return s.m.requests }

// count counts one answered request (resp nil: a produce with acks=0).
func (m *metrics) count(key int16, resp kmsg.Response) {
	name := "NONE"
	if lr, ok := resp.(*leasedResponse); ok {
		resp = lr.Response
	}
	if resp != nil {
		if code := firstErrorCode(reflect.ValueOf(resp), 0); code != 0 {
			var ke *kerr.Error
			if err := kerr.ErrorForCode(code); errors.As(err, &ke) {
				name = ke.Message
			} else {
				name = "UNKNOWN_SERVER_ERROR"
			}
		}
	}
	m.requests.WithLabelValues(kmsg.NameForKey(key), name).Inc()
}

// firstErrorCode returns the first non-zero ErrorCode field of a response,
// depth first: the top level's, then those of its topics and partitions.
// It looks into structs and slices of structs only, never into byte
// slices (records), so its cost is in the number of partitions.
func firstErrorCode(v reflect.Value, depth int) int16 {
	if depth > 6 {
		return 0
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return 0
		}
		return firstErrorCode(v.Elem(), depth+1)
	case reflect.Struct:
		if f := v.FieldByName("ErrorCode"); f.IsValid() && f.Kind() == reflect.Int16 && f.Int() != 0 {
			return int16(f.Int())
		}
		for i := range v.NumField() {
			f := v.Field(i)
			if k := f.Kind(); (k == reflect.Slice || k == reflect.Struct) && v.Type().Field(i).IsExported() {
				if c := firstErrorCode(f, depth+1); c != 0 {
					return c
				}
			}
		}
	case reflect.Slice:
		if k := v.Type().Elem().Kind(); k != reflect.Struct && k != reflect.Pointer {
			return 0
		}
		for i := range v.Len() {
			if c := firstErrorCode(v.Index(i), depth+1); c != 0 {
				return c
			}
		}
	}
	return 0
}
