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

// caClient is a client of a TLS server that trusts its CA, with no key prefix.
func caClient(t *testing.T, s *etcdtest.Server, opts ...etcdgw.Option) *etcdgw.Client {
	t.Helper()
	c, err := etcdgw.New(append([]etcdgw.Option{etcdgw.WithEndpoints(s.Endpoint()), etcdgw.WithCAFile(s.Certs().CAFile)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

func TestWatchesShareOneH2Stream(t *testing.T) {
	s := etcdtest.NewServer(t, etcdtest.Config{TLS: true})
	c := caClient(t, s)
	ctx := testCtx(t)
	const n = 20
	chans := make([]etcdgw.WatchChan, n)
	cancels := make([]context.CancelFunc, n)
	for i := range chans {
		wctx, cancel := context.WithCancel(ctx)
		cancels[i] = cancel
		chans[i] = c.Watch(wctx, fmt.Sprintf("k%d", i))
		require.True(t, next(t, chans[i]).Created)
	}
	streams, watches := etcdgw.WatchStreams(c)
	assert.Equal(t, 1, streams, "one duplex stream for all watches")
	assert.Equal(t, n, watches)
	assert.Equal(t, 1, etcdgw.OpenConns(c), "one TCP connection, HTTP/2")

	for i := range chans {
		_, err := c.Set(ctx, fmt.Sprintf("k%d", i), i)
		require.NoError(t, err)
	}
	for i, ch := range chans {
		ev := nextEvents(t, ch)
		require.Len(t, ev, 1)
		assert.Equal(t, fmt.Sprintf("k%d", i), string(ev[0].Kv.Key))
	}

	// Cancelling one watch sends cancel_request; the others go on.
	cancels[3]()
	closed(t, chans[3], time.Second)
	require.Eventually(t, func() bool { _, w := etcdgw.WatchStreams(c); return w == n-1 }, 5*time.Second, 5*time.Millisecond)
	streams, _ = etcdgw.WatchStreams(c)
	assert.Equal(t, 1, streams, "the stream stays up")
	for i := range chans {
		_, err := c.Set(ctx, fmt.Sprintf("k%d", i), i+100)
		require.NoError(t, err)
	}
	for i, ch := range chans {
		if i == 3 {
			continue
		}
		ev := nextEvents(t, ch)
		assert.Equal(t, fmt.Sprint(i+100), string(ev[0].Kv.Value))
	}
	for _, cancel := range cancels {
		cancel()
	}
	require.Eventually(t, func() bool { st, _ := etcdgw.WatchStreams(c); return st == 0 }, 5*time.Second, 5*time.Millisecond, "the last watch gone, the stream closes")
}

func TestSlowWatchDoesNotStallOthersOnH2(t *testing.T) {
	s := etcdtest.NewServer(t, etcdtest.Config{TLS: true})
	c := caClient(t, s)
	ctx := testCtx(t)
	slow := c.WatchDir(ctx, "slow/")
	fast := c.WatchDir(ctx, "fast/")
	require.True(t, next(t, slow).Created)
	require.True(t, next(t, fast).Created)

	// Far more messages than the slow watch buffers, while nobody reads it.
	const n = 300
	var last int64
	for i := 0; i < n; i++ {
		_, err := c.Set(ctx, fmt.Sprintf("slow/%03d", i), i)
		require.NoError(t, err)
		r, err := c.Set(ctx, fmt.Sprintf("fast/%03d", i), i)
		require.NoError(t, err)
		last = r.Header.Revision
		// The fast watch keeps up while the slow one is not read.
		ev := nextEvents(t, fast)
		require.Equal(t, fmt.Sprintf("fast/%03d", i), string(ev[0].Kv.Key))
	}
	_ = last
	assert.Positive(t, etcdgw.Evictions(c), "the slow watch was dropped from the stream")
	got := 0
	prev := int64(0)
	for got < n {
		for _, ev := range nextEvents(t, slow) {
			require.Greater(t, ev.Kv.ModRevision, prev)
			prev = ev.Kv.ModRevision
			require.Equal(t, fmt.Sprintf("slow/%03d", got), string(ev.Kv.Key), "every event once, in order")
			got++
		}
	}
}

func TestH2WatchSurvivesRestart(t *testing.T) {
	s := etcdtest.NewServer(t, etcdtest.Config{TLS: true})
	c := caClient(t, s)
	w := caClient(t, s)
	ctx := testCtx(t)
	start, err := w.Get(ctx, "x")
	require.NoError(t, err)
	var chans []etcdgw.WatchChan
	for i := 0; i < 5; i++ {
		ch := c.WatchDir(ctx, fmt.Sprintf("d%d/", i), etcdgw.WithRev(start.Header.Revision+1))
		require.True(t, next(t, ch).Created)
		chans = append(chans, ch)
	}
	restartUnderWatches(t, s, w, chans, func(i int) string { return fmt.Sprintf("d%d/", i) })
}

// restartUnderWatches puts dir(i)+"before" for each watch chans[i] of the
// directory dir(i), restarts s, puts dir(i)+"after" once s is back, and
// checks that each watch sees both puts, once each, in order.
func restartUnderWatches(t *testing.T, s *etcdtest.Server, w *etcdgw.Client, chans []etcdgw.WatchChan, dir func(i int) string) {
	t.Helper()
	ctx := testCtx(t)
	for i := range chans {
		_, err := w.Set(ctx, dir(i)+"before", i)
		require.NoError(t, err)
	}
	require.NoError(t, s.Restart())
	revs := make([]int64, len(chans))
	for i := range chans {
		require.Eventually(t, func() bool {
			r, err := w.Set(ctx, dir(i)+"after", i)
			if err == nil {
				revs[i] = r.Header.Revision
			}
			return err == nil
		}, 15*time.Second, 50*time.Millisecond)
	}
	for i, ch := range chans {
		got := collect(t, ch, revs[i])
		require.Len(t, got, 2, "watch %d", i)
		assert.Equal(t, dir(i)+"before", got[0].key)
		assert.Equal(t, dir(i)+"after", got[1].key)
	}
}
