package etcdgw_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"math"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcdgw/etcdgw"
	"github.com/etcdgw/etcdgw/internal/etcdtest"
)

// rangeAnswer is a /kv/range answer holding keys, with count and more as
// given.
func rangeAnswer(count string, more bool, keys ...string) string {
	var kvs []string
	for _, k := range keys {
		kvs = append(kvs, fmt.Sprintf(`{"key":%q,"value":"dg==","mod_revision":"2"}`, base64.StdEncoding.EncodeToString([]byte(k))))
	}
	return fmt.Sprintf(`{"header":{"revision":"7"},"kvs":[%s],"more":%v,"count":%s}`, strings.Join(kvs, ","), more, count)
}

// TestReadDirAbsurdCount answers ReadDir, as something that is not etcd might,
// with counts no directory has: the client returns what the answer holds,
// without a panic and without reserving room for the count.
func TestReadDirAbsurdCount(t *testing.T) {
	for _, count := range []string{`"9223372036854775807"`, `"268435456"`, `"-5"`, `-1`, `"0"`} {
		t.Run(count, func(t *testing.T) {
			c, _ := fakeGateway(t, answer(200, rangeAnswer(count, false, "d/a", "d/b")))
			ctx := testCtx(t)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			r, err := c.ReadDir(ctx, "d/")
			runtime.ReadMemStats(&after)
			require.NoError(t, err)
			assert.Equal(t, []string{"d/a", "d/b"}, keys(r.Kvs))
			assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(128<<20), "allocated for the count, not for the answer")
		})
	}
}

// TestReadDirPagesThatDoNotAdvance answers ReadDir's pages as something that
// is not etcd might: the same page again, keys out of order, keys out of the
// range. Each is a malformed answer, not a loop or a silently wrong directory.
func TestReadDirPagesThatDoNotAdvance(t *testing.T) {
	tests := map[string][]string{
		"SamePageAgain": {rangeAnswer(`"4"`, true, "d/a", "d/b"), rangeAnswer(`"4"`, true, "d/a", "d/b")},
		"OutOfOrder":    {rangeAnswer(`"3"`, false, "d/b", "d/a")},
		"OutOfRange":    {rangeAnswer(`"2"`, false, "d/a", "e/a")},
		"BackInSecond":  {rangeAnswer(`"4"`, true, "d/a", "d/c"), rangeAnswer(`"4"`, false, "d/b", "d/d")},
	}
	for name, pages := range tests {
		t.Run(name, func(t *testing.T) {
			var served atomic.Int32
			c, _ := fakeGateway(t, func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				n := int(served.Add(1))
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, pages[min(n, len(pages))-1])
			})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := c.ReadDir(ctx, "d/")
			require.ErrorIs(t, err, etcdgw.ErrMalformedResponse)
			assert.NoError(t, ctx.Err(), "it failed at once, not at the deadline")
			assert.LessOrEqual(t, int(served.Load()), len(pages), "no page asked again")
		})
	}
	// The largest count that is no absurd one still reads.
	c, _ := fakeGateway(t, answer(200, rangeAnswer(fmt.Sprint(int64(math.MaxInt32)), false, "d/a")))
	r, err := c.ReadDir(testCtx(t), "d/")
	require.NoError(t, err)
	assert.Equal(t, int64(math.MaxInt32), r.Count)
}

// recorded starts a recording proxy in front of the server, closed at the end
// of the test.
func recorded(t *testing.T, endpoint string) *etcdtest.RecordingProxy {
	t.Helper()
	p, err := etcdtest.NewRecordingProxy(endpoint, nil)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, p.Close()) })
	return p
}

