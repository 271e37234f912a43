package etcdgw_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcdgw/etcdgw"
	"github.com/etcdgw/etcdgw/internal/etcdtest"
)

// countingTransport counts the requests by path and adds a header to each.
type countingTransport struct {
	next  http.RoundTripper
	mu    sync.Mutex
	paths map[string]int
}

func (t *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.mu.Lock()
	t.paths[req.URL.Path]++
	t.mu.Unlock()
	req.Header.Set("X-Wrapped", "yes") // its own map: no race with other requests
	return t.next.RoundTrip(req)
}

func (t *countingTransport) count(path string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.paths[path]
}

// headerCounter is a reverse proxy to target that counts the requests
// carrying X-Wrapped: yes, and strips prefix from each path.
type headerCounter struct {
	srv     *httptest.Server
	wrapped atomic.Int64
	all     atomic.Int64
}

func newReverseProxy(t *testing.T, target, prefix string) *headerCounter {
	t.Helper()
	u, err := url.Parse(target)
	require.NoError(t, err)
	h := &headerCounter{}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.URL.Path = strings.TrimPrefix(pr.In.URL.Path, prefix)
			pr.Out.URL.RawPath = ""
		},
		FlushInterval: -1, // watches stream
	}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.all.Add(1)
		if r.Header.Get("X-Wrapped") == "yes" {
			h.wrapped.Add(1)
		}
		if prefix != "" && !strings.HasPrefix(r.URL.Path, prefix+"/") {
			http.NotFound(w, r)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		h.srv.CloseClientConnections()
		h.srv.Close()
	})
	return h
}

// watchOneEvent watches key, puts it, and checks the event arrives.
func watchOneEvent(t *testing.T, c *etcdgw.Client, key string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(testCtx(t), 20*time.Second)
	defer cancel()
	wch := c.Watch(ctx, key)
	// A first put may land before the watch is created: put until an event
	// comes.
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case r, ok := <-wch:
			require.True(t, ok, "watch channel closed")
			require.NoError(t, r.Err())
			if len(r.Events) > 0 {
				require.Equal(t, key, string(r.Events[0].Kv.Key))
				return
			}
		case <-tick.C:
			_, err := c.Set(ctx, key, "v")
			require.NoError(t, err)
		case <-ctx.Done():
			t.Fatal("no watch event in time")
		}
	}
}

func TestWithTransportWrapsUnaryAndWatch(t *testing.T) {
	front := newReverseProxy(t, shared.Endpoint(), "")
	ct := &countingTransport{paths: map[string]int{}}
	c, err := etcdgw.New(etcdgw.WithEndpoints(front.srv.URL), etcdgw.WithKeyPrefix(testPrefix(t)),
		etcdgw.WithTransport(func(rt http.RoundTripper) http.RoundTripper { ct.next = rt; return ct }))
	require.NoError(t, err)
	defer c.Close()
	ctx := testCtx(t)
	_, err = c.Set(ctx, "k", "v")
	require.NoError(t, err)
	resp, err := c.Get(ctx, "k")
	require.NoError(t, err)
	require.Len(t, resp.Kvs, 1)
	watchOneEvent(t, c, "w")

	require.Equal(t, 1, ct.count("/version"), "API prefix detection")
	require.GreaterOrEqual(t, ct.count("/v3/kv/put"), 2)
	require.Equal(t, 1, ct.count("/v3/kv/range"))
	require.GreaterOrEqual(t, ct.count("/v3/watch"), 1)
	// Every request through the wrapper, and its header reached the server.
	require.Equal(t, front.all.Load(), front.wrapped.Load())
}

// forwardProxy is an HTTP proxy: plain requests forwarded by an
// httputil.ReverseProxy, CONNECT tunnelled.
type forwardProxy struct {
	srv       *httptest.Server
	forwarded atomic.Int64
	connects  atomic.Int64
	mu        sync.Mutex
	tunnels   map[net.Conn]bool
	wg        sync.WaitGroup
}

func newForwardProxy(t *testing.T) *forwardProxy {
	p := &forwardProxy{tunnels: map[net.Conn]bool{}}
	rp := &httputil.ReverseProxy{
		Rewrite:       func(pr *httputil.ProxyRequest) { pr.Out.URL = pr.In.URL; pr.Out.Host = pr.In.Host },
		FlushInterval: -1,
	}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodConnect {
			p.connect(w, r)
			return
		}
		if !r.URL.IsAbs() {
			http.Error(w, "not a proxy request", http.StatusBadRequest)
			return
		}
		p.forwarded.Add(1)
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		p.srv.CloseClientConnections()
		p.srv.Close()
		p.mu.Lock()
		for c := range p.tunnels {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *forwardProxy) url() *url.URL {
	u, _ := url.Parse(p.srv.URL)
	return u
}

func (p *forwardProxy) connect(w http.ResponseWriter, r *http.Request) {
	up, err := net.DialTimeout("tcp", r.Host, 5*time.Second)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		up.Close()
		return
	}
	p.connects.Add(1)
	p.mu.Lock()
	p.tunnels[conn], p.tunnels[up] = true, true
	p.mu.Unlock()
	if _, err := io.WriteString(conn, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		conn.Close()
		up.Close()
		return
	}
	pipe := func(dst, src net.Conn) {
		defer p.wg.Done()
		_, _ = io.Copy(dst, src)
		dst.Close()
		src.Close()
		p.mu.Lock()
		delete(p.tunnels, dst)
		delete(p.tunnels, src)
		p.mu.Unlock()
	}
	p.wg.Add(2)
	go pipe(conn, up)
	go pipe(up, conn)
}

