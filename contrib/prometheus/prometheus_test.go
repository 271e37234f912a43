package etcdgwprom_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/etcdgw/etcdgw"
	etcdgwprom "github.com/etcdgw/etcdgw/contrib/prometheus"
	"github.com/etcdgw/etcdgw/etcdgwtest"
)

func TestMetrics(t *testing.T) {
	m := etcdgwprom.New()
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(m))

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := "http://" + ln.Addr().String()
	require.NoError(t, ln.Close())

	srv := etcdgwtest.NewServer(t)
	c := srv.Client(t, etcdgw.WithEndpoints(dead, srv.Endpoint()), etcdgw.WithObserver(m.Observer()),
		etcdgw.WithAPIPrefix("/v3"), etcdgw.WithHealthCheck(time.Hour, 1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i < 10; i++ {
		_, err := c.Get(ctx, "k")
		require.NoError(t, err)
	}
	l, err := c.Grant(ctx, 5)
	require.NoError(t, err)
	_, err = c.KeepAliveOnce(ctx, l.ID)
	require.NoError(t, err)
	_, err = c.Get(ctx, "")
	require.ErrorIs(t, err, etcdgw.ErrKeyNotProvided) // refused before any call
	// A watch from the first revision: its first batch is behind the store.
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	put, err := c.Set(ctx, "w", 1)
	require.NoError(t, err)
	_, err = c.Set(ctx, "other", 1)
	require.NoError(t, err)
	for r := range c.Watch(wctx, "w", etcdgw.WithRev(put.Header.Revision)) {
		if len(r.Events) > 0 {
			break
		}
	}

	families, err := reg.Gather()
	require.NoError(t, err)
	find := func(name string, labels map[string]string) *dto.Metric {
		for _, f := range families {
			if f.GetName() != name {
				continue
			}
		next:
			for _, m := range f.GetMetric() {
				for _, lp := range m.GetLabel() {
					if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
						continue next
					}
				}
				return m
			}
		}
		t.Fatalf("no %s%v", name, labels)
		return nil
	}
	require.Equal(t, uint64(10), find("etcdgw_call_duration_seconds", map[string]string{"method": "Range", "code": "OK"}).GetHistogram().GetSampleCount())
	require.Equal(t, 1.0, find("etcdgw_attempts_total", map[string]string{"endpoint": dead, "outcome": "failed"}).GetCounter().GetValue())
	require.Equal(t, 0.0, find("etcdgw_endpoint_healthy", map[string]string{"endpoint": dead}).GetGauge().GetValue())
	require.Equal(t, uint64(1), find("etcdgw_keepalive_duration_seconds", nil).GetHistogram().GetSampleCount())
	require.Equal(t, 1, testutil.CollectAndCount(m, "etcdgw_keepalive_duration_seconds"))
	lag := find("etcdgw_watch_lag_revisions", nil).GetHistogram()
	require.Equal(t, uint64(1), lag.GetSampleCount())
	require.GreaterOrEqual(t, lag.GetSampleSum(), 1.0, "the store was a write ahead")
}

func TestCode(t *testing.T) {
	require.Equal(t, "OK", etcdgwprom.Code(nil))
	require.Equal(t, "Closed", etcdgwprom.Code(etcdgw.ErrClosed))
	require.Equal(t, "NotFound", etcdgwprom.Code(&etcdgw.Error{Code: 5}))
	require.Equal(t, "Other", etcdgwprom.Code(etcdgw.ErrInvalidOption))
}
