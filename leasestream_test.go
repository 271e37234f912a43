package etcdgw_test

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcdgw/etcdgw"
	"github.com/etcdgw/etcdgw/internal/etcdtest"
)

// keepaliveCounter counts the client's /lease/keepalive requests: short
// ones, with a body of known length, and streams.
type keepaliveCounter struct {
	next           http.RoundTripper
	short, streams atomic.Int64
}

func (k *keepaliveCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	if strings.HasSuffix(req.URL.Path, "/lease/keepalive") {
		if req.ContentLength < 0 || req.Header.Get("Upgrade") != "" {
			k.streams.Add(1)
		} else {
			k.short.Add(1)
		}
	}
	return k.next.RoundTrip(req)
}

func (k *keepaliveCounter) option() etcdgw.Option {
	return etcdgw.WithTransport(func(rt http.RoundTripper) http.RoundTripper { k.next = rt; return k })
}

// keepAliveAll grants n leases of ttl seconds and keeps them alive until
// ctx ends.
func keepAliveAll(t *testing.T, ctx context.Context, c *etcdgw.Client, n int, ttl int64) ([]etcdgw.LeaseID, []<-chan *etcdgw.LeaseKeepAliveResponse) {
	t.Helper()
	ids := make([]etcdgw.LeaseID, n)
	chans := make([]<-chan *etcdgw.LeaseKeepAliveResponse, n)
	for i := range ids {
		g, err := c.Grant(ctx, ttl)
		require.NoError(t, err)
		ids[i] = g.ID
		chans[i], err = c.KeepAlive(ctx, g.ID)
		require.NoError(t, err)
		<-chans[i] // the first renewal, made by KeepAlive itself
	}
	return ids, chans
}

// renewedOnce waits for one more renewal of every lease.
func renewedOnce(t *testing.T, chans []<-chan *etcdgw.LeaseKeepAliveResponse, within time.Duration) {
	t.Helper()
	deadline := time.After(within)
	for i, ch := range chans {
		select {
		case r, ok := <-ch:
			require.True(t, ok, "lease %d was lost", i)
			require.Positive(t, r.TTL)
		case <-deadline:
			t.Fatalf("lease %d: no renewal within %v", i, within)
		}
	}
}

// allAlive checks that etcd still has every lease.
func allAlive(t *testing.T, ctx context.Context, c *etcdgw.Client, ids []etcdgw.LeaseID) {
	t.Helper()
	for _, id := range ids {
		r, err := c.TimeToLive(ctx, id, false)
		require.NoError(t, err)
		require.Positive(t, r.TTL, "lease %d expired", id)
	}
}

// cutRounds cuts every connection through p, rounds times. Each time every
// lease is renewed twice more, on a short request or a new stream, and p
// accepts a new connection.
func cutRounds(t *testing.T, p *etcdtest.Proxy, chans []<-chan *etcdgw.LeaseKeepAliveResponse, rounds int) {
	t.Helper()
	for round := range rounds {
		accepted := p.Accepted()
		p.CutAll()
		renewedOnce(t, chans, 10*time.Second)
		renewedOnce(t, chans, 10*time.Second)
		assert.Greater(t, p.Accepted(), accepted, "round %d: reconnected", round)
	}
}

func TestKeepAlivesShareOneH2Stream(t *testing.T) {
	s := etcdtest.NewServer(t, etcdtest.Config{TLS: true})
	var kc keepaliveCounter
	c := caClient(t, s, kc.option())
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	const n = 200
	ids, chans := keepAliveAll(t, ctx, c, n, 2)
	// Three rounds of background renewals: more than a TTL.
	for range 3 {
		renewedOnce(t, chans, 10*time.Second)
	}
	streams, loops := etcdgw.LeaseStreams(c)
	assert.Equal(t, 1, streams, "one duplex stream for every lease")
	assert.Equal(t, n, loops)
	assert.Equal(t, int64(1), kc.streams.Load())
	// The n first renewals are short requests; the 3n or more after them
	// went on the stream (a renewal that waited too long may have fallen
	// back, but not many).
	assert.Less(t, kc.short.Load(), int64(n+n/10), "renewals went on the stream")
	assert.Equal(t, 1, etcdgw.OpenConns(c), "one TCP connection, HTTP/2")
	allAlive(t, ctx, c, ids)

	// The stream ends with the last KeepAlive on it.
	cancel()
	require.Eventually(t, func() bool { s, _ := etcdgw.LeaseStreams(c); return s == 0 }, 5*time.Second, 5*time.Millisecond)
}

func TestLeaseStreamCutKeepsLeases(t *testing.T) {
	s := etcdtest.NewServer(t, etcdtest.Config{TLS: true})
	p, err := etcdtest.NewProxy(s.ClientAddr())
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	var kc keepaliveCounter
	c, err := etcdgw.New(etcdgw.WithEndpoints(p.Endpoint("https")), etcdgw.WithCAFile(s.Certs().CAFile), kc.option())
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	ids, chans := keepAliveAll(t, ctx, c, 20, 2)
	renewedOnce(t, chans, 10*time.Second)
	require.Equal(t, int64(1), kc.streams.Load())

	cutRounds(t, p, chans, 3)
	allAlive(t, ctx, c, ids)
	assert.GreaterOrEqual(t, kc.streams.Load(), int64(2), "the stream was opened again after a cut")
	require.Eventually(t, func() bool { s, l := etcdgw.LeaseStreams(c); return s == 1 && l == len(ids) }, 10*time.Second, 10*time.Millisecond,
		"the renewals are back on one stream")
}

