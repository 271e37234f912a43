// Package etcdgwotel traces and measures etcdgw's calls with OpenTelemetry: a
// span per gateway call, with each attempt on a member as an event, and
// instruments for the calls' duration, attempts and errors. It is a module
// of its own, so that importing etcdgw never pulls OpenTelemetry.
//
//	obs, err := etcdgwotel.Observer()
//	c, err := etcdgw.New(etcdgw.WithObserver(obs))
//
// For the HTTP requests themselves, wrap the transport as well:
// etcdgw.WithTransport(func(rt http.RoundTripper) http.RoundTripper { return otelhttp.NewTransport(rt) });
// their spans are children of the call's.
package etcdgwotel

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/etcdgw/etcdgw"
)

// ScopeName is the instrumentation scope of the tracer and the meter.
const ScopeName = "github.com/etcdgw/etcdgw/contrib/otel"

// Option configures Observer.
type Option func(*config)

type config struct {
	tp trace.TracerProvider
	mp metric.MeterProvider
}

// WithTracerProvider sets the tracer provider; the global one by default.
func WithTracerProvider(tp trace.TracerProvider) Option { return func(c *config) { c.tp = tp } }

// WithMeterProvider sets the meter provider; the global one by default.
func WithMeterProvider(mp metric.MeterProvider) Option { return func(c *config) { c.mp = mp } }

// Observer returns hooks for etcdgw.WithObserver. Each call is a client span
// named "etcd <Method>" (etcd.method, etcd.attempts, server.address, the
// error), each attempt an event "attempt" on it (server.address,
// http.response.status_code, the error), and the instruments are
// etcdgw.call.duration (s), etcdgw.call.attempts and etcdgw.call.errors, by
// etcd.method (and error.type for errors), plus etcdgw.watch.reconnects and
// etcdgw.endpoint.health_changes.
func Observer(opts ...Option) (etcdgw.Observer, error) {
	cfg := config{tp: otel.GetTracerProvider(), mp: otel.GetMeterProvider()}
	for _, o := range opts {
		o(&cfg)
	}
	tracer := cfg.tp.Tracer(ScopeName)
	meter := cfg.mp.Meter(ScopeName)
	duration, err1 := meter.Float64Histogram("etcdgw.call.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of etcdgw calls, from start to result"))
	attempts, err2 := meter.Int64Counter("etcdgw.call.attempts", metric.WithUnit("{attempt}"),
		metric.WithDescription("Attempts of etcdgw calls on members"))
	failures, err3 := meter.Int64Counter("etcdgw.call.errors", metric.WithUnit("{call}"),
		metric.WithDescription("etcdgw calls that failed"))
	reconnects, err4 := meter.Int64Counter("etcdgw.watch.reconnects", metric.WithUnit("{reconnect}"),
		metric.WithDescription("Watch streams that ended and resumed"))
	health, err5 := meter.Int64Counter("etcdgw.endpoint.health_changes", metric.WithUnit("{change}"),
		metric.WithDescription("Endpoints marked unhealthy or healthy again"))
	if err := errors.Join(err1, err2, err3, err4, err5); err != nil {
		return etcdgw.Observer{}, err
	}
	return etcdgw.Observer{
		CallStart: func(ctx context.Context, call etcdgw.CallInfo) context.Context {
			ctx, _ = tracer.Start(ctx, "etcd "+call.Method, trace.WithSpanKind(trace.SpanKindClient),
				trace.WithAttributes(attribute.String("rpc.system", "etcd"), attribute.String("etcd.method", call.Method)))
			return ctx
		},
		Attempt: func(ctx context.Context, call etcdgw.CallInfo, a etcdgw.AttemptInfo) {
			attrs := []attribute.KeyValue{attribute.Int("etcd.attempt", a.Attempt), attribute.String("server.address", a.Endpoint),
				attribute.Int64("etcd.attempt.duration_ms", a.Duration.Milliseconds())}
			if a.Status != 0 {
				attrs = append(attrs, attribute.Int("http.response.status_code", a.Status))
			}
			if a.Err != nil {
				attrs = append(attrs, attribute.String("error.message", a.Err.Error()))
			}
			trace.SpanFromContext(ctx).AddEvent("attempt", trace.WithAttributes(attrs...))
		},
		CallDone: func(ctx context.Context, call etcdgw.CallInfo, res etcdgw.CallResult) {
			span := trace.SpanFromContext(ctx)
			span.SetAttributes(attribute.Int("etcd.attempts", res.Attempts), attribute.String("server.address", res.Endpoint))
			method := attribute.String("etcd.method", call.Method)
			duration.Record(ctx, res.Duration.Seconds(), metric.WithAttributes(method))
			attempts.Add(ctx, int64(res.Attempts), metric.WithAttributes(method))
			if res.Err != nil {
				span.RecordError(res.Err)
				span.SetStatus(codes.Error, res.Err.Error())
				failures.Add(ctx, 1, metric.WithAttributes(method, attribute.String("error.type", ErrorType(res.Err))))
			}
			span.End(trace.WithTimestamp(time.Now()))
		},
		WatchReconnect: func(ctx context.Context, w etcdgw.WatchReconnectInfo) {
			reconnects.Add(ctx, 1, metric.WithAttributes(attribute.String("server.address", w.Endpoint)))
		},
		EndpointHealth: func(endpoint string, healthy bool) {
			health.Add(context.Background(), 1, metric.WithAttributes(attribute.String("server.address", endpoint),
				attribute.Bool("etcd.endpoint.healthy", healthy)))
		},
	}, nil
}

// ErrorType is a short, low-cardinality name of an etcdgw error, for a
// metric attribute: "unavailable", "outcome_unknown", "deadline_exceeded",
// "canceled", "closed", "etcd_<code>" for etcd's answers, or "other".
func ErrorType(err error) string {
	var e *etcdgw.Error
	switch {
	case errors.Is(err, etcdgw.ErrOutcomeUnknown):
		return "outcome_unknown"
	case errors.Is(err, etcdgw.ErrClosed):
		return "closed"
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline_exceeded"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.As(err, &e):
		return "etcd_" + codeName(e.Code)
	case errors.Is(err, etcdgw.ErrUnavailable):
		return "unavailable"
	}
	return "other"
}

var grpcCodes = [...]string{"ok", "canceled", "unknown", "invalid_argument", "deadline_exceeded", "not_found",
	"already_exists", "permission_denied", "resource_exhausted", "failed_precondition", "aborted",
	"out_of_range", "unimplemented", "internal", "unavailable", "data_loss", "unauthenticated"}

func codeName(code int) string {
	if code >= 0 && code < len(grpcCodes) {
		return grpcCodes[code]
	}
	return "unknown"
}
