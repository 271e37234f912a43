package concurrency_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	v3c "go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"

	"github.com/etcdgw/etcdgw/concurrency"
)

// newV3Session returns a clientv3 session of the shared server.
func newV3Session(t *testing.T) *v3c.Session {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{shared.Endpoint()},
		DialTimeout: 10 * time.Second,
		Logger:      zap.NewNop(),
	})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	s, err := v3c.NewSession(c)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

// etcdgw's Mutex and clientv3's exclude each other on the same name, both
// ways, with the same key layout.
func TestMutexInteropClientv3(t *testing.T) {
	name := testPrefix(t) + "lock"
	c := newClient(t)
	ctx := testCtx(t)
	vs := newV3Session(t)
	v := v3c.NewMutex(vs, name)
	g := concurrency.NewMutex(newSession(t, c), name)

	require.NoError(t, v.Lock(ctx))
	assert.Regexp(t, "^"+name+"/[0-9a-f]+$", v.Key())
	assert.Regexp(t, "^"+name+"/[0-9a-f]+$", g.Key())
	assert.ErrorIs(t, g.TryLock(ctx), concurrency.ErrLocked, "clientv3 holds it")
	gLocked := lockAsync(ctx, g)
	queued(t, c, name, 2)
	select {
	case err := <-gLocked:
		t.Fatalf("etcdgw got the lock while clientv3 held it: %v", err)
	default:
	}
	require.NoError(t, v.Unlock(ctx))
	require.NoError(t, waitErr(t, gLocked, 10*time.Second, "etcdgw Lock"))

	assert.ErrorIs(t, v.TryLock(ctx), v3c.ErrLocked, "etcdgw holds it")
	vLocked := make(chan error, 1)
	go func() { vLocked <- v.Lock(ctx) }()
	queued(t, c, name, 2)
	select {
	case err := <-vLocked:
		t.Fatalf("clientv3 got the lock while etcdgw held it: %v", err)
	default:
	}
	tokenG := g.Token()
	require.NoError(t, g.Unlock(ctx))
	require.NoError(t, waitErr(t, vLocked, 10*time.Second, "clientv3 Lock"))
	r, err := c.Get(ctx, v.Key())
	require.NoError(t, err)
	require.Len(t, r.Kvs, 1)
	assert.Greater(t, r.Kvs[0].CreateRevision, tokenG, "the next holder's token is higher")
	require.NoError(t, v.Unlock(ctx))
}

// etcdgw's Election and clientv3's take turns on the same name and see each
// other's leaders and values.
func TestElectionInteropClientv3(t *testing.T) {
	name := testPrefix(t) + "elect"
	c := newClient(t)
	ctx := testCtx(t)
	v := v3c.NewElection(newV3Session(t), name)
	g := concurrency.NewElection(newSession(t, c), name)
	octx, cancel := context.WithCancel(ctx)
	defer cancel()
	obs := g.Observe(octx)
	assert.Equal(t, "none", next(t, obs))

	require.NoError(t, v.Campaign(ctx, "v3"))
	assert.Equal(t, "v3", next(t, obs))
	l, err := g.Leader(ctx)
	require.NoError(t, err)
	assert.Equal(t, "v3", string(l.Kvs[0].Value))
	assert.Equal(t, v.Key(), string(l.Kvs[0].Key))

	gLeads := campaignAsync(ctx, g, "gw")
	queued(t, c, name, 2)
	require.NoError(t, v.Proclaim(ctx, "v3b"))
	assert.Equal(t, "v3b", next(t, obs))
	require.NoError(t, v.Resign(ctx))
	require.NoError(t, waitErr(t, gLeads, 10*time.Second, "etcdgw Campaign"))
	assert.Equal(t, "gw", next(t, obs))

	vl, err := v.Leader(ctx)
	require.NoError(t, err)
	assert.Equal(t, "gw", string(vl.Kvs[0].Value), "clientv3 sees etcdgw's leader")
	vLeads := make(chan error, 1)
	go func() { vLeads <- v.Campaign(ctx, "v3c") }()
	queued(t, c, name, 2)
	require.NoError(t, g.Proclaim(ctx, "gw2"))
	assert.Equal(t, "gw2", next(t, obs))
	require.NoError(t, g.Resign(ctx))
	require.NoError(t, waitErr(t, vLeads, 10*time.Second, "clientv3 Campaign"))
	assert.Equal(t, "v3c", next(t, obs))
	require.NoError(t, v.Resign(ctx))
	assert.Equal(t, "none", next(t, obs))
	cancel()
	for range obs {
	}
}
