package etcdgw_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcdgw/etcdgw"
	"github.com/etcdgw/etcdgw/internal/etcdtest"
)

// A member that freezes (a paused process, a partition that drops packets)
// sends no reset: its watch stream just goes quiet. The watch notices within
// WithStreamKeepalive's bound, through a probe of the member that gets no
// answer, and resumes through another member without losing or repeating an
// event.
func TestWatchMovesOffAFrozenMember(t *testing.T) {
	for _, tls := range []bool{false, true} {
		t.Run(map[bool]string{false: "http", true: "https"}[tls], func(t *testing.T) {
			testWatchMovesOffAFrozenMember(t, tls)
		})
	}
}

func testWatchMovesOffAFrozenMember(t *testing.T, tls bool) {
	cl := etcdtest.NewCluster(t, 3, etcdtest.Config{TLS: tls})
	scheme := map[bool]string{false: "http", true: "https"}[tls]
	var proxies []*etcdtest.Proxy
	var urls []string
	for i := 0; i < cl.Size(); i++ {
		p, err := etcdtest.NewProxy(cl.Member(i).ClientAddr())
		require.NoError(t, err)
		t.Cleanup(func() { p.Close() })
		proxies = append(proxies, p)
		urls = append(urls, p.Endpoint(scheme))
	}
	opts := []etcdgw.Option{
		etcdgw.WithEndpoints(urls...),
		etcdgw.WithAPIPrefix("/v3"), // no version call: the watch is the first connection
		etcdgw.WithStreamKeepalive(300*time.Millisecond, time.Second),
	}
	wopts := []etcdgw.Option{etcdgw.WithEndpoints(cl.Endpoints()...)}
	if tls {
		opts = append(opts, etcdgw.WithCAFile(cl.Certs().CAFile))
		wopts = append(wopts, etcdgw.WithCAFile(cl.Certs().CAFile))
	}
	c, err := etcdgw.New(opts...)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	w, err := etcdgw.New(wopts...) // writes straight to the members
	require.NoError(t, err)
	t.Cleanup(func() { w.Close() })
	ctx := testCtx(t)
	start, err := w.Get(ctx, "x")
	require.NoError(t, err)
	from := start.Header.Revision + 1

	ch := c.WatchDir(ctx, "f/", etcdgw.WithRev(from))
	require.True(t, next(t, ch).Created)
	// The member the watch is on is the one whose proxy has a connection.
	on := -1
	require.Eventually(t, func() bool {
		on = -1
		for i, p := range proxies {
			if p.Conns() > 0 {
				if on >= 0 {
					return false
				}
				on = i
			}
		}
		return on >= 0
	}, 10*time.Second, 5*time.Millisecond)
	put := func(i int) int64 {
		r, err := w.Set(ctx, fmt.Sprintf("f/%03d", i), i)
		require.NoError(t, err)
		return r.Header.Revision
	}
	before := put(0)
	got := collect(t, ch, before)
	require.Equal(t, before, got[len(got)-1].rev, "the stream runs")

	proxies[on].Pause()
	frozen := time.Now()
	var last int64
	for i := 1; i <= 50; i++ {
		last = put(i)
	}
	got = append(got, collect(t, ch, last)...)
	moved := time.Since(frozen)
	t.Logf("%d of %d events after the freeze of member %d, in %v", len(got)-1, 50, on, moved)
	// Quiet for 300ms, a probe that gets no answer in 1s, a reconnect: two
	// seconds or so, ten on a loaded machine.
	assert.Less(t, moved, 10*time.Second, "noticed within the keepalive's bound")
	want := historyOf(t, w, "f/", from, last)
	assert.Equal(t, want, got, "every event once, in order")
	if !tls {
		// Over HTTP/2 the connection's ping may notice first: then the
		// stream is cut, and resumes elsewhere as any cut does.
		assert.False(t, etcdgw.EndpointHealthy(c, urls[on]), "a member that does not answer a probe has failed")
	}
	proxies[on].Resume()
}

// A member with nothing to say keeps its watch: the probes that check a
// quiet stream get answers, and the stream stays as it is.
func TestWatchOnAQuietHealthyMemberStays(t *testing.T) {
	p := proxied(t)
	url := p.Endpoint("http")
	prefix := testPrefix(t)
	c := newClient(t, etcdgw.WithEndpoints(url), etcdgw.WithKeyPrefix(prefix), etcdgw.WithAPIPrefix("/v3"),
		etcdgw.WithStreamKeepalive(100*time.Millisecond, 2*time.Second))
	w := newClient(t, etcdgw.WithKeyPrefix(prefix))
	ctx := testCtx(t)
	ch := c.Watch(ctx, "k")
	require.True(t, next(t, ch).Created)
	sent := p.BytesToServer()
	// Quiet for ten keepalive intervals.
	select {
	case r := <-ch:
		t.Fatalf("unexpected response %+v", r)
	case <-time.After(time.Second):
	}
	assert.Greater(t, p.BytesToServer(), sent, "the quiet stream's member was probed")
	assert.LessOrEqual(t, p.Accepted(), int64(2), "the watch and its probes' connection: the stream was kept")
	assert.True(t, etcdgw.EndpointHealthy(c, url))
	r, err := w.Set(ctx, "k", 1)
	require.NoError(t, err)
	ev := nextEvents(t, ch)
	require.Len(t, ev, 1)
	assert.Equal(t, r.Header.Revision, ev[0].Kv.ModRevision)
}

// Quiet watches to one member share their keepalive probes: ten idle watches
// cost about one /health a half interval, not ten an interval.
func TestQuietWatchesShareProbes(t *testing.T) {
	rec := recordingProxy(t)
	prefix := testPrefix(t)
	c := newClient(t, etcdgw.WithEndpoints(rec.Endpoint()), etcdgw.WithKeyPrefix(prefix), etcdgw.WithAPIPrefix("/v3"),
		etcdgw.WithStreamKeepalive(200*time.Millisecond, 2*time.Second))
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	const watches = 10
	var chans []etcdgw.WatchChan
	for i := range watches {
		ch := c.Watch(ctx, fmt.Sprint("k", i))
		require.True(t, next(t, ch).Created)
		chans = append(chans, ch)
	}
	before := rec.Count("/health")
	time.Sleep(2 * time.Second) // ten intervals of quiet: what is measured is the probes' count
	probes := rec.Count("/health") - before
	assert.Positive(t, probes, "the quiet streams' member was probed")
	// Unshared, each watch would probe every interval: 100 probes.
	assert.Less(t, probes, 40, "probes of ten quiet watches over ten intervals")
	cancel()
	for _, ch := range chans {
		for range ch {
		}
	}
}
