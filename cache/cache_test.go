package cache_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/etcdgw/etcdgw"
	"github.com/etcdgw/etcdgw/cache"
	"github.com/etcdgw/etcdgw/internal/etcdtest"
)

type route struct {
	Host     string `json:"host"`
	Upstream string `json:"upstream"`
}

// newCache returns a cache of prefix, closed at the end of the test.
func newCache[T any](t *testing.T, c *etcdgw.Client, prefix string, opts ...cache.Option) *cache.Cache[T] {
	t.Helper()
	m, err := cache.New[T](c, prefix, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	return m
}

// recorder folds every batch a handler gets and checks the invariants a
// handler relies on.
type recorder struct {
	t       *testing.T
	mu      sync.Mutex
	state   map[string]*mvccpb.KeyValue
	lastMod map[string]int64 // per key, the last mod revision delivered
	revOf   map[int64]int    // event revision -> index of the batch it came in
	batches []cache.Batch[route]
	rev     int64
	errs    []string
}

func newRecorder(t *testing.T) *recorder {
	return &recorder{t: t, state: map[string]*mvccpb.KeyValue{}, lastMod: map[string]int64{}, revOf: map[int64]int{}}
}

func (r *recorder) onBatch(b cache.Batch[route]) {
	r.mu.Lock()
	defer r.mu.Unlock()
	i := len(r.batches)
	r.batches = append(r.batches, b)
	if b.Revision <= r.rev && !b.Relist {
		r.errs = append(r.errs, fmt.Sprintf("batch %d at revision %d after %d", i, b.Revision, r.rev))
	}
	for _, e := range b.Events {
		switch e.Type {
		case cache.Added, cache.Updated:
			if (e.Type == cache.Added) != (r.state[e.Key] == nil) {
				r.errs = append(r.errs, fmt.Sprintf("%v of %s with state %v", e.Type, e.Key, r.state[e.Key]))
			}
			mod := e.New.KV.ModRevision
			if mod <= r.lastMod[e.Key] {
				r.errs = append(r.errs, fmt.Sprintf("%s: mod revision %d after %d", e.Key, mod, r.lastMod[e.Key]))
			}
			if mod > b.Revision || mod <= r.rev {
				r.errs = append(r.errs, fmt.Sprintf("%s: mod revision %d outside batch (%d, %d]", e.Key, mod, r.rev, b.Revision))
			}
			if j, ok := r.revOf[mod]; ok && j != i && !b.Relist {
				r.errs = append(r.errs, fmt.Sprintf("revision %d split over batches %d and %d", mod, j, i))
			}
			r.revOf[mod] = i
			r.lastMod[e.Key] = mod
			r.state[e.Key] = e.New.KV
		case cache.Deleted:
			if r.state[e.Key] == nil {
				r.errs = append(r.errs, fmt.Sprintf("delete of absent %s", e.Key))
			}
			delete(r.state, e.Key)
		}
	}
	r.rev = b.Revision
}

// waitRev waits until the recorder has seen revision rev.
func (r *recorder) waitRev(rev int64) {
	r.t.Helper()
	require.Eventually(r.t, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.rev >= rev
	}, 30*time.Second, 5*time.Millisecond, "handler never reached revision %d", rev)
}

// check asserts the invariants held and the folded state equals etcd's at rev.
func (r *recorder) check(ctx context.Context, c *etcdgw.Client, prefix string, rev int64) {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	assert.Empty(r.t, r.errs)
	resp, err := c.ReadDir(ctx, prefix, etcdgw.WithRev(rev))
	require.NoError(r.t, err)
	want := map[string]string{}
	for _, kv := range resp.Kvs {
		want[string(kv.Key)] = fmt.Sprintf("%s@%d", kv.Value, kv.ModRevision)
	}
	got := map[string]string{}
	for k, kv := range r.state {
		got[k] = fmt.Sprintf("%s@%d", kv.Value, kv.ModRevision)
	}
	assert.Equal(r.t, want, got)
}