// TestDeleteEverythingRefused sends nothing for a delete of every key that
// does not say so, without a key prefix; with one, the same calls delete the
// client's namespace, and a deliberate wipe still deletes everything.
func TestDeleteEverythingRefused(t *testing.T) {
	s := newServer(t, etcdtestConfig{}) // its whole keyspace is wiped below
	p := recorded(t, s.Endpoint())
	c := newClientOf(t, p.Endpoint())
	ctx := testCtx(t)
	setKeys(t, c, "a", "1", "b/c", "2", "ns/x", "3")
	p.Reset()

	refused := map[string]func() error{
		`RmDir("")`: func() error { _, err := c.RmDir(ctx, ""); return err },
		`RmDir("", WithPrevKV)`: func() error {
			_, err := c.RmDir(ctx, "", etcdgw.WithPrevKV())
			return err
		},
		`Delete("", WithPrefix)`:  func() error { _, err := c.Delete(ctx, "", etcdgw.WithPrefix()); return err },
		`Delete("", WithFromKey)`: func() error { _, err := c.Delete(ctx, "", etcdgw.WithFromKey()); return err },
		`Txn OpDelete("", WithPrefix)`: func() error {
			_, err := c.Txn(ctx).Then(etcdgw.OpGet("a"), etcdgw.OpDelete("", etcdgw.WithPrefix())).Commit()
			return err
		},
		`Txn Else OpDelete("", WithFromKey)`: func() error {
			_, err := c.Txn(ctx).If(etcdgw.Compare(etcdgw.Version("a"), "=", 0)).
				Else(etcdgw.OpDelete("", etcdgw.WithFromKey())).Commit()
			return err
		},
		`Txn nested OpDelete("", WithPrefix)`: func() error {
			_, err := c.Txn(ctx).Then(etcdgw.OpTxn(nil, []etcdgw.Op{etcdgw.OpDelete("", etcdgw.WithPrefix())}, nil)).Commit()
			return err
		},
	}
	for name, call := range refused {
		err := call()
		require.ErrorIs(t, err, etcdgw.ErrInvalidArgument, name)
		assert.Contains(t, err.Error(), `Delete(ctx, "\x00", WithFromKey())`, "%s: the message says how to mean it", name)
	}
	assert.Empty(t, p.Requests(), "nothing was sent")
	all, err := c.ReadDir(ctx, "")
	require.NoError(t, err)
	assert.Equal(t, []string{"a", "b/c", "ns/x"}, keys(all.Kvs))

	// Under a key prefix, the same calls mean the client's namespace.
	ns, err := etcdgw.New(etcdgw.WithEndpoints(p.Endpoint()), etcdgw.WithKeyPrefix("ns/"))
	require.NoError(t, err)
	defer ns.Close()
	d, err := ns.RmDir(ctx, "")
	require.NoError(t, err)
	assert.Equal(t, int64(1), d.Deleted)
	_, err = ns.Set(ctx, "y", 4)
	require.NoError(t, err)
	_, err = ns.Txn(ctx).Then(etcdgw.OpDelete("", etcdgw.WithFromKey())).Commit()
	require.NoError(t, err)
	all, err = c.ReadDir(ctx, "")
	require.NoError(t, err)
	assert.Equal(t, []string{"a", "b/c"}, keys(all.Kvs), "only the namespace went")

	// A deliberate wipe says so.
	d, err = c.Delete(ctx, "\x00", etcdgw.WithFromKey())
	require.NoError(t, err)
	assert.Equal(t, int64(2), d.Deleted)
	all, err = c.ReadDir(ctx, "")
	require.NoError(t, err)
	assert.Empty(t, all.Kvs)
}

// TestTimeToLiveKeysOutsidePrefix attaches keys inside and outside a
// client's key prefix to one lease: TimeToLive returns the ones inside,
// without the prefix, and leaves the others out.
func TestTimeToLiveKeysOutsidePrefix(t *testing.T) {
	c, prefix := prefixedClient(t)
	raw := newClient(t)
	ctx := testCtx(t)
	g, err := c.Grant(ctx, 60)
	require.NoError(t, err)
	t.Cleanup(func() { c.Revoke(context.Background(), g.ID) })
	_, err = c.Set(ctx, "mine", 1, etcdgw.WithLease(g.ID))
	require.NoError(t, err)
	outside := strings.TrimSuffix(prefix, "/") + "-other/mine"
	_, err = raw.Set(ctx, outside, 2, etcdgw.WithLease(g.ID))
	require.NoError(t, err)
	_, err = raw.Set(ctx, "/t/elsewhere-"+prefix, 3, etcdgw.WithLease(g.ID))
	require.NoError(t, err)

	r, err := c.TimeToLive(ctx, g.ID, true)
	require.NoError(t, err)
	assert.Equal(t, []string{"mine"}, r.Keys)
	all, err := raw.TimeToLive(ctx, g.ID, true)
	require.NoError(t, err)
	assert.Len(t, all.Keys, 3, "a client without a key prefix sees every key")
}
