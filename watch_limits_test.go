package etcdgw_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcdgw/etcdgw"
	"github.com/etcdgw/etcdgw/internal/etcdtest"
)

// A watch message over WithMaxResponseBytes on a request of its own ends the watch with
// ErrResponseTooLarge: the client's own limit, final, and nobody's failure.
func TestWatchMessageOverLimitEndsTheWatch(t *testing.T) {
	p := proxied(t)
	url := p.Endpoint("http")
	prefix := testPrefix(t)
	c := newClient(t, etcdgw.WithEndpoints(url), etcdgw.WithKeyPrefix(prefix), etcdgw.WithMaxResponseBytes(8<<10),
		etcdgw.WithWatchMultiplexing(false))
	w := newClient(t, etcdgw.WithKeyPrefix(prefix))
	ctx := testCtx(t)
	ch := c.Watch(ctx, "big")
	require.True(t, next(t, ch).Created)
	_, err := w.Set(ctx, "big", strings.Repeat("v", 16<<10))
	require.NoError(t, err)
	r := next(t, ch)
	require.ErrorIs(t, r.Err(), etcdgw.ErrResponseTooLarge)
	assert.NotErrorIs(t, r.Err(), etcdgw.ErrMalformedResponse)
	assert.Contains(t, r.Err().Error(), "WithFragment")
	assert.True(t, r.Canceled)
	closed(t, ch, 5*time.Second)
	assert.Equal(t, int64(1), p.Accepted(), "never resumed")
	assert.True(t, etcdgw.EndpointHealthy(c, url), "not the member's failure")
}

// On the shared HTTP/2 stream the message over the limit ends its own watch
// only.
func TestH2WatchMessageOverLimitEndsOnlyItsWatch(t *testing.T) {
	s := etcdtest.NewServer(t, etcdtest.Config{TLS: true})
	c := caClient(t, s, etcdgw.WithMaxResponseBytes(8<<10))
	w := caClient(t, s)
	ctx := testCtx(t)
	big := c.Watch(ctx, "big")
	small := c.WatchDir(ctx, "small/")
	require.True(t, next(t, big).Created)
	require.True(t, next(t, small).Created)
	streams, watches := etcdgw.WatchStreams(c)
	require.Equal(t, 1, streams)
	require.Equal(t, 2, watches)

	_, err := w.Set(ctx, "small/1", 1)
	require.NoError(t, err)
	_, err = w.Set(ctx, "big", strings.Repeat("v", 16<<10))
	require.NoError(t, err)
	r2, err := w.Set(ctx, "small/2", 2)
	require.NoError(t, err)

	r := next(t, big)
	require.ErrorIs(t, r.Err(), etcdgw.ErrResponseTooLarge)
	assert.Contains(t, r.Err().Error(), "WithFragment")
	closed(t, big, 5*time.Second)

	got := collect(t, small, r2.Header.Revision)
	require.Len(t, got, 2, "the other watch goes on")
	assert.Equal(t, "small/1", got[0].key)
	assert.Equal(t, "small/2", got[1].key)
	require.Eventually(t, func() bool {
		streams, watches := etcdgw.WatchStreams(c)
		return streams == 1 && watches == 1
	}, 5*time.Second, 5*time.Millisecond, "the same stream, without the ended watch")
}

// Fragments each under the limit that are over it together end the watch:
// reassembly is bounded by WithMaxResponseBytes too.
func TestWatchFragmentsOverLimitEndTheWatch(t *testing.T) {
	for _, tls := range []bool{false, true} {
		t.Run(map[bool]string{false: "http", true: "https"}[tls], func(t *testing.T) {
			// etcd splits a watch response over its request size limit into
			// fragments of at most that size plus 512 KiB (its allowance for
			// gRPC's overhead).
			s := etcdtest.NewServer(t, etcdtest.Config{TLS: tls, MaxRequestBytes: 64 << 10})
			opts := []etcdgw.Option{etcdgw.WithEndpoints(s.Endpoint())}
			if tls {
				opts = append(opts, etcdgw.WithCAFile(s.Certs().CAFile))
			}
			w, err := etcdgw.New(opts...)
			require.NoError(t, err)
			t.Cleanup(func() { w.Close() })
			ctx := testCtx(t)
			const n = 30
			for i := 0; i < n; i++ {
				_, err := w.Set(ctx, fmt.Sprintf("f/%02d", i), strings.Repeat("v", 50<<10))
				require.NoError(t, err)
			}
			// With a limit that each fragment fits and their sum does not.
			limit := 1 << 20
			c, err := etcdgw.New(append(opts, etcdgw.WithMaxResponseBytes(limit))...)
			require.NoError(t, err)
			t.Cleanup(func() { c.Close() })
			// And a client that takes them all, to show they were fragments.
			all, err := etcdgw.New(opts...)
			require.NoError(t, err)
			t.Cleanup(func() { all.Close() })

			ch := c.WatchDir(ctx, "f/", etcdgw.WithPrevKV(), etcdgw.WithFragment())
			chAll := all.WatchDir(ctx, "f/", etcdgw.WithPrevKV(), etcdgw.WithFragment())
			require.True(t, next(t, ch).Created)
			require.True(t, next(t, chAll).Created)
			// One revision deleting every key, each with its previous value:
			// about 2 MB of JSON in fragments of about 750 KB.
			_, err = w.Delete(ctx, "f/", etcdgw.WithPrefix())
			require.NoError(t, err)

			ev := nextEvents(t, chAll)
			assert.Len(t, ev, n, "the fragments joined")
			r := next(t, ch)
			require.ErrorIs(t, r.Err(), etcdgw.ErrResponseTooLarge)
			assert.Contains(t, r.Err().Error(), "fragments", "each fragment fit; together they did not")
			closed(t, ch, 5*time.Second)
		})
	}
}
