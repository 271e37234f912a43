package etcdgw_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/etcdgw/etcdgw"
)

// next reads one response, failing the test after a while.
func next(t *testing.T, ch etcdgw.WatchChan) etcdgw.WatchResponse {
	t.Helper()
	select {
	case r, ok := <-ch:
		require.True(t, ok, "watch channel closed")
		return r
	case <-time.After(15 * time.Second):
		t.Fatal("no watch response within 15s")
	}
	return etcdgw.WatchResponse{}
}

// nextEvents skips progress notifications and returns the next events.
func nextEvents(t *testing.T, ch etcdgw.WatchChan) []*mvccpb.Event {
	t.Helper()
	for {
		r := next(t, ch)
		require.NoError(t, r.Err())
		if len(r.Events) > 0 {
			return r.Events
		}
	}
}

// closed waits for the channel to close, draining it.
func closed(t *testing.T, ch etcdgw.WatchChan, within time.Duration) {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatalf("watch channel still open after %v", within)
		}
	}
}

func TestWatchCreatedEventsAndPrevKV(t *testing.T) {
	c, _ := prefixedClient(t, etcdgw.WithSerializer(etcdgw.Raw))
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	ch := c.Watch(ctx, "w", etcdgw.WithPrevKV())
	created := next(t, ch)
	require.NoError(t, created.Err())
	assert.True(t, created.Created)
	assert.Positive(t, created.Header.Revision)

	_, err := c.Set(ctx, "w", "1")
	require.NoError(t, err)
	_, err = c.Set(ctx, "other", "x")
	require.NoError(t, err)
	_, err = c.Set(ctx, "w", "2")
	require.NoError(t, err)
	_, err = c.Delete(ctx, "w")
	require.NoError(t, err)

	ev := nextEvents(t, ch)
	require.Len(t, ev, 1)
	assert.Equal(t, mvccpb.PUT, ev[0].Type)
	assert.Equal(t, "w", string(ev[0].Kv.Key), "key prefix stripped")
	assert.Equal(t, "1", string(ev[0].Kv.Value))
	assert.Nil(t, ev[0].PrevKv)
	ev = nextEvents(t, ch)
	assert.Equal(t, "2", string(ev[0].Kv.Value))
	require.NotNil(t, ev[0].PrevKv)
	assert.Equal(t, "1", string(ev[0].PrevKv.Value))
	assert.Equal(t, "w", string(ev[0].PrevKv.Key))
	ev = nextEvents(t, ch)
	assert.Equal(t, mvccpb.DELETE, ev[0].Type)
	assert.Equal(t, "w", string(ev[0].Kv.Key))
	assert.Equal(t, "2", string(ev[0].PrevKv.Value))
	cancel()
	closed(t, ch, time.Second)
}

func TestWatchFilters(t *testing.T) {
	c, _ := prefixedClient(t)
	ctx := testCtx(t)
	noPut := c.Watch(ctx, "k", etcdgw.WithFilterPut())
	noDel := c.Watch(ctx, "k", etcdgw.WithFilterDelete())
	require.True(t, next(t, noPut).Created)
	require.True(t, next(t, noDel).Created)
	_, err := c.Set(ctx, "k", 1)
	require.NoError(t, err)
	_, err = c.Delete(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, mvccpb.DELETE, nextEvents(t, noPut)[0].Type)
	assert.Equal(t, mvccpb.PUT, nextEvents(t, noDel)[0].Type)
}

func TestWatchReplaysHistoryInOrder(t *testing.T) {
	c, _ := prefixedClient(t)
	ctx := testCtx(t)
	var first int64
	for i := 0; i < 50; i++ {
		r, err := c.Set(ctx, fmt.Sprintf("h/%02d", i), i)
		require.NoError(t, err)
		if i == 0 {
			first = r.Header.Revision
		}
	}
	ch := c.WatchDir(ctx, "h/", etcdgw.WithRev(first))
	require.True(t, next(t, ch).Created)
	var got []string
	rev := int64(0)
	for len(got) < 50 {
		for _, ev := range nextEvents(t, ch) {
			require.Greater(t, ev.Kv.ModRevision, rev)
			rev = ev.Kv.ModRevision
			got = append(got, string(ev.Kv.Key))
		}
	}
	for i, k := range got {
		assert.Equal(t, fmt.Sprintf("h/%02d", i), k)
	}
}

func TestWatchDirBoundaries(t *testing.T) {
	c, _ := prefixedClient(t)
	ctx := testCtx(t)
	dir := c.WatchDir(ctx, "/wdir/")
	all := c.WatchDir(ctx, "")
	require.True(t, next(t, dir).Created)
	require.True(t, next(t, all).Created)
	for _, k := range []string{"/wdir-", "/wdir", "/wdir/", "/wdir/a", "/wdir0"} {
		_, err := c.Set(ctx, k, k)
		require.NoError(t, err)
	}
	var got []string
	for len(got) < 2 {
		for _, ev := range nextEvents(t, dir) {
			got = append(got, string(ev.Kv.Key))
		}
	}
	assert.Equal(t, []string{"/wdir/", "/wdir/a"}, got)
	var everything []string
	for len(everything) < 5 {
		for _, ev := range nextEvents(t, all) {
			everything = append(everything, string(ev.Kv.Key))
		}
	}
	assert.Equal(t, []string{"/wdir-", "/wdir", "/wdir/", "/wdir/a", "/wdir0"}, everything)

	// Nothing more arrived on the directory watch.
	_, err := c.Set(ctx, "/wdir/z", 1)
	require.NoError(t, err)
	assert.Equal(t, "/wdir/z", string(nextEvents(t, dir)[0].Kv.Key))
}

