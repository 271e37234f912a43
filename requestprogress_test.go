package etcdgw_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcdgw/etcdgw"
	"github.com/etcdgw/etcdgw/internal/etcdtest"
)

func TestRequestProgressOnSharedStream(t *testing.T) {
	t.Run("HTTP/2", func(t *testing.T) {
		s := etcdtest.NewServer(t, etcdtest.Config{TLS: true})
		testRequestProgress(t, caClient(t, s))
	})
	t.Run("WebSocket", func(t *testing.T) {
		needWebSocket(t)
		testRequestProgress(t, newClient(t, etcdgw.WithKeyPrefix(testPrefix(t))))
	})
}

func testRequestProgress(t *testing.T, c *etcdgw.Client) {
	ctx := testCtx(t)

	// No watch yet: nothing to ask, and no error.
	require.NoError(t, c.RequestProgress(ctx))

	a := c.WatchDir(ctx, "a/")
	b := c.WatchDir(ctx, "b/")
	require.True(t, next(t, a).Created)
	require.True(t, next(t, b).Created)
	// A write elsewhere moves the revision on; neither watch sees it as an event.
	put, err := c.Set(ctx, "other", 1)
	require.NoError(t, err)

	require.NoError(t, c.RequestProgress(ctx))
	for _, ch := range []etcdgw.WatchChan{a, b} {
		select {
		case r := <-ch:
			require.True(t, r.IsProgressNotify(), "%+v", r)
			assert.GreaterOrEqual(t, r.Header.Revision, put.Header.Revision)
		case <-time.After(10 * time.Second):
			t.Fatal("no progress notification")
		}
	}

	// The watches go on after it.
	_, err = c.Set(ctx, "a/x", 1)
	require.NoError(t, err)
	ev := nextEvents(t, a)
	require.Len(t, ev, 1)
	assert.Equal(t, "a/x", string(ev[0].Kv.Key))
}

func TestRequestProgressUnsupportedWithoutSharing(t *testing.T) {
	c := newClient(t, etcdgw.WithWatchMultiplexing(false))
	ctx := testCtx(t)
	w := c.WatchDir(ctx, testPrefix(t))
	require.True(t, next(t, w).Created)
	err := c.RequestProgress(ctx)
	require.Error(t, err)
	assert.True(t, errors.Is(err, errors.ErrUnsupported), "%v", err)

	s := etcdtest.NewServer(t, etcdtest.Config{TLS: true})
	off := caClient(t, s, etcdgw.WithWatchMultiplexing(false))
	assert.ErrorIs(t, off.RequestProgress(ctx), errors.ErrUnsupported)
}