// snapshotEqualsEtcd asserts that the cache's content equals ReadDir at its
// revision.
func snapshotEqualsEtcd[T any](t *testing.T, ctx context.Context, c *etcdgw.Client, m *cache.Cache[T], prefix string) {
	t.Helper()
	items, rev := m.List(), m.Revision()
	for m.Revision() != rev { // List and Revision one after the other: retry if it moved
		items, rev = m.List(), m.Revision()
	}
	resp, err := c.ReadDir(ctx, prefix, etcdgw.WithRev(rev))
	require.NoError(t, err)
	require.Len(t, items, len(resp.Kvs))
	for i, kv := range resp.Kvs {
		assert.Equal(t, string(kv.Key), items[i].Key)
		assert.Equal(t, kv.ModRevision, items[i].KV.ModRevision)
		assert.Equal(t, string(kv.Value), string(items[i].KV.Value))
	}
}

func put(t *testing.T, ctx context.Context, c *etcdgw.Client, key string, v any) int64 {
	t.Helper()
	r, err := c.Set(ctx, key, v)
	require.NoError(t, err)
	return r.Header.Revision
}

func TestStartSnapshotEqualsReadDir(t *testing.T) {
	c := newClient(t)
	ctx := testCtx(t)
	for i := range 25 {
		put(t, ctx, c, fmt.Sprintf("routes/%02d", i), route{Host: fmt.Sprint("h", i), Upstream: "u"})
	}
	put(t, ctx, c, "routesX", route{Host: "outside"}) // shares the bytes, not the prefix "routes/"
	put(t, ctx, c, "routes/bad", "{not json")         // a JSON string: does not decode into route
	m := newCache[route](t, c, "routes/", cache.WithPageSize(7))
	assert.Equal(t, 0, m.Len(), "New does no I/O")
	require.NoError(t, m.Start(ctx))
	assert.Equal(t, 26, m.Len())
	snapshotEqualsEtcd(t, ctx, c, m, "routes/")

	it, ok := m.Get("routes/03")
	require.True(t, ok)
	assert.Equal(t, route{Host: "h3", Upstream: "u"}, it.Value)
	assert.NoError(t, it.Err)
	bad, ok := m.Get("routes/bad")
	require.True(t, ok, "an undecodable value is kept")
	assert.Error(t, bad.Err)
	_, ok = m.Get("routesX")
	assert.False(t, ok)
	list := m.List()
	for i := 1; i < len(list); i++ {
		assert.Less(t, list[i-1].Key, list[i].Key)
	}
	st := m.Stats()
	assert.Equal(t, cache.Stats{Revision: m.Revision(), Keys: 26}, st)
}

func TestRawValues(t *testing.T) {
	c := newClient(t, etcdgw.WithSerializer(etcdgw.Raw))
	ctx := testCtx(t)
	put(t, ctx, c, "b/x", []byte("hello"))
	m := newCache[[]byte](t, c, "b/")
	require.NoError(t, m.Start(ctx))
	it, ok := m.Get("b/x")
	require.True(t, ok)
	assert.Equal(t, "hello", string(it.Value))
	rev := put(t, ctx, c, "b/y", "world")
	require.NoError(t, m.WaitForRevision(ctx, rev))
	it, ok = m.Get("b/y")
	require.True(t, ok, "WaitForRevision then Get sees the write")
	assert.Equal(t, "world", string(it.Value))
}

// writer does puts, updates, deletes, delete-then-recreate and multi-key
// deletes under prefix until stop closes; it returns the last revision.
func writer(t *testing.T, ctx context.Context, c *etcdgw.Client, prefix string, n int) int64 {
	rng := rand.New(rand.NewPCG(1, 2))
	var last int64
	for i := range n {
		k := fmt.Sprintf("%sk%d", prefix, rng.IntN(20))
		var err error
		switch op := rng.IntN(10); {
		case op < 6:
			var r *etcdgw.PutResponse
			r, err = c.Set(ctx, k, route{Host: fmt.Sprint(i)})
			if err == nil {
				last = r.Header.Revision
			}
		case op < 9:
			var r *etcdgw.DeleteResponse
			r, err = c.Delete(ctx, k)
			if err == nil {
				last = r.Header.Revision
			}
		default:
			var r *etcdgw.DeleteResponse
			r, err = c.RmDir(ctx, fmt.Sprintf("%sk1", prefix)) // k1, k10..k19 in one revision
			if err == nil {
				last = r.Header.Revision
			}
		}
		require.NoError(t, err)
	}
	return last
}

