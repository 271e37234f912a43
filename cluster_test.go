package etcdgw_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcdgw/etcdgw"
	"github.com/etcdgw/etcdgw/internal/etcdtest"
)

// TestCluster runs the failover tests that need a real 3-member cluster
// against one cluster, which each subtest leaves with every member running.
func TestCluster(t *testing.T) {
	cl := etcdtest.NewCluster(t, 3, etcdtest.Config{Name: "gw"})
	restore := func(t *testing.T) {
		t.Cleanup(func() {
			for i := range cl.Size() {
				if !cl.Member(i).Running() {
					if err := cl.Member(i).Restart(); err != nil {
						t.Errorf("restart member %d: %v", i, err)
					}
				}
			}
		})
	}
	t.Run("ReadsWithDeadEndpoints", func(t *testing.T) {
		restore(t)
		testReadsWithDeadEndpoints(t, cl)
	})
	t.Run("WritesAndWatchSurviveMemberStop", func(t *testing.T) {
		restore(t)
		testWritesAndWatchSurviveMemberStop(t, cl)
	})
	t.Run("RequireLeaderFailsFastWithoutLeader", func(t *testing.T) {
		restore(t)
		testRequireLeaderWithoutLeader(t, cl)
	})
	// Last: it turns auth on for good.
	t.Run("AuthMemberRestart", func(t *testing.T) {
		restore(t)
		testAuthMemberRestart(t, cl)
	})
}

// follower returns the index of a member that does not lead the cluster.
func follower(t *testing.T, cl *etcdtest.Cluster) int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if l := cl.Leader(); l >= 0 {
			return (l + 1) % cl.Size()
		}
		time.Sleep(20 * time.Millisecond) // polling for an election
	}
	t.Fatal("no leader within 20s")
	return -1
}

// refusedEndpoint returns the URL of a loopback port that refuses connections.
func refusedEndpoint(t *testing.T) string {
	t.Helper()
	p := tcpProxy(t, "127.0.0.1:1")
	require.NoError(t, p.SetRefuse(true))
	return p.Endpoint("http")
}

func testReadsWithDeadEndpoints(t *testing.T, cl *etcdtest.Cluster) {
	ctx := testCtx(t)
	dead := follower(t, cl)
	require.NoError(t, cl.Member(dead).Stop())
	refused := refusedEndpoint(t)
	eps := append(cl.Endpoints(), refused)
	c, err := etcdgw.New(etcdgw.WithEndpoints(eps...), etcdgw.WithKeyPrefix(testPrefix(t)))
	require.NoError(t, err)
	defer c.Close()

	// A write through the live members, then reads: round-robin brings
	// every endpoint's turn, the dead ones included.
	_, err = c.Set(ctx, "k", "v")
	require.NoError(t, err)
	for i := range 2 * len(eps) {
		r, err := c.Get(ctx, "k")
		require.NoError(t, err, "read %d", i)
		require.Len(t, r.Kvs, 1)
		assert.Equal(t, `"v"`, string(r.Kvs[0].Value))
	}
	assert.False(t, etcdgw.EndpointHealthy(c, cl.Member(dead).Endpoint()), "the stopped member was tried and marked")
	assert.False(t, etcdgw.EndpointHealthy(c, refused), "the refused port was tried and marked")
	for i := range cl.Size() {
		if i != dead {
			assert.True(t, etcdgw.EndpointHealthy(c, cl.Member(i).Endpoint()), "live member %d", i)
		}
	}
}

