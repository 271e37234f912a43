package cache_test

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcdgw/etcdgw"
	"github.com/etcdgw/etcdgw/cache"
	"github.com/etcdgw/etcdgw/internal/etcdtest"
)

// proxied starts a server with cfg and a fault proxy in front of it, and
// returns clients to the server directly and through the proxy.
func proxied(t *testing.T, cfg etcdtest.Config, opts ...etcdgw.Option) (direct, viaProxy *etcdgw.Client, p *etcdtest.Proxy) {
	s := etcdtest.NewServer(t, cfg)
	p, err := etcdtest.NewProxy(s.ClientAddr())
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	prefix := testPrefix(t)
	return clientOf(t, prefix, []string{s.Endpoint()}, opts...), clientOf(t, prefix, []string{p.Endpoint("http")}, opts...), p
}

func TestIdlePrefixFollowsProgressNoRelist(t *testing.T) {
	direct, viaProxy, p := proxied(t, etcdtest.Config{WatchProgressNotifyInterval: 100 * time.Millisecond})
	ctx := testCtx(t)
	put(t, ctx, direct, "idle/a", route{Host: "a"})
	m := newCache[route](t, viaProxy, "idle/")
	require.NoError(t, m.Start(ctx))
	// Writes elsewhere; the server's progress notifications move the mirror on.
	var other int64
	for range 5 {
		other = put(t, ctx, direct, "busy", 1)
	}
	require.NoError(t, m.WaitForRevision(ctx, other), "progress notifications carry an idle mirror")

	// A disconnect, then a compaction of everything before now: the watch
	// resumes after the compacted revision, with no relist.
	require.NoError(t, p.SetRefuse(true))
	p.CutAll()
	require.NoError(t, direct.Compact(ctx, other))
	require.NoError(t, p.SetRefuse(false))
	w := put(t, ctx, direct, "idle/b", route{Host: "b"})
	require.NoError(t, m.WaitForRevision(ctx, w))
	assert.Equal(t, 0, m.Stats().Relists)
	assert.Equal(t, 2, m.Len())
}

func TestFragmentedBatch(t *testing.T) {
	direct, viaProxy, p := proxied(t, etcdtest.Config{MaxRequestBytes: 1536 << 10}, etcdgw.WithSerializer(etcdgw.Raw))
	ctx := testCtx(t)
	m := newCache[[]byte](t, viaProxy, "big/")
	var mu sync.Mutex
	var batches []cache.Batch[[]byte]
	m.AddHandler(func(b cache.Batch[[]byte]) {
		mu.Lock()
		defer mu.Unlock()
		batches = append(batches, b)
	})
	require.NoError(t, m.Start(ctx))
	// While the watch is away, 4 MB in four revisions: on resume etcd sends
	// them in one response, over its message limit, so in fragments.
	require.NoError(t, p.SetRefuse(true))
	p.CutAll()
	var last int64
	for i := range 4 {
		last = put(t, ctx, direct, fmt.Sprintf("big/%d", i), bytes.Repeat([]byte{byte('a' + i)}, 1<<20))
	}
	require.NoError(t, p.SetRefuse(false))
	require.NoError(t, m.WaitForRevision(ctx, last))
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(batches) > 0 && batches[len(batches)-1].Revision == last
	}, 30*time.Second, 5*time.Millisecond)
	mu.Lock()
	require.Len(t, batches, 1, "the fragments arrive as one batch")
	assert.Len(t, batches[0].Events, 4)
	mu.Unlock()
	for i := range 4 {
		it, ok := m.Get(fmt.Sprintf("big/%d", i))
		require.True(t, ok)
		assert.Equal(t, 1<<20, len(it.Value))
		assert.Equal(t, byte('a'+i), it.Value[0])
	}
}

func TestStoppedMembersOfCluster(t *testing.T) {
	cl := etcdtest.NewCluster(t, 3, etcdtest.Config{Name: "cache"})
	prefix := testPrefix(t)
	writerClient := clientOf(t, prefix, cl.Endpoints())
	c := clientOf(t, prefix, cl.Endpoints())
	ctx := testCtx(t)
	writer(t, ctx, writerClient, "w/", 20)
	m := newCache[route](t, c, "w/")
	rec := newRecorder(t)
	m.AddHandler(rec.onBatch)
	require.NoError(t, m.Start(ctx))
	// Each member in turn stops while the prefix changes: the watch moves to
	// another member and resumes where it was.
	for i := range cl.Size() {
		require.NoError(t, cl.Member(i).Stop())
		last := writer(t, ctx, writerClient, "w/", 40)
		require.NoError(t, m.WaitForRevision(ctx, last))
		require.NoError(t, cl.Member(i).Restart())
	}
	rev, err := m.Sync(ctx)
	require.NoError(t, err)
	rec.waitRev(m.Revision())
	rec.check(ctx, writerClient, "w/", m.Revision())
	snapshotEqualsEtcd(t, ctx, writerClient, m, "w/")
	assert.GreaterOrEqual(t, m.Revision(), rev)
	assert.Equal(t, 0, m.Stats().Relists)
}