func TestBatchesFoldToEtcdUnderWrites(t *testing.T) {
	c := newClient(t)
	ctx := testCtx(t)
	writer(t, ctx, c, "w/", 50)
	m := newCache[route](t, c, "w/", cache.WithPageSize(5))
	rec := newRecorder(t)
	m.AddHandler(rec.onBatch)
	require.NoError(t, m.Start(ctx))
	last := writer(t, ctx, c, "w/", 400)
	require.NoError(t, m.WaitForRevision(ctx, last))
	rec.waitRev(last)
	rec.check(ctx, c, "w/", m.Revision())
	snapshotEqualsEtcd(t, ctx, c, m, "w/")
	assert.Greater(t, len(rec.batches), 1)
}

func TestAcrossCutsAndStoppedMember(t *testing.T) {
	s := etcdtest.NewServer(t, etcdtest.Config{})
	p, err := etcdtest.NewProxy(s.ClientAddr())
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	prefix := testPrefix(t)
	direct := clientOf(t, prefix, []string{s.Endpoint()})
	viaProxy := clientOf(t, prefix, []string{p.Endpoint("http")})
	ctx := testCtx(t)
	writer(t, ctx, direct, "w/", 30)
	m := newCache[route](t, viaProxy, "w/")
	rec := newRecorder(t)
	m.AddHandler(rec.onBatch)
	require.NoError(t, m.Start(ctx))
	for range 3 {
		last := writer(t, ctx, direct, "w/", 60)
		p.CutAll()
		require.NoError(t, m.WaitForRevision(ctx, last))
	}
	// The member stops and comes back.
	require.NoError(t, s.Stop())
	require.NoError(t, s.Restart())
	last := writer(t, ctx, direct, "w/", 60)
	require.NoError(t, m.WaitForRevision(ctx, last))
	rec.waitRev(last)
	rec.check(ctx, direct, "w/", m.Revision())
	snapshotEqualsEtcd(t, ctx, direct, m, "w/")
	assert.Equal(t, 0, m.Stats().Relists)
}

func TestCompactionRelistDeliversExactDelta(t *testing.T) {
	s := etcdtest.NewServer(t, etcdtest.Config{})
	p, err := etcdtest.NewProxy(s.ClientAddr())
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	prefix := testPrefix(t)
	direct := clientOf(t, prefix, []string{s.Endpoint()})
	viaProxy := clientOf(t, prefix, []string{p.Endpoint("http")})
	ctx := testCtx(t)
	for _, k := range []string{"same", "upd", "del", "re"} {
		put(t, ctx, direct, "r/"+k, route{Host: k})
	}
	m := newCache[route](t, viaProxy, "r/")
	rec := newRecorder(t)
	m.AddHandler(rec.onBatch)
	require.NoError(t, m.Start(ctx))
	rec.waitRev(m.Revision())
	before := m.Revision()

	// The watch loses its connection and cannot come back while the prefix
	// changes and etcd compacts past the watch's resume point.
	require.NoError(t, p.SetRefuse(true))
	p.CutAll()
	put(t, ctx, direct, "r/upd", route{Host: "upd2"})
	_, err = direct.Delete(ctx, "r/del")
	require.NoError(t, err)
	_, err = direct.Delete(ctx, "r/re")
	require.NoError(t, err)
	put(t, ctx, direct, "r/re", route{Host: "re2"})
	put(t, ctx, direct, "r/new", route{Host: "new"})
	put(t, ctx, direct, "r/tmp", route{Host: "tmp"})
	_, err = direct.Delete(ctx, "r/tmp")
	require.NoError(t, err)
	last := put(t, ctx, direct, "elsewhere", 1)
	require.NoError(t, direct.Compact(ctx, last))
	require.NoError(t, p.SetRefuse(false))

	require.NoError(t, m.WaitForRevision(ctx, last))
	rec.waitRev(last)
	rec.mu.Lock()
	var relists []cache.Batch[route]
	for _, b := range rec.batches {
		if b.Revision > before {
			relists = append(relists, b)
		}
	}
	rec.mu.Unlock()
	require.Len(t, relists, 1, "one batch after the compaction")
	b := relists[0]
	assert.True(t, b.Relist)
	got := map[string][]cache.EventType{}
	for _, e := range b.Events {
		got[e.Key] = append(got[e.Key], e.Type)
	}
	assert.Equal(t, map[string][]cache.EventType{
		"r/upd": {cache.Updated},
		"r/del": {cache.Deleted},
		"r/re":  {cache.Deleted, cache.Added},
		"r/new": {cache.Added},
	}, got, "nothing for r/same, nothing for r/tmp")
	for _, e := range b.Events {
		if e.Key == "r/upd" {
			assert.Equal(t, "upd", e.Old.Value.Host)
			assert.Equal(t, "upd2", e.New.Value.Host)
		}
	}
	assert.Equal(t, 1, m.Stats().Relists)
	rec.check(ctx, direct, "r/", m.Revision())

	// It watches on from there.
	rev := put(t, ctx, direct, "r/after", route{Host: "a"})
	require.NoError(t, m.WaitForRevision(ctx, rev))
	_, ok := m.Get("r/after")
	assert.True(t, ok)
}