func testWritesAndWatchSurviveMemberStop(t *testing.T, cl *etcdtest.Cluster) {
	ctx := testCtx(t)
	prefix := testPrefix(t)
	eps := cl.Endpoints()
	wc, err := etcdgw.New(etcdgw.WithEndpoints(eps...), etcdgw.WithKeyPrefix(prefix))
	require.NoError(t, err)
	defer wc.Close()
	watcher, err := etcdgw.New(etcdgw.WithEndpoints(eps...), etcdgw.WithKeyPrefix(prefix))
	require.NoError(t, err)
	defer watcher.Close()

	start, err := wc.Get(ctx, "any")
	require.NoError(t, err)
	from := start.Header.Revision + 1
	ch := watcher.WatchDir(ctx, "w/", etcdgw.WithRev(from))
	created := next(t, ch)
	require.True(t, created.Created)

	// The member that serves the watch is the one to stop; the writer's
	// round-robin uses it too.
	used := -1
	for i := range cl.Size() {
		id, err := cl.Member(i).MemberID()
		require.NoError(t, err)
		if id == created.Header.MemberID {
			used = i
		}
	}
	require.NotEqual(t, -1, used, "no member has ID %x", created.Header.MemberID)

	const n = 300
	progress := make(chan int, n)
	var last int64
	var werr error
	var wg sync.WaitGroup
	wg.Go(func() {
		last, werr = writer(ctx, wc, "w/", n, progress)
		close(progress)
	})
	stops := 0
	for i := range progress {
		switch i {
		case 80:
			t0 := time.Now()
			require.NoError(t, cl.Member(used).Stop())
			t.Logf("member %d stopped in %v", used, time.Since(t0))
			stops++
		case 200:
			t0 := time.Now()
			require.NoError(t, cl.Member(used).Restart())
			t.Logf("member %d restarted in %v", used, time.Since(t0))
		}
	}
	wg.Wait()
	require.NoError(t, werr)
	require.Equal(t, 1, stops)

	got := collect(t, ch, last)
	// Every write is there, and the watch saw what etcd holds: each event
	// once, in order.
	all, err := wc.ReadDir(ctx, "w/")
	require.NoError(t, err)
	assert.Len(t, all.Kvs, n)
	other := (used + 1) % cl.Size()
	want := history(t, cl.Member(other).Endpoint(), prefix+"w/", from, last)
	for i := range want {
		want[i].key = want[i].key[len(prefix):]
	}
	require.Equal(t, len(want), len(got))
	assert.Equal(t, want, got, "every event exactly once, in order, across the member's stop")
	assert.GreaterOrEqual(t, len(got), n)
}

func testRequireLeaderWithoutLeader(t *testing.T, cl *etcdtest.Cluster) {
	// The member left alone loses its leader (or, leading, steps down).
	alone := follower(t, cl)
	for i := range cl.Size() {
		if i != alone {
			require.NoError(t, cl.Member(i).Stop())
		}
	}
	c := clientOf(t, cl.Member(alone).Endpoint(), etcdgw.WithAPIPrefix("/v3"), etcdgw.WithHealthCheck(0, 1))
	ctx := testCtx(t)
	var err error
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err = c.Get(cctx, "k", etcdgw.WithCallRequireLeader())
		cancel()
		if errors.Is(err, etcdgw.ErrNoLeader) {
			break
		}
		time.Sleep(50 * time.Millisecond) // polling for the member to notice
	}
	require.ErrorIs(t, err, etcdgw.ErrNoLeader, "the member without a leader refuses at once")

	// Without the header the same read waits for a leader that never comes.
	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	_, err = c.Get(cctx, "k")
	require.Error(t, err)
	assert.NotErrorIs(t, err, etcdgw.ErrNoLeader)
}

