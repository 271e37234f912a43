package etcdgw_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcdgw/etcdgw"
	"github.com/etcdgw/etcdgw/internal/etcdtest"
)

func TestWatchMultiplexingOff(t *testing.T) {
	s := etcdtest.NewServer(t, etcdtest.Config{TLS: true})
	c := caClient(t, s, etcdgw.WithWatchMultiplexing(false))
	w := caClient(t, s)
	ctx := testCtx(t)
	var chans []etcdgw.WatchChan
	for i := 0; i < 3; i++ {
		ch := c.Watch(ctx, fmt.Sprintf("k%d", i))
		require.True(t, next(t, ch).Created)
		chans = append(chans, ch)
	}
	assert.Equal(t, 2, etcdgw.EndpointProto(c, s.Endpoint()), "over HTTP/2")
	streams, watches := etcdgw.WatchStreams(c)
	assert.Equal(t, 0, streams, "no shared stream: a request per watch")
	assert.Equal(t, 0, watches)
	for i, ch := range chans {
		_, err := w.Set(ctx, fmt.Sprintf("k%d", i), i)
		require.NoError(t, err)
		ev := nextEvents(t, ch)
		assert.Equal(t, fmt.Sprint(i), string(ev[0].Kv.Value))
	}
}

// bufferingProxy is an https reverse proxy in front of s that reads the
// whole request body before it forwards the request, as some L7 proxies and
// API gateways do: a shared watch stream, whose body never ends, never
// reaches etcd. It counts the watch requests it forwards.
func bufferingProxy(t *testing.T, s *etcdtest.Server) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	target, err := url.Parse(s.Endpoint())
	require.NoError(t, err)
	clientTLS, err := s.Certs().ClientTLSConfig()
	require.NoError(t, err)
	tr := &http.Transport{TLSClientConfig: clientTLS, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = tr
	rp.FlushInterval = -1
	rp.ErrorLog = log.New(io.Discard, "", 0)
	var watches atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		if r.URL.Path == "/v3/watch" {
			watches.Add(1)
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		rp.ServeHTTP(w, r)
	}))
	cert, err := tls.LoadX509KeyPair(s.Certs().ServerCertFile, s.Certs().ServerKeyFile)
	require.NoError(t, err)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.EnableHTTP2 = true
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, &watches
}

// Behind a proxy that buffers request bodies the shared stream never starts:
// the watch finds no created answer in time, its member answers a probe, and
// it falls back to a request of its own, as do later watches to that member.
func TestWatchFallsBackWhenTheSharedStreamNeverStarts(t *testing.T) {
	s := etcdtest.NewServer(t, etcdtest.Config{TLS: true})
	proxy, watches := bufferingProxy(t, s)
	c, err := etcdgw.New(etcdgw.WithEndpoints(proxy.URL), etcdgw.WithCAFile(s.Certs().CAFile),
		etcdgw.WithStreamKeepalive(200*time.Millisecond, time.Second))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	w := caClient(t, s)
	ctx := testCtx(t)

	ch := c.Watch(ctx, "k")
	require.True(t, next(t, ch).Created, "confirmed through a request of its own")
	assert.Equal(t, 2, etcdgw.EndpointProto(c, proxy.URL), "over HTTP/2")
	assert.True(t, etcdgw.EndpointHealthy(c, proxy.URL), "a proxy that holds the stream back is not a failed member")
	r, err := w.Set(ctx, "k", 1)
	require.NoError(t, err)
	ev := nextEvents(t, ch)
	assert.Equal(t, r.Header.Revision, ev[0].Kv.ModRevision)

	// A later watch goes to a request of its own at once.
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	before := watches.Load()
	ch2 := c.Watch(wctx, "k2")
	require.True(t, next(t, ch2).Created)
	assert.Equal(t, before+1, watches.Load(), "one request, no shared stream tried first")
	streams, _ := etcdgw.WatchStreams(c)
	assert.Equal(t, 0, streams)
}

// A reader that stalls gets its watch dropped from the shared stream each
// time it falls behind; the watch subscribes again after a backoff that
// grows with each eviction in a row, not at once, and loses nothing.
func TestSlowWatchResubscribesWithBackoff(t *testing.T) {
	s := etcdtest.NewServer(t, etcdtest.Config{TLS: true})
	c := caClient(t, s)
	w := caClient(t, s)
	ctx := testCtx(t)
	start, err := w.Get(ctx, "x")
	require.NoError(t, err)
	ch := c.WatchDir(ctx, "e/", etcdgw.WithRev(start.Header.Revision+1))
	require.True(t, next(t, ch).Created)

	// Writers put keys while the reader alternates stalls, each until the
	// watch is dropped, with reading as fast as it can.
	var last atomic.Int64
	stop := make(chan struct{})
	const writers = 4
	done := make(chan error, writers)
	for g := 0; g < writers; g++ {
		go func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					done <- nil
					return
				default:
				}
				r, err := w.Set(ctx, fmt.Sprintf("e/%d/%06d", g, i), i)
				if err != nil {
					done <- err
					return
				}
				for {
					l := last.Load()
					if r.Header.Revision <= l || last.CompareAndSwap(l, r.Header.Revision) {
						break
					}
				}
			}
		}()
	}
	var got []event
	read := func(r etcdgw.WatchResponse) {
		require.NoError(t, r.Err())
		for _, ev := range r.Events {
			got = append(got, event{ev.Type, string(ev.Kv.Key), string(ev.Kv.Value), ev.Kv.ModRevision})
		}
	}
	subscribed := func() bool { _, n := etcdgw.WatchStreams(c); return n == 1 }
	var gaps []time.Duration
	for k := int64(1); k <= 3; k++ {
		require.Eventually(t, func() bool { return etcdgw.Evictions(c) >= k }, 20*time.Second, time.Millisecond, "eviction %d", k)
		require.Equal(t, k, etcdgw.Evictions(c))
		// Read as fast as possible until the watch is back on the stream:
		// the time off it is what the client waits before subscribing again.
		off := time.Now()
		for !subscribed() {
			select {
			case r := <-ch:
				read(r)
			case <-time.After(time.Millisecond):
			}
		}
		gaps = append(gaps, time.Since(off))
	}
	close(stop)
	for g := 0; g < writers; g++ {
		require.NoError(t, <-done)
	}
	t.Logf("off the stream after each eviction: %v", gaps)
	// The third eviction in a row waits backoff(2): 100 to 200 ms.
	assert.GreaterOrEqual(t, gaps[2], 90*time.Millisecond, "subscribed again after a backoff, not at once")

	final := last.Load()
	for len(got) == 0 || got[len(got)-1].rev < final {
		read(next(t, ch))
	}
	want := historyOf(t, caClient(t, s), "e/", start.Header.Revision+1, final)
	require.Equal(t, len(want), len(got))
	assert.Equal(t, want, got, "every event once, in order")
}

// historyOf is history read through c.
func historyOf(t *testing.T, c *etcdgw.Client, prefix string, from, to int64) []event {
	t.Helper()
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	ch := c.WatchDir(ctx, prefix, etcdgw.WithRev(from))
	require.True(t, next(t, ch).Created)
	return collect(t, ch, to)
}
