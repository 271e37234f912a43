package etcdgwotel_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/etcdgw/etcdgw"
	etcdgwotel "github.com/etcdgw/etcdgw/contrib/otel"
	"github.com/etcdgw/etcdgw/etcdgwtest"
)

func TestObserverSpansAndMetrics(t *testing.T) {
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	obs, err := etcdgwotel.Observer(etcdgwotel.WithTracerProvider(tp), etcdgwotel.WithMeterProvider(mp))
	require.NoError(t, err)

	srv := etcdgwtest.NewServer(t)
	c := srv.Client(t, etcdgw.WithObserver(obs), etcdgw.WithAPIPrefix("/v3"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = c.Set(ctx, "k", "v")
	require.NoError(t, err)
	_, err = c.Get(ctx, "k")
	require.NoError(t, err)
	require.NoError(t, c.Close())
	_, err = c.Get(ctx, "k")
	require.ErrorIs(t, err, etcdgw.ErrClosed)

	ended := spans.Ended()
	require.Len(t, ended, 3)
	require.Equal(t, "etcd Put", ended[0].Name())
	require.Equal(t, "etcd Range", ended[1].Name())
	require.Len(t, ended[1].Events(), 1)
	require.Equal(t, "attempt", ended[1].Events()[0].Name)
	require.Equal(t, "Error", ended[2].Status().Code.String())

	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(ctx, &rm))
	got := map[string]bool{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			got[m.Name] = true
			if m.Name == "etcdgw.call.errors" {
				sum := m.Data.(metricdata.Sum[int64])
				require.Len(t, sum.DataPoints, 1)
				v, _ := sum.DataPoints[0].Attributes.Value("error.type")
				require.Equal(t, "closed", v.AsString())
			}
		}
	}
	require.True(t, got["etcdgw.call.duration"])
	require.True(t, got["etcdgw.call.attempts"])
	require.True(t, got["etcdgw.call.errors"])
}

func TestErrorType(t *testing.T) {
	require.Equal(t, "closed", etcdgwotel.ErrorType(etcdgw.ErrClosed))
	require.Equal(t, "deadline_exceeded", etcdgwotel.ErrorType(context.DeadlineExceeded))
	require.Equal(t, "etcd_failed_precondition", etcdgwotel.ErrorType(&etcdgw.Error{Code: 9}))
	require.Equal(t, "other", etcdgwotel.ErrorType(etcdgw.ErrInvalidOption))
}
