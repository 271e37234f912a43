package cache_test

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcdgw/etcdgw/cache"
	"github.com/etcdgw/etcdgw/internal/etcdtest"
)

// switchProxy forwards TCP to a target that the test can change, as a
// restored store comes back at the same address with older data.
type switchProxy struct {
	ln     net.Listener
	mu     sync.Mutex
	target string
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newSwitchProxy(t *testing.T, target string) *switchProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &switchProxy{ln: ln, target: target}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			target := p.target
			p.mu.Unlock()
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			p.wg.Add(2)
			go func() { defer p.wg.Done(); io.Copy(s, c); s.Close() }()
			go func() { defer p.wg.Done(); io.Copy(c, s); c.Close() }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

// switchTo sends new connections to target and cuts the live ones.
func (p *switchProxy) switchTo(target string) {
	p.mu.Lock()
	p.target = target
	p.mu.Unlock()
	p.cut()
}

func (p *switchProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func TestRestoredStoreRelistsAtLowerRevision(t *testing.T) {
	ctx := testCtx(t)
	old := etcdtest.NewServer(t, etcdtest.Config{})
	restored := etcdtest.NewServer(t, etcdtest.Config{})
	prefix := testPrefix(t)
	// The restored store holds an older state of the prefix, at a lower
	// revision than the mirror has seen.
	toRestored := clientOf(t, prefix, []string{restored.Endpoint()})
	put(t, ctx, toRestored, "s/same", route{Host: "same"})
	put(t, ctx, toRestored, "s/gone", route{Host: "gone"})
	toOld := clientOf(t, prefix, []string{old.Endpoint()})
	put(t, ctx, toOld, "s/same", route{Host: "same"})
	for range 20 {
		put(t, ctx, toOld, "s/new", route{Host: "new"})
	}

	p := newSwitchProxy(t, old.ClientAddr())
	c := clientOf(t, prefix, []string{"http://" + p.ln.Addr().String()})
	m := newCache[route](t, c, "s/")
	rec := newRecorder(t)
	m.AddHandler(rec.onBatch)
	require.NoError(t, m.Start(ctx))
	high := m.Revision()
	rec.waitRev(high)

	p.switchTo(restored.ClientAddr())
	// A pooled connection cut by the switch may fail the first read, and the
	// one member is then out until its probe brings it back.
	var rev int64
	var err error
	require.Eventually(t, func() bool {
		rev, err = m.Sync(ctx)
		return err == nil
	}, 20*time.Second, 50*time.Millisecond, "no Sync succeeded within 20 s of the switch")
	assert.Less(t, rev, high)
	assert.Equal(t, rev, m.Revision(), "the relist carries the lower revision")
	assert.Equal(t, 1, m.Stats().Relists)
	snapshotEqualsEtcd(t, ctx, toRestored, m, "s/")

	require.Eventually(t, func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return len(rec.batches) == 2
	}, 30*time.Second, 5*time.Millisecond)
	rec.mu.Lock()
	b := rec.batches[1]
	rec.mu.Unlock()
	assert.True(t, b.Relist)
	assert.Equal(t, rev, b.Revision)
	got := map[string][]cache.EventType{}
	for _, e := range b.Events {
		got[e.Key] = append(got[e.Key], e.Type)
	}
	// s/same has the same create and mod revisions in both: nothing.
	assert.Equal(t, map[string][]cache.EventType{
		"s/new":  {cache.Deleted},
		"s/gone": {cache.Added},
	}, got)

	// The mirror follows the restored store from there.
	w := put(t, ctx, toRestored, "s/after", route{Host: "after"})
	require.NoError(t, m.WaitForRevision(ctx, w))
	_, ok := m.Get("s/after")
	assert.True(t, ok)
}
