package etcdgw_test

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/etcdgw/etcdgw"
)

func TestNamespace(t *testing.T) {
	var versions atomic.Int64
	c, p := prefixedClient(t, etcdgw.WithTransport(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(req *http.Request) (*http.Response, error) {
			if req.URL.Path == "/version" {
				versions.Add(1)
			}
			return rt.RoundTrip(req)
		})
	}))
	ctx := testCtx(t)
	_, err := c.Set(ctx, "outside", "x")
	require.NoError(t, err)

	ns := c.Namespace("app/")
	_, err = ns.Set(ctx, "k", "v")
	require.NoError(t, err)
	got, err := c.Get(ctx, "app/k")
	require.NoError(t, err)
	require.Len(t, got.Kvs, 1, "the view's key is under the client's prefix, then the view's")
	dir, err := ns.ReadDir(ctx, "")
	require.NoError(t, err)
	require.Len(t, dir.Kvs, 1)
	require.Equal(t, "k", string(dir.Kvs[0].Key))
	raw := newClient(t)
	full, err := raw.Get(ctx, p+"app/k")
	require.NoError(t, err)
	require.Len(t, full.Kvs, 1)
	require.Equal(t, int64(1), versions.Load(), "the API prefix is shared")

	// A view of a view adds its prefix too.
	sub := ns.Namespace("sub/")
	_, err = sub.Set(ctx, "k", "w")
	require.NoError(t, err)
	got, err = c.Get(ctx, "app/sub/k")
	require.NoError(t, err)
	require.Len(t, got.Kvs, 1)

	// Closing the view ends its watches, not the client's.
	nctx, ncancel := context.WithCancel(ctx)
	defer ncancel()
	nsWatch := ns.Watch(nctx, "k")
	rootWatch := c.Watch(nctx, "app/k")
	waitCreated(t, nsWatch)
	waitCreated(t, rootWatch)
	require.NoError(t, ns.Close())
	for range nsWatch {
	}
	_, err = ns.Get(ctx, "k")
	require.ErrorIs(t, err, etcdgw.ErrClosed)
	_, err = sub.Get(ctx, "k")
	require.ErrorIs(t, err, etcdgw.ErrClosed, "a view's views close with it")
	_, err = c.Set(ctx, "app/k", "after")
	require.NoError(t, err)
	requireEvent(t, rootWatch, "app/k")

	// Closing the client ends its views.
	other := c.Namespace("other/")
	otherWatch := other.Watch(nctx, "k")
	waitCreated(t, otherWatch)
	require.NoError(t, c.Close())
	for range otherWatch {
	}
	_, err = other.Get(ctx, "k")
	require.ErrorIs(t, err, etcdgw.ErrClosed)
	_, err = c.Namespace("late/").Get(ctx, "k")
	require.ErrorIs(t, err, etcdgw.ErrClosed)
}

func waitCreated(t *testing.T, wch etcdgw.WatchChan) {
	t.Helper()
	select {
	case r, ok := <-wch:
		require.True(t, ok)
		require.NoError(t, r.Err())
		require.True(t, r.Created)
	case <-time.After(20 * time.Second):
		t.Fatal("watch not created in time")
	}
}

func requireEvent(t *testing.T, wch etcdgw.WatchChan, key string) {
	t.Helper()
	for {
		select {
		case r, ok := <-wch:
			require.True(t, ok, "watch closed")
			require.NoError(t, r.Err())
			if len(r.Events) > 0 {
				require.Equal(t, key, string(r.Events[0].Kv.Key))
				return
			}
		case <-time.After(20 * time.Second):
			t.Fatal("no event in time")
		}
	}
}

func TestDo(t *testing.T) {
	c, _ := prefixedClient(t)
	ctx := testCtx(t)
	put, err := c.Do(ctx, etcdgw.OpPut("k", "v", etcdgw.WithPrevKV()))
	require.NoError(t, err)
	require.NotNil(t, put.Put)
	require.Nil(t, put.Get)
	get, err := c.Do(ctx, etcdgw.OpGet("k"))
	require.NoError(t, err)
	require.Len(t, get.Get.Kvs, 1)
	var v string
	require.NoError(t, c.Decode(get.Get.Kvs[0].Value, &v))
	require.Equal(t, "v", v)
	txn, err := c.Do(ctx, etcdgw.OpTxn([]etcdgw.Cmp{etcdgw.Compare(etcdgw.Version("k"), "=", 1)},
		[]etcdgw.Op{etcdgw.OpPut("k", "w")}, []etcdgw.Op{etcdgw.OpGet("k")}))
	require.NoError(t, err)
	require.True(t, txn.Txn.Succeeded)
	del, err := c.Do(ctx, etcdgw.OpDelete("k"))
	require.NoError(t, err)
	require.Equal(t, int64(1), del.Delete.Deleted)

	_, err = c.Do(ctx, etcdgw.Op{})
	require.ErrorIs(t, err, etcdgw.ErrInvalidArgument)
	_, err = c.Do(ctx, etcdgw.OpGet("k", etcdgw.WithLimit(-1)))
	require.ErrorIs(t, err, etcdgw.ErrInvalidOption)
	_, err = c.Do(ctx, etcdgw.OpGet(""))
	require.True(t, errors.Is(err, etcdgw.ErrKeyNotProvided), "%v", err)
}

func TestPrefixEnd(t *testing.T) {
	for _, tt := range []struct{ key, want string }{
		{"a", "b"},
		{"dir/", "dir0"},
		{"a\xff", "b"},
		{"a\xff\xff", "b"},
		{"\xff\xff", "\x00"},
		{"", "\x00"},
	} {
		require.Equal(t, tt.want, etcdgw.PrefixEnd(tt.key), "PrefixEnd(%q)", tt.key)
	}

	c, _ := prefixedClient(t)
	ctx := testCtx(t)
	for _, k := range []string{"dir/a", "dir/b", "dir0", "dir-"} {
		_, err := c.Set(ctx, k, k)
		require.NoError(t, err)
	}
	r, err := c.Get(ctx, "dir/", etcdgw.WithRange(etcdgw.PrefixEnd("dir/")))
	require.NoError(t, err)
	require.Len(t, r.Kvs, 2)
}