func TestWithProxyForwardsPlainHTTP(t *testing.T) {
	p := newForwardProxy(t)
	c, err := etcdgw.New(etcdgw.WithEndpoints(shared.Endpoint()), etcdgw.WithKeyPrefix(testPrefix(t)),
		etcdgw.WithProxy(http.ProxyURL(p.url())))
	require.NoError(t, err)
	defer c.Close()
	ctx := testCtx(t)
	_, err = c.Set(ctx, "k", "v")
	require.NoError(t, err)
	watchOneEvent(t, c, "w")
	require.GreaterOrEqual(t, p.forwarded.Load(), int64(4), "version, put, watch, put through the proxy")

	// nil: no proxy.
	before := p.forwarded.Load()
	direct := newClient(t, etcdgw.WithProxy(nil))
	_, err = direct.Get(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, before, p.forwarded.Load())
}

func TestWithProxyTunnelsHTTPS(t *testing.T) {
	s := etcdtest.NewServer(t, etcdtest.Config{TLS: true})
	p := newForwardProxy(t)
	c, err := etcdgw.New(etcdgw.WithEndpoints(s.Endpoint()), etcdgw.WithCAFile(s.Certs().CAFile),
		etcdgw.WithProxy(http.ProxyURL(p.url())))
	require.NoError(t, err)
	defer c.Close()
	ctx := testCtx(t)
	_, err = c.Set(ctx, "k", "v")
	require.NoError(t, err)
	watchOneEvent(t, c, "w")
	require.GreaterOrEqual(t, p.connects.Load(), int64(1))
	require.Zero(t, p.forwarded.Load(), "https is tunnelled, never forwarded in the clear")
	require.Equal(t, 2, etcdgw.EndpointProto(c, s.Endpoint()), "HTTP/2 through the tunnel")
}

func TestBasePathBehindReverseProxy(t *testing.T) {
	front := newReverseProxy(t, shared.Endpoint(), "/etcd")
	probed := make(chan struct{}, 1)
	// noteProbes signals probed when a /health probe goes under the base path.
	noteProbes := etcdgw.WithTransport(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(req *http.Request) (*http.Response, error) {
			if req.URL.Path == "/etcd/health" {
				select {
				case probed <- struct{}{}:
				default:
				}
			}
			return rt.RoundTrip(req)
		})
	})
	c, err := etcdgw.New(etcdgw.WithEndpoints(front.srv.URL+"/etcd/"), etcdgw.WithKeyPrefix(testPrefix(t)), noteProbes)
	require.NoError(t, err)
	defer c.Close()
	ctx := testCtx(t)
	v, err := c.Version(ctx)
	require.NoError(t, err)
	require.NotEmpty(t, v.Server)
	_, err = c.Set(ctx, "k", "v")
	require.NoError(t, err)
	resp, err := c.Get(ctx, "k")
	require.NoError(t, err)
	require.Len(t, resp.Kvs, 1)
	watchOneEvent(t, c, "w")

	// /health goes under the base path too: mark the endpoint unhealthy
	// and let a call bring it back with a probe.
	h, err := etcdgw.New(etcdgw.WithEndpoints(front.srv.URL+"/etcd"), etcdgw.WithHealthCheck(time.Millisecond, 1), noteProbes)
	require.NoError(t, err)
	defer h.Close()
	etcdgw.FailEndpoint(h, front.srv.URL+"/etcd")
	require.Eventually(t, func() bool {
		_, err := h.Get(ctx, "anything")
		return err == nil && etcdgw.EndpointHealthy(h, front.srv.URL+"/etcd")
	}, 10*time.Second, 20*time.Millisecond)
	select {
	case <-probed:
	default:
		t.Fatal("no /etcd/health probe")
	}

	// Without the base path the front answers 404: every request above
	// went under it.
	bad := newClientOf(t, front.srv.URL)
	_, err = bad.Version(ctx)
	require.Error(t, err)
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestDecodeOfPlainValueSaysNotJSON(t *testing.T) {
	raw, p := prefixedClient(t, etcdgw.WithSerializer(etcdgw.Raw))
	ctx := testCtx(t)
	_, err := raw.Set(ctx, "plain", "hello")
	require.NoError(t, err)
	c := newClient(t, etcdgw.WithKeyPrefix(p))
	r, err := c.Get(ctx, "plain")
	require.NoError(t, err)
	require.Len(t, r.Kvs, 1)
	var s string
	err = c.Decode(r.Kvs[0].Value, &s)
	require.ErrorContains(t, err, "the value is not JSON; use etcdgw.Raw for plain strings")

	// JSON of another shape is a plain encoding/json error.
	_, err = c.Set(ctx, "json", "text")
	require.NoError(t, err)
	r, err = c.Get(ctx, "json")
	require.NoError(t, err)
	var n int
	err = c.Decode(r.Kvs[0].Value, &n)
	require.Error(t, err)
	require.NotContains(t, err.Error(), "not JSON")
}
