package etcdgw_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcdgw/etcdgw"
	"github.com/etcdgw/etcdgw/internal/etcdtest"
)

// Watches over plain http share one WebSocket per member (watchws.go).

// awaitProgress asks for progress until each of chans has delivered a
// progress notification at minRev or later, and fails the test if one of
// them delivers anything else first. etcd drops a progress request while a
// watch on the stream is still catching up, so it asks again until every
// watch has its answer.
func awaitProgress(t *testing.T, c *etcdgw.Client, chans []etcdgw.WatchChan, minRev int64) {
	t.Helper()
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	got := make(chan error, len(chans))
	for i, ch := range chans {
		wg.Go(func() {
			select {
			case r, ok := <-ch:
				switch {
				case !ok:
					got <- fmt.Errorf("watch %d: closed before a progress notification", i)
				case !r.IsProgressNotify():
					got <- fmt.Errorf("watch %d: %+v (err %v) before a progress notification", i, r, r.Err())
				case r.Header.Revision < minRev:
					got <- fmt.Errorf("watch %d: progress notification at revision %d, writes done up to %d", i, r.Header.Revision, minRev)
				default:
					got <- nil
				}
			case <-ctx.Done():
			}
		})
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	require.NoError(t, c.RequestProgress(ctx))
	for done := 0; done < len(chans); {
		select {
		case err := <-got:
			require.NoError(t, err)
			done++
		case <-tick.C:
			require.NoError(t, c.RequestProgress(ctx))
		case <-ctx.Done():
			t.Fatalf("%d of %d watches got no progress notification within 15s", len(chans)-done, len(chans))
		}
	}
}

// A thousand watches on one client share one WebSocket: one connection for
// all of them, beside the one of the unary calls.
func TestWebSocketThousandWatches(t *testing.T) {
	needWebSocket(t)
	const n = 1000
	p := proxied(t)
	c := clientOf(t, p.Endpoint("http"))
	w := newClient(t)
	prefix := testPrefix(t)
	ctx := testCtx(t)
	key := func(i int) string { return fmt.Sprintf("%sk/%04d", prefix, i) }

	chans := make([]etcdgw.WatchChan, n)
	cancels := make([]context.CancelFunc, n)
	for i := range n {
		wctx, cancel := context.WithCancel(ctx)
		cancels[i] = cancel
		chans[i] = c.Watch(wctx, key(i))
	}
	for i, ch := range chans {
		r := next(t, ch)
		require.NoError(t, r.Err(), "watch %d", i)
		require.True(t, r.Created, "watch %d: %+v", i, r)
	}
	streams, watches := etcdgw.WatchStreams(c)
	assert.Equal(t, 1, streams, "one shared stream")
	assert.Equal(t, n, watches)
	accepted := p.Accepted()
	// The unary calls' connection and the WebSocket; a second unary one when
	// the first watch's /version and the API prefix's ran back to back (Go's
	// transport returns a connection to its pool after the answer is read).
	assert.LessOrEqual(t, p.Conns(), 3, "the unary calls' connections and the WebSocket")
	assert.LessOrEqual(t, accepted, int64(3), "connections accepted for %d watches", n)

	// put writes each of keys in Txns of 100 puts, and returns the revision
	// of each key's put.
	put := func(keys []int) map[int]int64 {
		revs := map[int]int64{}
		for len(keys) > 0 {
			batch := keys[:min(100, len(keys))]
			keys = keys[len(batch):]
			ops := make([]etcdgw.Op, 0, len(batch))
			for _, i := range batch {
				ops = append(ops, etcdgw.OpPut(key(i), i))
			}
			r, err := w.Txn(ctx).Then(ops...).Commit()
			require.NoError(t, err)
			for _, i := range batch {
				revs[i] = r.Header.Revision
			}
		}
		return revs
	}
	all := make([]int, n)
	for i := range all {
		all[i] = i
	}
	revs := put(all)
	for i, ch := range chans {
		ev := nextEvents(t, ch)
		require.Len(t, ev, 1, "watch %d", i)
		require.Equal(t, key(i), string(ev[0].Kv.Key), "watch %d gets its own key only", i)
		require.Equal(t, fmt.Sprint(i), string(ev[0].Kv.Value))
		require.Equal(t, revs[i], ev[0].Kv.ModRevision)
	}

	// Cancel the even half; their channels close and they leave the stream.
	var kept []etcdgw.WatchChan
	var keptKeys []int
	for i := 0; i < n; i += 2 {
		cancels[i]()
	}
	for i := 0; i < n; i += 2 {
		closed(t, chans[i], 10*time.Second)
	}
	for i := 1; i < n; i += 2 {
		kept = append(kept, chans[i])
		keptKeys = append(keptKeys, i)
	}
	assert.True(t, pollUntil(10*time.Second, func() bool {
		_, watches := etcdgw.WatchStreams(c)
		return watches == n/2
	}), "the cancelled watches left the shared stream")

	// A progress notification is the next thing each kept watch gets: the
	// first round gave each exactly one event.
	awaitProgress(t, c, kept, revs[n-1])

	revs = put(keptKeys)
	for j, ch := range kept {
		ev := nextEvents(t, ch)
		require.Len(t, ev, 1, "watch %d", keptKeys[j])
		require.Equal(t, key(keptKeys[j]), string(ev[0].Kv.Key))
		require.Equal(t, revs[keptKeys[j]], ev[0].Kv.ModRevision, "watch %d", keptKeys[j])
	}
	assert.Equal(t, accepted, p.Accepted(), "no new connection")
}

// Behind a proxy that refuses WebSocket the watches use requests of their
// own, and the client does not try the upgrade again for each watch.
func TestWebSocketFallbackWhenUpgradeRefused(t *testing.T) {
	needWebSocket(t)
	// 400 says no; a 503 says no too while the member answers its probe
	// (a load balancer with WebSocket turned off).
	for _, code := range []int{http.StatusBadRequest, http.StatusServiceUnavailable} {
		t.Run(http.StatusText(code), func(t *testing.T) { testUpgradeRefused(t, code) })
	}
}

func testUpgradeRefused(t *testing.T, code int) {
	hp, err := etcdtest.NewHTTPProxy(shared.Endpoint(), etcdtest.HTTPProxyConfig{NoWebSocket: true, NoWebSocketStatus: code})
	require.NoError(t, err)
	t.Cleanup(func() { hp.Close() })
	c := clientOf(t, hp.Endpoint())
	w := newClient(t)
	prefix := testPrefix(t)
	ctx := testCtx(t)

	var chans []etcdgw.WatchChan
	for i := range 3 {
		ch := c.Watch(ctx, fmt.Sprintf("%sk%d", prefix, i))
		r := next(t, ch)
		require.NoError(t, r.Err())
		require.True(t, r.Created, "watch %d", i)
		assert.Equal(t, int64(1), hp.RefusedUpgrades(), "after watch %d: one upgrade tried, then requests of their own", i)
		chans = append(chans, ch)
	}
	streams, _ := etcdgw.WatchStreams(c)
	assert.Equal(t, 0, streams, "no shared stream")
	for i, ch := range chans {
		r, err := w.Set(ctx, fmt.Sprintf("%sk%d", prefix, i), i)
		require.NoError(t, err)
		ev := nextEvents(t, ch)
		require.Len(t, ev, 1)
		assert.Equal(t, r.Header.Revision, ev[0].Kv.ModRevision)
		assert.Equal(t, fmt.Sprint(i), string(ev[0].Kv.Value))
	}
	assert.Equal(t, int64(1), hp.RefusedUpgrades())

	// The same proxy passing WebSocket: the watches share one.
	passing, err := etcdtest.NewHTTPProxy(shared.Endpoint(), etcdtest.HTTPProxyConfig{})
	require.NoError(t, err)
	t.Cleanup(func() { passing.Close() })
	oc := clientOf(t, passing.Endpoint())
	for i := range 2 {
		r := next(t, oc.Watch(ctx, fmt.Sprintf("%sk%d", prefix, i)))
		require.NoError(t, r.Err())
		require.True(t, r.Created)
	}
	streams, watches := etcdgw.WatchStreams(oc)
	assert.Equal(t, 1, streams, "one shared stream through a proxy that passes WebSocket")
	assert.Equal(t, 2, watches)
}

// Cutting the WebSocket again and again while values are written loses and
// repeats nothing: each watch resumes after the last event it delivered.
func TestWebSocketCutResumesWithoutLoss(t *testing.T) {
	needWebSocket(t)
	const watchers, rounds, cutEvery = 50, 30, 5
	p := proxied(t)
	c := clientOf(t, p.Endpoint("http"))
	w := newClient(t)
	prefix := testPrefix(t)
	ctx := testCtx(t)
	key := func(i int) string { return fmt.Sprintf("%sk/%02d", prefix, i) }

	wctx, stop := context.WithCancel(ctx)
	defer stop()
	chans := make([]etcdgw.WatchChan, watchers)
	for i := range chans {
		chans[i] = c.Watch(wctx, key(i))
	}
	type result struct {
		values    []string
		errs      []error
		created   int
		delivered atomic.Int32 // len(values), for the writer
	}
	results := make([]result, watchers)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()
	for i, ch := range chans {
		res := &results[i]
		wg.Go(func() {
			for len(res.values) < rounds {
				select {
				case r, ok := <-ch:
					if !ok {
						return
					}
					if r.Err() != nil {
						res.errs = append(res.errs, r.Err())
					}
					if r.Created {
						res.created++
					}
					for _, ev := range r.Events {
						res.values = append(res.values, string(ev.Kv.Value))
					}
					res.delivered.Store(int32(len(res.values)))
				case <-wctx.Done():
					return
				}
			}
		})
	}
	require.True(t, pollUntil(10*time.Second, func() bool {
		_, watches := etcdgw.WatchStreams(c)
		return watches == watchers
	}), "every watch on the shared stream")

	// Before each cut the writer waits until every watch has the rounds
	// before, so that the cut finds a WebSocket carrying the round just
	// written; the rounds after it are written while the watches reconnect.
	before := p.Accepted()
	cuts := 0
	for r := range rounds {
		cut := r%cutEvery == cutEvery-1
		if cut {
			require.True(t, pollUntil(10*time.Second, func() bool {
				for i := range results {
					if results[i].delivered.Load() < int32(r) {
						return false
					}
				}
				return true
			}), "round %d: every watch delivered the rounds before", r)
		}
		ops := make([]etcdgw.Op, watchers)
		for i := range ops {
			ops[i] = etcdgw.OpPut(key(i), r)
		}
		_, err := w.Txn(ctx).Then(ops...).Commit()
		require.NoError(t, err)
		if cut {
			p.CutAll()
			cuts++
		}
	}
	wg.Wait()
	want := make([]string, rounds)
	for r := range want {
		want[r] = fmt.Sprint(r)
	}
	for i := range results {
		res := &results[i]
		assert.Equal(t, want, res.values, "watch %d: every value once, in order", i)
		assert.Empty(t, res.errs, "watch %d", i)
		assert.Equal(t, 1, res.created, "watch %d: Created once", i)
	}
	// The last cut comes with the last round: the watches may have every
	// value before the WebSocket is opened again, so wait for it.
	reconnected := pollUntil(10*time.Second, func() bool {
		streams, watches := etcdgw.WatchStreams(c)
		return p.Accepted()-before >= int64(cuts) && streams == 1 && watches == watchers
	})
	streams, watches := etcdgw.WatchStreams(c)
	assert.True(t, reconnected, "the WebSocket reconnected after each of %d cuts (%d connections, %d streams, %d watches)",
		cuts, p.Accepted()-before, streams, watches)
}

// versionGateway is a fake gateway that says it runs etcd version: it
// refuses WebSocket upgrades, counting them, and answers a watch request
// with a created answer, then holds the stream open.
type versionGateway struct {
	*httptest.Server
	upgrades atomic.Int32
	watches  atomic.Int32
	mu       sync.Mutex
	unknown  map[string]int
}

func newVersionGateway(t *testing.T, version string) *versionGateway {
	g := &versionGateway{unknown: map[string]int{}}
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "" {
			g.upgrades.Add(1)
			http.Error(w, "no WebSocket here", http.StatusBadRequest)
			return
		}
		switch r.URL.Path {
		case "/version":
			fmt.Fprintf(w, `{"etcdserver":%q,"etcdcluster":"3.0.0"}`, version)
		case "/health":
			io.WriteString(w, `{"health":"true"}`)
		case "/v3/auth/authenticate":
			io.WriteString(w, `{"header":{},"token":"tok"}`)
		case "/v3/watch":
			g.watches.Add(1)
			io.WriteString(w, createdLine)
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		default:
			g.mu.Lock()
			g.unknown[r.Method+" "+r.URL.Path]++
			g.mu.Unlock()
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(g.Close)
	return g
}

// Which members a watch tries a WebSocket with: etcd 3.5 and later, 3.4 only
// when asked, and with auth only releases that take a Bearer token.
func TestWebSocketVersionGating(t *testing.T) {
	auth := etcdgw.WithAuth("u", "p")
	for _, tt := range []struct {
		name    string
		version string
		opts    []etcdgw.Option
		want    int32
	}{
		{"3.4", "3.4.45", nil, 0},
		{"3.4 with WithWebSocketOnEtcd34", "3.4.45", []etcdgw.Option{etcdgw.WithWebSocketOnEtcd34(true)}, 1},
		{"3.4 with WithWebSocketOnEtcd34 and auth", "3.4.45", []etcdgw.Option{etcdgw.WithWebSocketOnEtcd34(true), auth}, 0},
		{"3.5.0", "3.5.0", nil, 1},
		{"3.7.0 without multiplexing", "3.7.0", []etcdgw.Option{etcdgw.WithWatchMultiplexing(false)}, 0},
		{"auth 3.5.31", "3.5.31", []etcdgw.Option{auth}, 0},
		{"auth 3.5.32", "3.5.32", []etcdgw.Option{auth}, 1},
		{"auth 3.6.12", "3.6.12", []etcdgw.Option{auth}, 0},
		{"auth 3.6.13", "3.6.13", []etcdgw.Option{auth}, 1},
		{"auth 3.6.0-alpha.0", "3.6.0-alpha.0", []etcdgw.Option{auth}, 0},
		{"auth 3.7.0", "3.7.0", []etcdgw.Option{auth}, 1},
		{"auth 4.0.0", "4.0.0", []etcdgw.Option{auth}, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := newVersionGateway(t, tt.version)
			c := clientOf(t, g.URL, tt.opts...)
			ch := c.Watch(testCtx(t), "k")
			r := next(t, ch)
			require.NoError(t, r.Err())
			assert.True(t, r.Created)
			assert.Equal(t, tt.want, g.upgrades.Load(), "WebSocket upgrades tried")
			assert.Equal(t, int32(1), g.watches.Load(), "watch requests of their own")
			g.mu.Lock()
			defer g.mu.Unlock()
			assert.Empty(t, g.unknown, "calls the fake does not answer")
		})
	}
}

// With auth on an etcd that takes Bearer tokens, watches share the WebSocket.
func TestWebSocketAuthBearer(t *testing.T) {
	needWebSocket(t)
	s := etcdtest.NewServer(t, etcdtest.Config{Name: "wsauth"})
	require.NoError(t, etcdtest.EnableAuth(s.Endpoint(), nil, rootPassword,
		etcdtest.User{Name: "rw", Password: rwPassword, WritePrefix: []string{"app/"}}))
	p := tcpProxy(t, s.ClientAddr())
	c := clientOf(t, p.Endpoint("http"), etcdgw.WithAuth("rw", rwPassword))
	ctx := testCtx(t)

	a := c.Watch(ctx, "app/ws/a")
	r := next(t, a)
	require.NoError(t, r.Err())
	require.True(t, r.Created)
	accepted := p.Accepted()
	b := c.Watch(ctx, "app/ws/b")
	r = next(t, b)
	require.NoError(t, r.Err())
	require.True(t, r.Created)
	streams, watches := etcdgw.WatchStreams(c)
	assert.Equal(t, 1, streams, "one shared stream")
	assert.Equal(t, 2, watches)
	assert.Equal(t, accepted, p.Accepted(), "the second watch opened no connection")

	put, err := c.Set(ctx, "app/other", 1)
	require.NoError(t, err)
	awaitProgress(t, c, []etcdgw.WatchChan{a, b}, put.Header.Revision)

	for _, k := range []string{"a", "b"} {
		_, err := c.Set(ctx, "app/ws/"+k, k)
		require.NoError(t, err)
	}
	for i, ch := range []etcdgw.WatchChan{a, b} {
		ev := nextEvents(t, ch)
		require.Len(t, ev, 1)
		assert.Equal(t, "app/ws/"+[]string{"a", "b"}[i], string(ev[0].Kv.Key))
	}
	assert.Equal(t, accepted, p.Accepted(), "no new connection")
}

// needWebSocket skips a test of WebSocket streams on etcd 3.4, which the
// client does not open a WebSocket to (the compatibility run).
func needWebSocket(t *testing.T) {
	t.Helper()
	if !etcdtest.VersionAtLeast(3, 5) {
		t.Skipf("etcd %s: no WebSocket streams before 3.5", etcdtest.Version())
	}
}

// A WebSocket whose flow a NAT or load balancer forgot, while its member
// stays healthy, is found by its ping: the watch moves to a new one and
// delivers what was written meanwhile.
func TestWebSocketFrozenFlowHealthyMember(t *testing.T) {
	needWebSocket(t)
	p := newFreezeProxy(t, strings.TrimPrefix(shared.Endpoint(), "http://"))
	c := clientOf(t, "http://"+p.addr(), etcdgw.WithStreamKeepalive(time.Second, time.Second))
	w := newClient(t)
	prefix := testPrefix(t)
	ctx := testCtx(t)
	ch := c.Watch(ctx, prefix+"k")
	require.True(t, next(t, ch).Created)
	_, err := w.Set(ctx, prefix+"k", "1")
	require.NoError(t, err)
	require.Len(t, nextEvents(t, ch), 1)
	require.Equal(t, 1, p.upgrades(), "one WebSocket")

	p.freeze() // the WebSocket's bytes stop both ways; /health still answers
	r, err := w.Set(ctx, prefix+"k", "2")
	require.NoError(t, err)
	ev := nextEvents(t, ch)
	require.Len(t, ev, 1)
	assert.Equal(t, r.Header.Revision, ev[0].Kv.ModRevision)
	assert.Equal(t, 2, p.upgrades(), "the watch moved to a new WebSocket")
}

// freezeProxy forwards TCP to a target; freeze stops the bytes, both ways,
// of the connections that carried a WebSocket upgrade so far, without
// closing them.
type freezeProxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu     sync.Mutex
	ws     int
	frozen map[net.Conn]bool // upgraded connections: true once frozen
	thaw   chan struct{}     // closed on Close
	conns  []net.Conn
}

