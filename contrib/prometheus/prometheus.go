// Package etcdgwprom exports etcdgw's calls as Prometheus metrics: call
// duration by method and code, attempts by member and outcome, member
// health, watch reconnects and lease keepalive round trips. It is a module
// of its own, so that importing etcdgw never pulls client_golang.
//
//	m := etcdgwprom.New()
//	prometheus.MustRegister(m)
//	c, err := etcdgw.New(etcdgw.WithObserver(m.Observer()))
package etcdgwprom

import (
	"context"
	"errors"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/etcdgw/etcdgw"
)

// Metrics is a prometheus.Collector of the calls of the clients given its
// Observer.
type Metrics struct {
	calls      *prometheus.HistogramVec
	attempts   *prometheus.CounterVec
	healthy    *prometheus.GaugeVec
	reconnects *prometheus.CounterVec
	lag        prometheus.Histogram
	keepalive  prometheus.Histogram
	tokens     *prometheus.CounterVec
}

// New returns the collectors, named etcdgw_*:
//
//	etcdgw_call_duration_seconds{method,code}       histogram of calls
//	etcdgw_attempts_total{endpoint,outcome}         attempts on members: ok, error (etcd's answer), failed (no answer)
//	etcdgw_endpoint_healthy{endpoint}               1 or 0, once the endpoint changed health
//	etcdgw_watch_reconnects_total{endpoint}         watch streams that ended and resumed
//	etcdgw_watch_lag_revisions                      how far behind the store each watch response was
//	etcdgw_keepalive_duration_seconds               round trip of lease renewals (LeaseKeepAlive)
//	etcdgw_token_refreshes_total{result}            auth token fetches: ok or error
func New() *Metrics {
	return &Metrics{
		calls: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "etcdgw_call_duration_seconds", Help: "Duration of etcdgw calls by gateway method and result code.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"method", "code"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "etcdgw_attempts_total", Help: "Attempts of etcdgw calls by member and outcome.",
		}, []string{"endpoint", "outcome"}),
		healthy: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "etcdgw_endpoint_healthy", Help: "Whether the client considers the member healthy (1) or not (0).",
		}, []string{"endpoint"}),
		reconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "etcdgw_watch_reconnects_total", Help: "Watch streams that ended and resumed, by member.",
		}, []string{"endpoint"}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "etcdgw_watch_lag_revisions", Help: "Revisions the store was ahead of a watch when its response was sent.",
			Buckets: append([]float64{0}, prometheus.ExponentialBuckets(1, 4, 10)...),
		}),
		keepalive: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "etcdgw_keepalive_duration_seconds", Help: "Round trip of lease renewals.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "etcdgw_token_refreshes_total", Help: "Auth token fetches by result.",
		}, []string{"result"}),
	}
}

func (m *Metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.calls, m.attempts, m.healthy, m.reconnects, m.lag, m.keepalive, m.tokens}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.collectors() {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.collectors() {
		c.Collect(ch)
	}
}

// Observer returns the hooks for etcdgw.WithObserver; several clients may
// share them.
func (m *Metrics) Observer() etcdgw.Observer {
	return etcdgw.Observer{
		CallDone: func(ctx context.Context, call etcdgw.CallInfo, res etcdgw.CallResult) {
			m.calls.WithLabelValues(call.Method, Code(res.Err)).Observe(res.Duration.Seconds())
			if call.Method == "LeaseKeepAlive" && res.Err == nil {
				m.keepalive.Observe(res.Duration.Seconds())
			}
		},
		Attempt: func(ctx context.Context, call etcdgw.CallInfo, a etcdgw.AttemptInfo) {
			outcome := "ok"
			switch {
			case a.Status == 0:
				outcome = "failed"
			case a.Status/100 != 2:
				outcome = "error"
			}
			m.attempts.WithLabelValues(a.Endpoint, outcome).Inc()
		},
		EndpointHealth: func(endpoint string, healthy bool) {
			v := 0.0
			if healthy {
				v = 1
			}
			m.healthy.WithLabelValues(endpoint).Set(v)
		},
		WatchReconnect: func(ctx context.Context, w etcdgw.WatchReconnectInfo) {
			m.reconnects.WithLabelValues(w.Endpoint).Inc()
		},
		WatchProgress: func(ctx context.Context, w etcdgw.WatchProgressInfo) {
			m.lag.Observe(float64(w.Lag))
		},
		TokenRefresh: func(ctx context.Context, err error) {
			result := "ok"
			if err != nil {
				result = "error"
			}
			m.tokens.WithLabelValues(result).Inc()
		},
	}
}

// Code is the code label of a call's result: "OK", the gRPC code name of
// etcd's answer ("NotFound", "FailedPrecondition", ...), "OutcomeUnknown",
// "Unavailable" (no member answered), "DeadlineExceeded", "Canceled",
// "Closed", or "Other".
func Code(err error) string {
	var e *etcdgw.Error
	switch {
	case err == nil:
		return "OK"
	case errors.Is(err, etcdgw.ErrOutcomeUnknown):
		return "OutcomeUnknown"
	case errors.Is(err, etcdgw.ErrClosed):
		return "Closed"
	case errors.Is(err, context.DeadlineExceeded):
		return "DeadlineExceeded"
	case errors.Is(err, context.Canceled):
		return "Canceled"
	case errors.As(err, &e):
		if e.Code >= 0 && e.Code < len(grpcCodes) {
			return grpcCodes[e.Code]
		}
		return "Code" + strconv.Itoa(e.Code)
	case errors.Is(err, etcdgw.ErrUnavailable):
		return "Unavailable"
	}
	return "Other"
}

var grpcCodes = [...]string{"OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound",
	"AlreadyExists", "PermissionDenied", "ResourceExhausted", "FailedPrecondition", "Aborted",
	"OutOfRange", "Unimplemented", "Internal", "Unavailable", "DataLoss", "Unauthenticated"}
