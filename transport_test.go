package etcdgw_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcdgw/etcdgw"
	"github.com/etcdgw/etcdgw/internal/etcdtest"
)

// recordingProxy starts a recording proxy to the shared server, closed when
// the test ends.
func recordingProxy(t *testing.T) *etcdtest.RecordingProxy {
	t.Helper()
	p, err := etcdtest.NewRecordingProxy(shared.Endpoint(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, p.Close()) })
	return p
}

// tcpProxy starts a fault-injecting proxy to target (host:port), closed when
// the test ends.
func tcpProxy(t *testing.T, target string) *etcdtest.Proxy {
	t.Helper()
	p, err := etcdtest.NewProxy(target)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, p.Close()) })
	return p
}

// clientOf returns a client of endpoint with opts, closed when the test ends.
func clientOf(t *testing.T, endpoint string, opts ...etcdgw.Option) *etcdgw.Client {
	t.Helper()
	c, err := etcdgw.New(append([]etcdgw.Option{etcdgw.WithEndpoints(endpoint)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// unaryCalls makes one call of each unary kind under prefix and fails the
// test on an error.
func unaryCalls(t *testing.T, c *etcdgw.Client, prefix string) {
	t.Helper()
	ctx := testCtx(t)
	_, err := c.Version(ctx)
	require.NoError(t, err)
	_, err = c.Set(ctx, prefix+"k", "v")
	require.NoError(t, err)
	_, err = c.Get(ctx, prefix+"k")
	require.NoError(t, err)
	_, err = c.ReadDir(ctx, prefix)
	require.NoError(t, err)
	_, err = c.SetNX(ctx, prefix+"nx", "v")
	require.NoError(t, err)
	_, err = c.Txn(ctx).Then(etcdgw.OpGet(prefix + "k")).Commit()
	require.NoError(t, err)
	_, err = c.Delete(ctx, prefix+"k")
	require.NoError(t, err)
	lease, err := c.Grant(ctx, 60)
	require.NoError(t, err)
	_, err = c.KeepAliveOnce(ctx, lease.ID)
	require.NoError(t, err)
	_, err = c.TimeToLive(ctx, lease.ID, true)
	require.NoError(t, err)
	_, err = c.Leases(ctx)
	require.NoError(t, err)
	_, err = c.Revoke(ctx, lease.ID)
	require.NoError(t, err)
}

func TestExtraHeadersReachTheServer(t *testing.T) {
	p := recordingProxy(t)
	c := clientOf(t, p.Endpoint(),
		etcdgw.WithHeader("X-Team", "infra"),
		etcdgw.WithHeader("x-multi", "a"),
		etcdgw.WithHeader("X-Multi", "b"),
		etcdgw.WithHeader("Grpc-Metadata-Trace", "t-1"))
	unaryCalls(t, c, testPrefix(t))

	reqs := p.Requests()
	paths := map[string]bool{}
	for _, r := range reqs {
		paths[r.Path] = true
		assert.Equal(t, []string{"infra"}, r.Header.Values("X-Team"), "%s %s", r.Method, r.Path)
		assert.Equal(t, []string{"a", "b"}, r.Header.Values("X-Multi"), "%s %s", r.Method, r.Path)
		assert.Equal(t, []string{"t-1"}, r.Header.Values("Grpc-Metadata-Trace"), "%s %s", r.Method, r.Path)
		assert.Empty(t, r.Header.Values("Authorization"), "%s %s", r.Method, r.Path)
		assert.Equal(t, p.Addr(), r.Host, "%s %s", r.Method, r.Path)
		if r.Method == http.MethodPost {
			assert.Equal(t, "application/json", r.Header.Get("Content-Type"), "%s %s", r.Method, r.Path)
		}
	}
	for _, want := range []string{"/version", "/v3/kv/put", "/v3/kv/range", "/v3/kv/txn", "/v3/kv/deleterange",
		"/v3/lease/grant", "/v3/lease/keepalive", "/v3/lease/timetolive", "/v3/lease/leases", "/v3/lease/revoke"} {
		assert.True(t, paths[want], "no request for %s among %v", want, paths)
	}
}

// shortTempDir returns a temporary directory whose path is short enough for
// a unix socket, removed when the test ends.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "egw")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func TestUnixSocket(t *testing.T) {
	p, err := etcdtest.NewUnixProxy(filepath.Join(shortTempDir(t), "etcd.sock"), shared.Endpoint(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, p.Close()) })

	tests := []struct {
		endpoint, host string
	}{
		{"http://etcd.example:12379", "etcd.example:12379"},
		{"http://etcd.example", "etcd.example"}, // port 80, Host as written
		{"http://[::1]:2379", "[::1]:2379"},
		{"http://10.1.2.3:4001", "10.1.2.3:4001"},
	}
	for _, tt := range tests {
		t.Run(tt.endpoint, func(t *testing.T) {
			p.Reset()
			c := clientOf(t, tt.endpoint, etcdgw.WithUnixSocket(p.SocketPath()))
			unaryCalls(t, c, testPrefix(t))
			reqs := p.Requests()
			require.NotEmpty(t, reqs, "the calls went through the socket")
			assert.Equal(t, 1, p.Count("/version"), "the prefix detection went through the socket too")
			for _, r := range reqs {
				assert.Equal(t, tt.host, r.Host, "Host of %s %s", r.Method, r.Path)
			}
		})
	}

	t.Run("no socket", func(t *testing.T) {
		c := clientOf(t, "http://etcd.example:2379", etcdgw.WithUnixSocket(filepath.Join(shortTempDir(t), "none.sock")))
		_, err := c.Get(testCtx(t), "k")
		require.Error(t, err)
		assert.NotErrorIs(t, err, etcdgw.ErrInvalidOption)
	})
}

func TestAPIPrefixDetectedOnce(t *testing.T) {
	rec := recordingProxy(t)
	// A black hole in front of the recording proxy holds the first
	// GET /version until every caller has started.
	hole := tcpProxy(t, rec.Addr())
	hole.Pause()
	// Each call is counted as a request of its own: no coalescing.
	c := clientOf(t, hole.Endpoint("http"), etcdgw.WithReadCoalescing(false))
	ctx := testCtx(t)

	const callers = 16
	var started, done sync.WaitGroup
	started.Add(callers)
	errs := make(chan error, callers)
	for i := range callers {
		done.Go(func() {
			started.Done()
			_, err := c.Get(ctx, fmt.Sprintf("%s%d", testPrefix(t), i))
			errs <- err
		})
	}
	started.Wait()
	require.Eventually(t, func() bool { return hole.Accepted() >= 1 }, 10*time.Second, time.Millisecond)
	hole.Resume()
	done.Wait()
	close(errs)
	for err := range errs {
		assert.NoError(t, err)
	}
	assert.Equal(t, 1, rec.Count("/version"), "GET /version requests")
	assert.Equal(t, callers, rec.Count("/v3/kv/range"), "range requests")

	// Later calls use what was learned.
	_, err := c.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, 1, rec.Count("/version"), "GET /version requests after one more call")
}

func TestAPIPrefixGivenIsNotDetected(t *testing.T) {
	rec := recordingProxy(t)
	c := clientOf(t, rec.Endpoint(), etcdgw.WithAPIPrefix("/v3"), etcdgw.WithReadCoalescing(false))
	ctx := testCtx(t)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			_, err := c.Get(ctx, fmt.Sprintf("%s%d", testPrefix(t), i))
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	assert.Zero(t, rec.Count("/version"), "GET /version requests")
	assert.Equal(t, 16, rec.Count("/v3/kv/range"), "range requests")
}

func TestAPIPrefixV3beta(t *testing.T) {
	// etcd 3.4 and later still serve /v3beta, rewritten to /v3.
	rec := recordingProxy(t)
	c := clientOf(t, rec.Endpoint(), etcdgw.WithAPIPrefix("/v3beta"), etcdgw.WithKeyPrefix(testPrefix(t)))
	_, err := c.Set(testCtx(t), "k", "v")
	require.NoError(t, err)
	assert.Equal(t, 1, rec.Count("/v3beta/kv/put"))
}

// blackHole returns the endpoint of a proxy to the shared server that
// forwards nothing, and the proxy.
func blackHole(t *testing.T) (string, *etcdtest.Proxy) {
	t.Helper()
	p := tcpProxy(t, shared.ClientAddr())
	p.Pause()
	return p.Endpoint("http"), p
}

func TestTimeouts(t *testing.T) {
	t.Parallel()
	t.Run("WithTimeout", func(t *testing.T) {
		t.Parallel()
		ep, _ := blackHole(t)
		c := clientOf(t, ep, etcdgw.WithTimeout(200*time.Millisecond))
		start := time.Now()
		_, err := c.Get(context.Background(), "k")
		elapsed := time.Since(start)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.GreaterOrEqual(t, elapsed, 200*time.Millisecond)
		assert.Less(t, elapsed, time.Second)
	})
	t.Run("WithTimeout on writes", func(t *testing.T) {
		t.Parallel()
		ep, _ := blackHole(t)
		c := clientOf(t, ep, etcdgw.WithTimeout(200*time.Millisecond), etcdgw.WithAPIPrefix("/v3"))
		start := time.Now()
		_, err := c.Set(context.Background(), "k", "v")
		elapsed := time.Since(start)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Less(t, elapsed, time.Second)
	})
	t.Run("shorter caller deadline wins", func(t *testing.T) {
		t.Parallel()
		ep, _ := blackHole(t)
		c := clientOf(t, ep, etcdgw.WithTimeout(time.Minute))
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := c.Get(ctx, "k")
		elapsed := time.Since(start)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Less(t, elapsed, time.Second)
	})
	t.Run("longer caller deadline wins", func(t *testing.T) {
		t.Parallel()
		ep, _ := blackHole(t)
		c := clientOf(t, ep, etcdgw.WithTimeout(100*time.Millisecond))
		ctx, cancel := context.WithTimeout(context.Background(), 600*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := c.Get(ctx, "k")
		elapsed := time.Since(start)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.GreaterOrEqual(t, elapsed, 600*time.Millisecond, "WithTimeout cut a call whose ctx has a deadline")
		assert.Less(t, elapsed, 2*time.Second)
	})
	t.Run("cancelled before the call", func(t *testing.T) {
		t.Parallel()
		ep, p := blackHole(t)
		c := clientOf(t, ep)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := c.Get(ctx, "k")
		require.ErrorIs(t, err, context.Canceled)
		_, err = c.Set(ctx, "k", "v")
		require.ErrorIs(t, err, context.Canceled)
		_, err = c.Txn(ctx).Then(etcdgw.OpPut("k", "v")).Commit()
		require.ErrorIs(t, err, context.Canceled)
		assert.Zero(t, p.BytesToServer(), "nothing reached etcd")
	})
	t.Run("cancelled during the call", func(t *testing.T) {
		t.Parallel()
		ep, p := blackHole(t)
		c := clientOf(t, ep, etcdgw.WithAPIPrefix("/v3"))
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		errc := make(chan error, 1)
		go func() {
			_, err := c.Get(ctx, "k")
			errc <- err
		}()
		require.Eventually(t, func() bool { return p.Accepted() >= 1 }, 10*time.Second, time.Millisecond)
		cancel()
		select {
		case err := <-errc:
			require.ErrorIs(t, err, context.Canceled)
		case <-time.After(5 * time.Second):
			t.Fatal("the call did not end when its ctx was cancelled")
		}
	})
}

func TestHTTP2MultiplexesOverOneConnection(t *testing.T) {
	t.Parallel()
	s := etcdtest.NewServer(t, etcdtest.Config{Name: "h2", TLS: true})
	p := tcpProxy(t, s.ClientAddr())
	c := clientOf(t, p.Endpoint("https"), etcdgw.WithCAFile(s.Certs().CAFile), etcdgw.WithKeyPrefix(testPrefix(t)))
	ctx := testCtx(t)
	_, err := c.Version(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, p.Accepted())

	var wg sync.WaitGroup
	for i := range 32 {
		wg.Go(func() {
			_, err := c.Set(ctx, fmt.Sprintf("k%d", i), i)
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	assert.EqualValues(t, 1, p.Accepted(), "connections for 33 calls over https")
	assert.Equal(t, 2, etcdgw.EndpointProto(c, p.Endpoint("https")))
}

func TestHTTP1NeedsAConnectionPerCall(t *testing.T) {
	// The control of TestHTTP2MultiplexesOverOneConnection: over http, calls
	// in flight together each hold a connection.
	p := tcpProxy(t, shared.ClientAddr())
	c := clientOf(t, p.Endpoint("http"), etcdgw.WithAPIPrefix("/v3"), etcdgw.WithKeyPrefix(testPrefix(t)), etcdgw.WithReadCoalescing(false))
	ctx := testCtx(t)
	p.Pause()
	const calls = 8
	var wg sync.WaitGroup
	for i := range calls {
		wg.Go(func() {
			_, err := c.Get(ctx, fmt.Sprintf("k%d", i))
			assert.NoError(t, err)
		})
	}
	require.Eventually(t, func() bool { return p.Accepted() == calls }, 10*time.Second, time.Millisecond)
	p.Resume()
	wg.Wait()
	assert.Equal(t, 1, etcdgw.EndpointProto(c, p.Endpoint("http")))
}