func newFreezeProxy(t *testing.T, target string) *freezeProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &freezeProxy{ln: ln, target: target, frozen: map[net.Conn]bool{}, thaw: make(chan struct{})}
	p.wg.Go(p.serve)
	t.Cleanup(p.close)
	return p
}

func (p *freezeProxy) addr() string { return p.ln.Addr().String() }

func (p *freezeProxy) upgrades() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ws
}

func (p *freezeProxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.frozen {
		p.frozen[c] = true
	}
}

func (p *freezeProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, u)
		p.mu.Unlock()
		p.wg.Go(func() { p.pipe(u, c, c, true) })
		p.wg.Go(func() { p.pipe(c, u, c, false) })
	}
}

// pipe copies src to dst; key is the client's side of the pair. The
// client's first bytes tell an upgrade.
func (p *freezeProxy) pipe(dst, src, key net.Conn, fromClient bool) {
	defer dst.Close()
	buf := make([]byte, 32<<10)
	first := fromClient
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			if first && bytes.Contains(bytes.ToLower(buf[:n]), []byte("upgrade: websocket")) {
				p.ws++
				p.frozen[key] = false
			}
			first = false
			frozen := p.frozen[key]
			p.mu.Unlock()
			if frozen {
				<-p.thaw // the flow is gone: nothing passes until the end
				return
			}
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *freezeProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	close(p.thaw)
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
