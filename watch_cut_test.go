package etcdgw_test

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcdgw/etcdgw"
	"github.com/etcdgw/etcdgw/internal/etcdtest"
)

// A load balancer that cuts streams (idle timeouts, resets) does not make
// its member unhealthy: the watch resumes, and the calls that follow go
// through. Failing to establish a stream still counts against the member.
func TestWatchCutsAreNotTheMembersFailure(t *testing.T) {
	w, prefix := prefixedClient(t)
	ctx := testCtx(t)
	start, err := w.Get(ctx, "x")
	require.NoError(t, err)
	from := start.Header.Revision + 1
	p := proxied(t)
	url := p.Endpoint("http")
	// The default health check: one failure marks the endpoint for 10s.
	c := newClient(t, etcdgw.WithEndpoints(url), etcdgw.WithKeyPrefix(prefix))
	ch := c.WatchDir(ctx, "c/", etcdgw.WithRev(from))
	require.True(t, next(t, ch).Created)

	// A writer puts keys until told to stop; the watch's stream is cut each
	// time it has delivered 20 events written after the previous cut, so
	// that each cut breaks a running stream.
	var written atomic.Int64
	stop := make(chan struct{})
	werr := make(chan error, 1)
	go func() {
		defer close(werr)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			r, err := w.Set(ctx, fmt.Sprintf("c/%05d", i), i)
			if err != nil {
				werr <- err
				return
			}
			written.Store(r.Header.Revision)
		}
	}()
	var got []event
	cuts, cutRev, since := 0, int64(0), 0
	for cuts < 10 {
		for _, ev := range nextEvents(t, ch) {
			got = append(got, event{ev.Type, string(ev.Kv.Key), string(ev.Kv.Value), ev.Kv.ModRevision})
			if ev.Kv.ModRevision > cutRev {
				since++
			}
		}
		require.True(t, etcdgw.EndpointHealthy(c, url), "healthy after %d cuts", cuts)
		if since >= 20 {
			cutRev = written.Load()
			p.CutAll()
			cuts, since = cuts+1, 0
		}
	}
	close(stop)
	require.NoError(t, <-werr)
	last := written.Load()
	if len(got) == 0 || got[len(got)-1].rev < last {
		got = append(got, collect(t, ch, last)...)
	}
	want := history(t, shared.Endpoint(), prefix+"c/", from, last)
	for i := range want {
		want[i].key = strings.TrimPrefix(want[i].key, prefix)
	}
	assert.Equal(t, want, got, "every event once, in order, across the cuts")
	assert.GreaterOrEqual(t, p.Accepted(), int64(11), "the watch reconnected after each cut")
	assert.True(t, etcdgw.EndpointHealthy(c, url))
	for i := 0; i < 20; i++ {
		_, err := c.Get(ctx, "c/00000")
		require.NoError(t, err, "Get %d after the cuts", i)
	}
}

// A stream that cannot be established is its member's failure.
func TestWatchThatCannotConnectFailsTheMember(t *testing.T) {
	p := proxied(t)
	url := p.Endpoint("http")
	c := newClient(t, etcdgw.WithEndpoints(url), etcdgw.WithAPIPrefix("/v3"))
	require.NoError(t, p.SetRefuse(true))
	ch := c.Watch(testCtx(t), "k")
	require.Eventually(t, func() bool { return !etcdgw.EndpointHealthy(c, url) }, 10*time.Second, 5*time.Millisecond, "a refused watch marks its endpoint")
	require.NoError(t, p.SetRefuse(false))
	// The member comes back through a probe, and the watch with it.
	assert.True(t, next(t, ch).Created)
}

// An HTTP/2 shared stream cut inside a message resumes like any cut, over
// TLS, where the proxy's byte count falls inside a large line.
func TestH2WatchCutInsideALineResumes(t *testing.T) {
	s := etcdtest.NewServer(t, etcdtest.Config{TLS: true})
	w := caClient(t, s)
	ctx := testCtx(t)
	big := strings.Repeat("b", 200<<10) // a line of about 270 KB: many TLS records
	r, err := w.Set(ctx, "big", big)
	require.NoError(t, err)
	first := r.Header.Revision

	p, err := etcdtest.NewProxy(s.ClientAddr())
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	// The first connection carries the version call, a probe, the shared
	// stream and its created answer, a few KB, then the large line: it is cut
	// inside it.
	p.CutAfter(64 << 10)
	c, err := etcdgw.New(etcdgw.WithEndpoints(p.Endpoint("https")), etcdgw.WithCAFile(s.Certs().CAFile))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })

	ch := c.Watch(ctx, "big", etcdgw.WithRev(first))
	require.True(t, next(t, ch).Created)
	streams, _ := etcdgw.WatchStreams(c)
	require.Equal(t, 1, streams, "on the shared HTTP/2 stream")
	resp := next(t, ch)
	require.NoError(t, resp.Err(), "a cut inside a line is a cut, not a malformed answer")
	require.Len(t, resp.Events, 1)
	assert.Equal(t, first, resp.Events[0].Kv.ModRevision)
	assert.Len(t, resp.Events[0].Kv.Value, len(big)+2, "the JSON string, whole")
	assert.Equal(t, int64(1), p.Tripped(), "the connection was cut inside the line")

	r, err = w.Set(ctx, "big", "small")
	require.NoError(t, err)
	ev := nextEvents(t, ch)
	require.Len(t, ev, 1)
	assert.Equal(t, r.Header.Revision, ev[0].Kv.ModRevision, "the next event, nothing repeated")
	assert.True(t, etcdgw.EndpointHealthy(c, p.Endpoint("https")))
}