func testAuthMemberRestart(t *testing.T, cl *etcdtest.Cluster) {
	require.NoError(t, etcdtest.EnableAuth(cl.Member(0).Endpoint(), nil, rootPassword,
		etcdtest.User{Name: "rw", Password: rwPassword, WritePrefix: []string{"app/"}}))
	// A recording proxy in front of each member counts what reaches it.
	ps := make([]*etcdtest.RecordingProxy, cl.Size())
	var eps []string
	for i := range ps {
		p, err := etcdtest.NewRecordingProxy(cl.Member(i).Endpoint(), nil)
		require.NoError(t, err)
		t.Cleanup(func() { assert.NoError(t, p.Close()) })
		ps[i] = p
		eps = append(eps, p.Endpoint())
	}
	count := func(path string) int {
		n := 0
		for _, p := range ps {
			n += p.Count(path)
		}
		return n
	}
	ctx := testCtx(t)
	c, err := etcdgw.New(etcdgw.WithEndpoints(eps...), etcdgw.WithAuth("rw", rwPassword),
		etcdgw.WithHealthCheck(200*time.Millisecond, 1))
	require.NoError(t, err)
	defer c.Close()

	// Every member must have applied "auth enable" before the count starts:
	// a linearizable read applies what the leader has committed before the
	// member checks its (missing) token.
	for i := range cl.Size() {
		bare := newClientOf(t, cl.Member(i).Endpoint())
		_, err := bare.Get(ctx, "app/m/0")
		require.ErrorIs(t, err, etcdgw.ErrUserEmpty, "member %d enforces auth", i)
	}

	// A token from one member is good on every member: etcd applies the
	// authentication through raft. A member checks the token of a write as
	// soon as it gets it, possibly before it has applied that entry, so reads
	// go first: each waits for its member to catch up.
	for range 2 * len(eps) {
		_, err := c.Get(ctx, "app/m/0")
		require.NoError(t, err)
	}
	for i := range 2 * len(eps) {
		_, err := c.Set(ctx, fmt.Sprintf("app/m/%d", i), i)
		require.NoError(t, err)
	}
	for i, p := range ps {
		require.NotZero(t, p.Count("/v3/kv/put"), "member %d got no write", i)
	}
	require.Equal(t, 1, count(pathAuth), "one token for the whole cluster")

	// A restarted member forgets its simple tokens; the others keep them.
	restarted := follower(t, cl)
	before := ps[restarted].Count("/v3/kv/range")
	require.NoError(t, cl.Member(restarted).Restart())
	deadline := time.Now().Add(20 * time.Second)
	for ps[restarted].Count("/v3/kv/range") == before {
		require.True(t, time.Now().Before(deadline), "no read reached the restarted member")
		_, err := c.Get(ctx, "app/m/0")
		require.NoError(t, err)
	}
	for range 2 * len(eps) {
		_, err := c.Get(ctx, "app/m/0")
		require.NoError(t, err)
	}
	assert.Equal(t, 2, count(pathAuth), "one new token, no thrashing between members")
}

// deadProxy is a proxy whose target refuses: it accepts each connection and
// closes it at once, like a port whose server has died behind a load
// balancer. Its Accepted count tells how often the client tried it.
func deadProxy(t *testing.T) *etcdtest.Proxy {
	t.Helper()
	// Port 1 (tcpmux) refuses: a port freed here could be the next
	// listener's, another proxy's even, which the kernel hands out again.
	return tcpProxy(t, "127.0.0.1:1")
}

func TestAllEndpointsDownFailsFast(t *testing.T) {
	ps := []*etcdtest.Proxy{deadProxy(t), deadProxy(t), deadProxy(t)}
	var eps []string
	for _, p := range ps {
		eps = append(eps, p.Endpoint("http"))
	}
	c, err := etcdgw.New(etcdgw.WithEndpoints(eps...), etcdgw.WithAPIPrefix("/v3"))
	require.NoError(t, err)
	defer c.Close()
	accepted := func() int64 {
		var n int64
		for _, p := range ps {
			n += p.Accepted()
		}
		return n
	}
	ctx := testCtx(t)

	// The first call tries each endpoint once.
	_, err = c.Get(ctx, "k")
	require.Error(t, err)
	require.NoError(t, ctx.Err())
	for i, p := range ps {
		assert.Equal(t, int64(1), p.Accepted(), "endpoint %d tried once", i)
	}

	// Every endpoint is marked: the next calls fail at once, without a
	// connection.
	before := accepted()
	t0 := time.Now()
	_, err = c.Get(ctx, "k")
	took := time.Since(t0)
	assert.ErrorIs(t, err, etcdgw.ErrNoHealthyEndpoint)
	_, err = c.Set(ctx, "k", "v")
	assert.ErrorIs(t, err, etcdgw.ErrNoHealthyEndpoint)
	assert.Equal(t, before, accepted(), "no connection while every endpoint is marked")
	assert.Less(t, took, time.Second, "sanity bound only")
}