func TestSyncOnIdleAndBusyPrefix(t *testing.T) {
	c := newClient(t)
	ctx := testCtx(t)
	put(t, ctx, c, "idle/a", route{Host: "a"})
	m := newCache[route](t, c, "idle/")
	require.NoError(t, m.Start(ctx))
	// Writes elsewhere: the mirror's prefix does not change.
	other := put(t, ctx, c, "other", 1)
	rev, err := m.Sync(ctx)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, rev, other)
	assert.GreaterOrEqual(t, m.Revision(), other, "Sync moves an idle mirror's revision")

	// A busy prefix: a write just before Sync is in the mirror when it returns.
	w := put(t, ctx, c, "idle/b", route{Host: "b"})
	rev, err = m.Sync(ctx)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, rev, w)
	it, ok := m.Get("idle/b")
	require.True(t, ok)
	assert.Equal(t, "b", it.Value.Host)

	// WaitForRevision gives up with its ctx.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, m.WaitForRevision(short, m.Revision()+1000), context.DeadlineExceeded)
}

func TestSyncOverHTTP2UsesProgress(t *testing.T) {
	s := etcdtest.NewServer(t, etcdtest.Config{TLS: true})
	c := clientOf(t, testPrefix(t), []string{s.Endpoint()}, etcdgw.WithCAFile(s.Certs().CAFile))
	ctx := testCtx(t)
	put(t, ctx, c, "p/a", 1)
	m := newCache[int](t, c, "p/", cache.WithProgressInterval(50*time.Millisecond))
	require.NoError(t, m.Start(ctx))
	other := put(t, ctx, c, "other", 1)
	// Progress requests alone move the idle mirror on.
	require.NoError(t, m.WaitForRevision(ctx, other))
	other = put(t, ctx, c, "other", 2)
	rev, err := m.Sync(ctx)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, rev, other)
}

func TestLateHandlerGetsContentThenChanges(t *testing.T) {
	c := newClient(t)
	ctx := testCtx(t)
	for i := range 5 {
		put(t, ctx, c, fmt.Sprintf("l/%d", i), route{Host: fmt.Sprint(i)})
	}
	m := newCache[route](t, c, "l/")
	require.NoError(t, m.Start(ctx))
	rec := newRecorder(t)
	m.AddHandler(rec.onBatch)
	rec.waitRev(m.Revision())
	rec.mu.Lock()
	require.Len(t, rec.batches, 1)
	first := rec.batches[0]
	rec.mu.Unlock()
	require.Len(t, first.Events, 5)
	for i, e := range first.Events {
		assert.Equal(t, cache.Added, e.Type)
		assert.Equal(t, fmt.Sprintf("l/%d", i), e.Key)
	}
	rev := put(t, ctx, c, "l/2", route{Host: "two"})
	rec.waitRev(rev)
	rec.check(ctx, c, "l/", rev)
}