func TestLeaseStreamOffWithoutMultiplexing(t *testing.T) {
	s := etcdtest.NewServer(t, etcdtest.Config{TLS: true})
	var kc keepaliveCounter
	c := caClient(t, s, kc.option(), etcdgw.WithWatchMultiplexing(false))
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	ids, chans := keepAliveAll(t, ctx, c, 5, 2)
	renewedOnce(t, chans, 10*time.Second)
	streams, _ := etcdgw.LeaseStreams(c)
	assert.Zero(t, streams)
	assert.Zero(t, kc.streams.Load())
	assert.GreaterOrEqual(t, kc.short.Load(), int64(2*len(ids)), "a short request per renewal")
	allAlive(t, ctx, c, ids)
}

// silentStreams holds every keepalive stream's answer back until the stream
// ends, as a proxy that buffers request bodies does; short requests pass.
type silentStreams struct{ keepaliveCounter }

func (s *silentStreams) RoundTrip(req *http.Request) (*http.Response, error) {
	if strings.HasSuffix(req.URL.Path, "/lease/keepalive") && req.ContentLength < 0 {
		s.streams.Add(1)
		<-req.Context().Done()
		return nil, req.Context().Err()
	}
	return s.keepaliveCounter.RoundTrip(req)
}

func TestLeaseStreamSilentFallsBack(t *testing.T) {
	s := etcdtest.NewServer(t, etcdtest.Config{TLS: true})
	var ss silentStreams
	var failed atomic.Int64
	obs := etcdgw.Observer{KeepAlive: func(_ context.Context, k etcdgw.KeepAliveInfo) {
		if k.Err != nil {
			failed.Add(1)
		}
	}}
	c := caClient(t, s, etcdgw.WithObserver(obs),
		etcdgw.WithTransport(func(rt http.RoundTripper) http.RoundTripper { ss.next = rt; return &ss }))
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	ids, chans := keepAliveAll(t, ctx, c, 5, 3)
	// A renewal left unanswered on the stream is sent as a short request
	// before the lease expires: over two TTLs, none is lost.
	for range 7 {
		renewedOnce(t, chans, 10*time.Second)
	}
	allAlive(t, ctx, c, ids)
	assert.Zero(t, failed.Load(), "a renewal the stream did not answer fell back within the same renewal")
	assert.Equal(t, int64(1), ss.streams.Load(), "a stream that never answered is not opened again soon")
	assert.GreaterOrEqual(t, ss.short.Load(), int64(8*len(ids)), "every renewal was a short request")
	streams, _ := etcdgw.LeaseStreams(c)
	assert.Zero(t, streams)
}

// Over plain http the renewals share a WebSocket, as the watches do.
func TestKeepAlivesShareOneWebSocket(t *testing.T) {
	needWebSocket(t)
	p := proxied(t)
	var kc keepaliveCounter
	c := newClient(t, etcdgw.WithEndpoints(p.Endpoint("http")), kc.option())
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	const n = 100
	ids, chans := keepAliveAll(t, ctx, c, n, 2)
	for range 3 {
		renewedOnce(t, chans, 10*time.Second)
	}
	streams, loops := etcdgw.LeaseStreams(c)
	assert.Equal(t, 1, streams, "one WebSocket for every lease")
	assert.Equal(t, n, loops)
	assert.Equal(t, int64(1), kc.streams.Load())
	assert.Less(t, kc.short.Load(), int64(n+n/10), "renewals went on the WebSocket")
	assert.LessOrEqual(t, p.Conns(), 2, "the WebSocket and the pooled connection of the short requests")
	allAlive(t, ctx, c, ids)

	// Cuts of the WebSocket lose no lease; the renewals come back to one.
	cutRounds(t, p, chans, 2)
	allAlive(t, ctx, c, ids)
	require.Eventually(t, func() bool { s, l := etcdgw.LeaseStreams(c); return s == 1 && l == n }, 10*time.Second, 10*time.Millisecond,
		"the renewals are back on one WebSocket")
	cancel()
	require.Eventually(t, func() bool { s, _ := etcdgw.LeaseStreams(c); return s == 0 }, 5*time.Second, 5*time.Millisecond)
}

// Behind a proxy that refuses the upgrade the renewals stay short requests,
// and the upgrade is not tried again for each one.
func TestLeaseWebSocketRefusedFallsBack(t *testing.T) {
	needWebSocket(t)
	hp, err := etcdtest.NewHTTPProxy(shared.Endpoint(), etcdtest.HTTPProxyConfig{NoWebSocket: true})
	require.NoError(t, err)
	t.Cleanup(func() { hp.Close() })
	c := newClient(t, etcdgw.WithEndpoints(hp.Endpoint()))
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	ids, chans := keepAliveAll(t, ctx, c, 10, 2)
	for range 3 {
		renewedOnce(t, chans, 10*time.Second)
	}
	allAlive(t, ctx, c, ids)
	assert.Equal(t, int64(1), hp.RefusedUpgrades(), "refused once, then short requests")
	streams, _ := etcdgw.LeaseStreams(c)
	assert.Zero(t, streams)
}