func TestEndpointComesBackAfterHealthProbe(t *testing.T) {
	// gate can refuse connections; rec behind it sees what comes through.
	rec := recordingProxy(t)
	gate := tcpProxy(t, rec.Addr())
	other := shared.Endpoint()
	const failTimeout = 300 * time.Millisecond
	c, err := etcdgw.New(etcdgw.WithEndpoints(gate.Endpoint("http"), other),
		etcdgw.WithAPIPrefix("/v3"), etcdgw.WithHealthCheck(failTimeout, 1))
	require.NoError(t, err)
	defer c.Close()
	ctx := testCtx(t)
	gateURL := gate.Endpoint("http")

	require.NoError(t, gate.SetRefuse(true))
	for i := 0; etcdgw.EndpointHealthy(c, gateURL); i++ {
		require.Less(t, i, 10, "the refused endpoint is never marked")
		_, err := c.Get(ctx, "k")
		require.NoError(t, err, "a read fails over to the live endpoint")
	}
	rec.Reset()

	// Past its fail timeout, a probe that fails keeps it out.
	t0 := time.Now()
	for time.Since(t0) < 3*failTimeout {
		_, err := c.Get(ctx, "k")
		require.NoError(t, err)
		time.Sleep(failTimeout / 10) // pacing the calls, not synchronising
	}
	assert.False(t, etcdgw.EndpointHealthy(c, gateURL), "a refusing endpoint stays out")
	assert.Zero(t, rec.Count("/v3/kv/range"))

	// Once it answers, the next probe brings it back, and only then do
	// calls go to it.
	require.NoError(t, gate.SetRefuse(false))
	deadline := time.Now().Add(15 * time.Second)
	for rec.Count("/v3/kv/range") == 0 {
		require.True(t, time.Now().Before(deadline), "the endpoint never came back")
		_, err := c.Get(ctx, "k")
		require.NoError(t, err)
		time.Sleep(failTimeout / 10) // pacing the calls, not synchronising
	}
	reqs := rec.Requests()
	require.NotEmpty(t, reqs)
	assert.Equal(t, "/health", reqs[0].Path, "the first request after the outage is the probe")
	assert.True(t, etcdgw.EndpointHealthy(c, gateURL))
}

// applyThenDrop is a gateway that passes each request to etcd and then drops
// the connection without answering: the write is applied, the client cannot
// know it.
func applyThenDrop(t *testing.T, puts *atomic.Int32) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v3/kv/put" {
			puts.Add(1)
		}
		req, err := http.NewRequestWithContext(r.Context(), r.Method, shared.Endpoint()+r.URL.Path, r.Body)
		if err == nil {
			var resp *http.Response
			if resp, err = http.DefaultTransport.RoundTrip(req); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}
		if err != nil {
			t.Errorf("forwarding to etcd: %v", err)
		}
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			panic(err)
		}
		conn.Close()
	}))
	t.Cleanup(s.Close)
	return s
}

func TestWriteWithBrokenConnectionIsOutcomeUnknown(t *testing.T) {
	var puts atomic.Int32
	a, b := applyThenDrop(t, &puts), applyThenDrop(t, &puts)
	prefix := testPrefix(t)
	c, err := etcdgw.New(etcdgw.WithEndpoints(a.URL, b.URL), etcdgw.WithAPIPrefix("/v3"), etcdgw.WithKeyPrefix(prefix))
	require.NoError(t, err)
	defer c.Close()
	ctx := testCtx(t)

	_, err = c.Set(ctx, "k", "v1")
	require.ErrorIs(t, err, etcdgw.ErrOutcomeUnknown)
	assert.NotErrorIs(t, err, etcdgw.ErrNoHealthyEndpoint)
	assert.Equal(t, int32(1), puts.Load(), "the write was sent once, not retried on the other endpoint")
	// It was applied.
	r, err := newClient(t, etcdgw.WithKeyPrefix(prefix)).Get(ctx, "k")
	require.NoError(t, err)
	require.Len(t, r.Kvs, 1)
	assert.Equal(t, `"v1"`, string(r.Kvs[0].Value))
}