func TestSlowHandlerKeepsBoundedPending(t *testing.T) {
	c := newClient(t)
	ctx := testCtx(t)
	const keys = 50
	m := newCache[route](t, c, "s/")
	release := make(chan struct{})
	var once sync.Once
	rec := newRecorder(t)
	m.AddHandler(func(b cache.Batch[route]) {
		<-release
		rec.onBatch(b)
	})
	// A fast handler next to it sees every response on its own.
	fast := newRecorder(t)
	m.AddHandler(fast.onBatch)
	require.NoError(t, m.Start(ctx))
	var last int64
	for i := range 600 {
		k := fmt.Sprintf("s/%d", i%keys)
		if i%7 == 3 {
			r, err := c.Delete(ctx, k)
			require.NoError(t, err)
			last = r.Header.Revision
			continue
		}
		last = put(t, ctx, c, k, route{Host: fmt.Sprint(i)})
	}
	require.NoError(t, m.WaitForRevision(ctx, last))
	st := m.Stats()
	assert.LessOrEqual(t, st.PendingBatches, 2, "at most one per handler")
	once.Do(func() { close(release) })
	rec.waitRev(last)
	fast.waitRev(last)
	rec.mu.Lock()
	for _, b := range rec.batches {
		assert.LessOrEqual(t, len(b.Events), 2*keys, "a merged batch holds at most the net delta per key")
	}
	slowBatches := len(rec.batches)
	rec.mu.Unlock()
	assert.Less(t, slowBatches, 10, "the slow handler's responses merged")
	rec.check(ctx, c, "s/", m.Revision())
	fast.check(ctx, c, "s/", m.Revision())
}

func TestCloseStopsHandlers(t *testing.T) {
	c := newClient(t)
	ctx := testCtx(t)
	m, err := cache.New[route](c, "c/")
	require.NoError(t, err)
	var calls, after int
	var mu sync.Mutex
	closed := false
	m.AddHandler(func(cache.Batch[route]) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if closed {
			after++
		}
	})
	require.NoError(t, m.Start(ctx))
	rev := put(t, ctx, c, "c/a", route{})
	require.NoError(t, m.WaitForRevision(ctx, rev))
	require.NoError(t, m.Close())
	mu.Lock()
	closed = true
	mu.Unlock()
	put(t, ctx, c, "c/b", route{})
	assert.Error(t, m.WaitForRevision(ctx, rev+1))
	assert.Error(t, m.Start(ctx))
	require.NoError(t, m.Close(), "Close twice")
	mu.Lock()
	assert.Zero(t, after)
	mu.Unlock()
}

func TestSlowHandlerManyKeysBoundedPending(t *testing.T) {
	if testing.Short() {
		t.Skip("many keys")
	}
	c := newClient(t)
	ctx := testCtx(t)
	const keys = 3000 // 10,000 takes 10 s under -race on a small machine
	m := newCache[route](t, c, "big/")
	release := make(chan struct{})
	rec := newRecorder(t)
	var maxEvents int
	m.AddHandler(func(b cache.Batch[route]) {
		<-release
		maxEvents = max(maxEvents, len(b.Events))
		rec.onBatch(b)
	})
	require.NoError(t, m.Start(ctx))
	rng := rand.New(rand.NewPCG(3, 4))
	var last int64
	txn := func(keyOf func(j int) int) {
		ops := make([]etcdgw.Op, 0, 100)
		seen := map[int]bool{}
		for j := range 100 {
			k := keyOf(j)
			if seen[k] {
				continue
			}
			seen[k] = true
			ops = append(ops, etcdgw.OpPut(fmt.Sprintf("big/%05d", k), route{Host: fmt.Sprint(rng.Int())}))
		}
		r, err := c.Txn(ctx).Then(ops...).Commit()
		require.NoError(t, err)
		last = r.Header.Revision
	}
	for i := 0; i < keys; i += 100 {
		txn(func(j int) int { return i + j })
	}
	for range keys / 100 { // as many updates again, to random keys
		txn(func(int) int { return rng.IntN(keys) })
	}
	require.NoError(t, m.WaitForRevision(ctx, last))
	assert.LessOrEqual(t, m.Stats().PendingBatches, 1, "one pending batch however far the handler lags")
	close(release)
	rec.waitRev(last)
	assert.LessOrEqual(t, maxEvents, keys, "a merged batch holds at most one change per key")
	rec.check(ctx, c, "big/", m.Revision())
	assert.Equal(t, keys, m.Len())
}
