package etcdgw_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcdgw/etcdgw"
	"github.com/etcdgw/etcdgw/internal/etcdtest"
)

// concurrentGets runs a Get of each key at once and returns the answers and
// errors, by key.
func concurrentGets(c *etcdgw.Client, t *testing.T, keys []string) (map[string]*etcdgw.GetResponse, map[string]error) {
	ctx := testCtx(t)
	var mu sync.Mutex
	got, errs := map[string]*etcdgw.GetResponse{}, map[string]error{}
	var wg sync.WaitGroup
	for _, k := range keys {
		wg.Go(func() {
			r, err := c.Get(ctx, k)
			mu.Lock()
			defer mu.Unlock()
			got[k], errs[k] = r, err
		})
	}
	wg.Wait()
	return got, errs
}

// Concurrent reads share requests, and each caller gets its own answer:
// its own key's value, a miss for a missing key, keys without the prefix.
func TestReadCoalescingAnswersEachCaller(t *testing.T) {
	t.Parallel()
	rec := recordingProxy(t)
	prefix := testPrefix(t)
	w := newClient(t, etcdgw.WithKeyPrefix(prefix))
	ctx := testCtx(t)
	const n = 200
	var keys []string
	for i := range n {
		k := fmt.Sprint("k", i)
		keys = append(keys, k)
		if i%5 != 0 { // every fifth key is missing
			_, err := w.Set(ctx, k, i)
			require.NoError(t, err)
		}
	}
	c := clientOf(t, rec.Endpoint(), etcdgw.WithAPIPrefix("/v3"), etcdgw.WithKeyPrefix(prefix), etcdgw.WithReadCoalescing(true))
	got, errs := concurrentGets(c, t, keys)
	for i, k := range keys {
		require.NoError(t, errs[k], "get %s", k)
		if i%5 == 0 {
			assert.Empty(t, got[k].Kvs, "%s is missing", k)
			continue
		}
		require.Len(t, got[k].Kvs, 1, k)
		assert.Equal(t, k, string(got[k].Kvs[0].Key), "the key without the prefix")
		assert.Equal(t, fmt.Sprint(i), string(got[k].Kvs[0].Value))
		assert.Positive(t, got[k].Header.Revision)
	}
	ranges, txns := rec.Count("/v3/kv/range"), rec.Count("/v3/kv/txn")
	t.Logf("%d reads in %d ranges and %d transactions", n, ranges, txns)
	assert.Positive(t, txns, "some reads were coalesced")
	assert.Less(t, ranges+txns, n, "fewer requests than reads")
}

// A coalesced Txn that fails is retried read by read: a merged answer over
// WithMaxResponseBytes, and etcd's limit of operations per Txn, never fail a
// read that fits.
func TestReadCoalescingFallsBackReadByRead(t *testing.T) {
	t.Parallel()
	srv := etcdtest.NewServer(t, etcdtest.Config{MaxTxnOps: 4})
	rec, err := etcdtest.NewRecordingProxy(srv.Endpoint(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { rec.Close() })
	w := newClientOf(t, srv.Endpoint())
	ctx := testCtx(t)
	value := strings.Repeat("v", 3000)
	var keys []string
	for i := range 64 {
		k := fmt.Sprint("big", i)
		keys = append(keys, k)
		_, err := w.Set(ctx, k, value)
		require.NoError(t, err)
	}
	// Each answer fits in 8 KiB; two or more merged do not.
	c := clientOf(t, rec.Endpoint(), etcdgw.WithAPIPrefix("/v3"), etcdgw.WithReadCoalescing(true), etcdgw.WithMaxResponseBytes(8<<10))
	got, errs := concurrentGets(c, t, keys)
	for _, k := range keys {
		require.NoError(t, errs[k], "get %s", k)
		require.Len(t, got[k].Kvs, 1, k)
		assert.Len(t, got[k].Kvs[0].Value, len(value)+2)
	}
	assert.Positive(t, rec.Count("/v3/kv/txn"), "coalescing was tried")
	assert.True(t, etcdgw.EndpointHealthy(c, rec.Endpoint()), "a merged answer over the limit is nobody's failure")
}

// Reads that do not mean the same inside a Txn are never coalesced.
func TestReadCoalescingLeavesOtherReadsAlone(t *testing.T) {
	t.Parallel()
	rec := recordingProxy(t)
	prefix := testPrefix(t)
	c := clientOf(t, rec.Endpoint(), etcdgw.WithAPIPrefix("/v3"), etcdgw.WithKeyPrefix(prefix), etcdgw.WithReadCoalescing(true))
	w := newClient(t, etcdgw.WithKeyPrefix(prefix))
	r, err := w.Set(testCtx(t), "k", "v")
	require.NoError(t, err)
	ctx := testCtx(t)
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			_, err := c.Get(ctx, "k", etcdgw.WithSerializable())
			assert.NoError(t, err)
			_, err = c.Get(ctx, "k", etcdgw.WithRev(r.Header.Revision))
			assert.NoError(t, err)
			_, err = c.Get(ctx, "", etcdgw.WithPrefix(), etcdgw.WithSort(etcdgw.SortByModRevision, etcdgw.SortDescend))
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	assert.Zero(t, rec.Count("/v3/kv/txn"))
	assert.Equal(t, 150, rec.Count("/v3/kv/range"))
}

// Callers that give up while queued, or while leading a batch, leave no slot
// taken and no read behind them stranded.
func TestReadCoalescingCancelledCallers(t *testing.T) {
	t.Parallel()
	prefix := testPrefix(t)
	c := newClient(t, etcdgw.WithKeyPrefix(prefix), etcdgw.WithReadCoalescing(true))
	_, err := c.Set(testCtx(t), "k", "v")
	require.NoError(t, err)
	for round := range 5 {
		ctx, cancel := context.WithCancel(testCtx(t))
		var wg sync.WaitGroup
		for i := range 60 {
			cctx := testCtx(t)
			if i%2 == 0 {
				cctx = ctx // half of them give up at once
			}
			wg.Go(func() {
				r, err := c.Get(cctx, "k")
				if err != nil {
					assert.ErrorIs(t, err, context.Canceled, "round %d", round)
					return
				}
				assert.Len(t, r.Kvs, 1)
			})
		}
		cancel()
		wg.Wait()
	}
	// Every slot is free again: lone reads go straight through.
	for range 10 {
		r, err := c.Get(testCtx(t), "k")
		require.NoError(t, err)
		require.Len(t, r.Kvs, 1)
	}
	assert.Zero(t, etcdgw.CoalesceQueued(c), "nothing left queued")
	assert.Zero(t, etcdgw.CoalesceInFlight(c), "no slot left taken")
}

// A client and its Namespace views read at once: each read is answered with
// its own client's key prefix stripped.
func TestReadCoalescingWithNamespaces(t *testing.T) {
	t.Parallel()
	prefix := testPrefix(t)
	c := newClient(t, etcdgw.WithKeyPrefix(prefix))
	a, b := c.Namespace("a/"), c.Namespace("b/")
	ctx := testCtx(t)
	for _, cl := range []*etcdgw.Client{c, a, b} {
		_, err := cl.Set(ctx, "k", "v")
		require.NoError(t, err)
	}
	var wg sync.WaitGroup
	for range 30 {
		for _, cl := range []*etcdgw.Client{c, a, b} {
			wg.Go(func() {
				r, err := cl.Get(ctx, "k")
				if assert.NoError(t, err) && assert.Len(t, r.Kvs, 1) {
					assert.Equal(t, "k", string(r.Kvs[0].Key))
				}
			})
		}
	}
	wg.Wait()
}