// noLeader answers every request with etcd's 503 for a member
// without a leader, counting them.
func noLeader(n *atomic.Int32) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		answer(http.StatusServiceUnavailable, `{"error":"etcdserver: no leader","code":14,"message":"etcdserver: no leader"}`)(w, r)
	}
}

func TestNoLeaderRefusalIsRetriedElsewhere(t *testing.T) {
	var refused atomic.Int32
	bad := httptest.NewServer(noLeader(&refused))
	t.Cleanup(bad.Close)
	rec := recordingProxy(t)
	prefix := testPrefix(t)
	c, err := etcdgw.New(etcdgw.WithEndpoints(bad.URL, rec.Endpoint()), etcdgw.WithAPIPrefix("/v3"), etcdgw.WithKeyPrefix(prefix))
	require.NoError(t, err)
	defer c.Close()
	ctx := testCtx(t)

	// Round-robin sends one of two calls to the member without a leader.
	for i := range 2 {
		_, err := c.Set(ctx, fmt.Sprint("k", i), i)
		require.NoError(t, err, "write %d", i)
	}
	assert.Equal(t, int32(1), refused.Load(), "the refusing member was tried once, then marked")
	assert.Equal(t, 2, rec.Count("/v3/kv/put"), "both writes reached the live member")
	assert.False(t, etcdgw.EndpointHealthy(c, bad.URL))
	r, err := c.ReadDir(ctx, "")
	require.NoError(t, err)
	assert.Len(t, r.Kvs, 2)
}

func TestRequireLeaderHeader(t *testing.T) {
	rec := recordingProxy(t)
	ctx := testCtx(t)
	const h = "Grpc-Metadata-Hasleader"

	plain := clientOf(t, rec.Endpoint(), etcdgw.WithAPIPrefix("/v3"))
	_, err := plain.Get(ctx, "k")
	require.NoError(t, err)
	_, err = plain.Get(ctx, "k", etcdgw.WithCallRequireLeader())
	require.NoError(t, err)
	wctx, cancel := context.WithCancel(ctx)
	ch := plain.Watch(wctx, "k")
	require.True(t, next(t, ch).Created)
	cancel()
	closed(t, ch, 10*time.Second)

	all := clientOf(t, rec.Endpoint(), etcdgw.WithAPIPrefix("/v3"), etcdgw.WithRequireLeader())
	_, err = all.Get(ctx, "k")
	require.NoError(t, err)
	_, err = all.Set(ctx, testPrefix(t)+"k", "v")
	require.NoError(t, err)

	var got []string
	for _, r := range rec.Requests() {
		got = append(got, r.Path+"="+r.Header.Get(h))
	}
	assert.Equal(t, []string{
		"/v3/kv/range=",     // plain
		"/v3/kv/range=true", // WithCallRequireLeader
		"/version=",         // may it take a WebSocket? (3.5 and later)
		"/v3/watch=true",    // watches always (etcd's WebSocket proxy drops it)
		"/v3/kv/range=true", // WithRequireLeader
		"/v3/kv/put=true",   // WithRequireLeader
	}, got)
}

func TestLoneEndpointBackOnFirstCallAfterFailTimeout(t *testing.T) {
	gate := tcpProxy(t, shared.ClientAddr())
	const failTimeout = 200 * time.Millisecond
	c := clientOf(t, gate.Endpoint("http"), etcdgw.WithAPIPrefix("/v3"), etcdgw.WithHealthCheck(failTimeout, 1))
	ctx := testCtx(t)
	_, err := c.Get(ctx, "k")
	require.NoError(t, err)

	require.NoError(t, gate.SetRefuse(true))
	gate.CutAll()
	_, err = c.Get(ctx, "k")
	require.Error(t, err)
	marked := time.Now()
	_, err = c.Get(ctx, "k")
	require.ErrorIs(t, err, etcdgw.ErrNoHealthyEndpoint)
	require.NoError(t, gate.SetRefuse(false))

	// The fail timeout passing is what is under test, so it is waited out.
	time.Sleep(failTimeout - time.Since(marked) + 50*time.Millisecond)
	_, err = c.Get(ctx, "k")
	require.NoError(t, err, "the first call after the fail timeout probes the endpoint and uses it")
}