func TestWatchCompactedStart(t *testing.T) {
	c, _ := prefixedClient(t)
	ctx := testCtx(t)
	first, err := c.Set(ctx, "k", 1)
	require.NoError(t, err)
	second, err := c.Set(ctx, "k", 2)
	require.NoError(t, err)
	require.NoError(t, c.Compact(ctx, second.Header.Revision))

	ch := c.Watch(ctx, "k", etcdgw.WithRev(first.Header.Revision))
	r := next(t, ch)
	require.True(t, r.Created)
	r = next(t, ch)
	assert.True(t, r.Canceled)
	assert.Equal(t, second.Header.Revision, r.CompactRevision)
	require.ErrorIs(t, r.Err(), etcdgw.ErrCompacted)
	closed(t, ch, time.Second)
}

func TestWatchBadInput(t *testing.T) {
	c, _ := prefixedClient(t)
	ctx := testCtx(t)
	for name, ch := range map[string]etcdgw.WatchChan{
		"empty key":      c.Watch(ctx, ""),
		"lease option":   c.Watch(ctx, "k", etcdgw.WithLease(1)),
		"limit":          c.WatchDir(ctx, "d", etcdgw.WithLimit(3)),
		"prefix on dir":  c.WatchDir(ctx, "d", etcdgw.WithPrefix()),
		"negative watch": c.Watch(ctx, "k", etcdgw.WithWatchID(-2)),
	} {
		r, ok := <-ch
		require.True(t, ok, name)
		assert.True(t, r.Canceled, name)
		assert.Error(t, r.Err(), name)
		_, ok = <-ch
		assert.False(t, ok, "%s: channel closed after the error", name)
	}
}

func TestWatchCancelClosesPromptly(t *testing.T) {
	c, _ := prefixedClient(t)
	ctx, cancel := context.WithCancel(testCtx(t))
	ch := c.Watch(ctx, "k")
	require.True(t, next(t, ch).Created)
	start := time.Now()
	cancel()
	closed(t, ch, time.Second)
	assert.Less(t, time.Since(start), 100*time.Millisecond)

	// Closing the client ends its watches too.
	ch2 := c.Watch(testCtx(t), "k")
	require.True(t, next(t, ch2).Created)
	start = time.Now()
	require.NoError(t, c.Close())
	closed(t, ch2, time.Second)
	assert.Less(t, time.Since(start), 100*time.Millisecond)
	r, ok := <-c.Watch(testCtx(t), "k")
	assert.True(t, ok)
	assert.ErrorIs(t, r.Err(), etcdgw.ErrClosed)
}

func TestWatchWithID(t *testing.T) {
	c, _ := prefixedClient(t)
	ctx := testCtx(t)
	ch := c.Watch(ctx, "k", etcdgw.WithWatchID(42))
	require.True(t, next(t, ch).Created)
	_, err := c.Set(ctx, "k", 1)
	require.NoError(t, err)
	assert.Len(t, nextEvents(t, ch), 1)
}

func TestWatchLargeBatches(t *testing.T) {
	c, _ := prefixedClient(t, etcdgw.WithSerializer(etcdgw.Raw))
	ctx := testCtx(t)
	val := strings.Repeat("v", 1<<20)
	var first int64
	for i := 0; i < 4; i++ {
		r, err := c.Set(ctx, fmt.Sprintf("big/%d", i), fmt.Sprint(i)+val)
		require.NoError(t, err)
		if i == 0 {
			first = r.Header.Revision
		}
	}
	for _, frag := range []bool{false, true} {
		opts := []etcdgw.OpOption{etcdgw.WithRev(first)}
		if frag {
			opts = append(opts, etcdgw.WithFragment())
		}
		ch := c.WatchDir(ctx, "big/", opts...)
		require.True(t, next(t, ch).Created)
		var got []*mvccpb.Event
		for len(got) < 4 {
			got = append(got, nextEvents(t, ch)...)
		}
		require.Len(t, got, 4, "fragment=%v", frag)
		for i, ev := range got {
			assert.Equal(t, fmt.Sprintf("big/%d", i), string(ev.Kv.Key))
			assert.Len(t, ev.Kv.Value, len(val)+1)
			assert.Equal(t, fmt.Sprint(i), string(ev.Kv.Value[:1]))
		}
	}
}

func TestWatchProgressNotify(t *testing.T) {
	s := newServer(t, etcdtestConfig{progress: 200 * time.Millisecond})
	c := newClientOf(t, s.Endpoint())
	ctx := testCtx(t)
	ch := c.Watch(ctx, "quiet", etcdgw.WithProgressNotify())
	require.True(t, next(t, ch).Created)
	r := next(t, ch)
	assert.True(t, r.IsProgressNotify())
	assert.Positive(t, r.Header.Revision)
	require.NoError(t, r.Err())
}
