package concurrency_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcdgw/etcdgw"
	"github.com/etcdgw/etcdgw/concurrency"
	"github.com/etcdgw/etcdgw/internal/etcdtest"
)

// lockResult is the outcome of a Lock run in the background.
func lockAsync(ctx context.Context, m *concurrency.Mutex) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- m.Lock(ctx) }()
	return ch
}

// waitErr returns what ch delivers within d, failing the test otherwise.
func waitErr(t *testing.T, ch <-chan error, d time.Duration, what string) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(d):
		t.Fatalf("%s: no answer within %v", what, d)
		return nil
	}
}

// queued waits until n keys wait under the lock's name.
func queued(t *testing.T, c *etcdgw.Client, name string, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		r, err := c.Get(context.Background(), name+"/", etcdgw.WithPrefix(), etcdgw.WithCountOnly())
		return err == nil && r.Count == int64(n)
	}, 10*time.Second, 10*time.Millisecond, "%d keys under %s", n, name)
}

// guardedWrite writes key under m's IsOwner and reports whether it was applied.
func guardedWrite(ctx context.Context, c *etcdgw.Client, m *concurrency.Mutex, key, val string) (bool, error) {
	r, err := c.Txn(ctx).If(m.IsOwner()).Then(etcdgw.OpPut(key, val)).Commit()
	if err != nil {
		return false, err
	}
	return r.Succeeded, nil
}

// The key layout is clientv3's: name/<lease in hex>, under the key prefix.
func TestMutexKeyLayout(t *testing.T) {
	p := testPrefix(t)
	c := newClient(t, etcdgw.WithKeyPrefix(p))
	raw := newClient(t)
	ctx := testCtx(t)
	s := newSession(t, c)
	m := concurrency.NewMutex(s, "lock")
	assert.Equal(t, fmt.Sprintf("lock/%x", int64(s.Lease())), m.Key())
	require.NoError(t, m.Lock(ctx))
	r, err := raw.Get(ctx, p+m.Key())
	require.NoError(t, err)
	require.Len(t, r.Kvs, 1, "the key lives under the client's key prefix")
	assert.Equal(t, m.Token(), r.Kvs[0].CreateRevision, "the token is the key's create revision")
	assert.Equal(t, int64(s.Lease()), r.Kvs[0].Lease)
	assert.Empty(t, r.Kvs[0].Value, "an empty raw value, whatever the serializer")
	require.NoError(t, m.Lock(ctx), "locking a held lock does nothing")
	require.NoError(t, m.Unlock(ctx))
	r, err = raw.Get(ctx, p+m.Key())
	require.NoError(t, err)
	assert.Empty(t, r.Kvs)
	require.NoError(t, m.Unlock(ctx), "unlocking a lock not held does nothing")
}

// Eight sessions take one lock ten times each: nobody else is ever inside,
// each holder's guarded write succeeds, and the tokens strictly increase.
func TestMutexExclusion(t *testing.T) {
	const sessions, rounds = 8, 10
	c := newClient(t, etcdgw.WithKeyPrefix(testPrefix(t)))
	ctx := testCtx(t)
	var inside atomic.Int32
	var mu sync.Mutex
	var tokens []int64
	var wg sync.WaitGroup
	errs := make(chan error, sessions)
	for i := range sessions {
		s := newSession(t, c)
		m := concurrency.NewMutex(s, "lock")
		wg.Go(func() {
			for j := range rounds {
				if err := m.Lock(ctx); err != nil {
					errs <- err
					return
				}
				if n := inside.Add(1); n != 1 {
					errs <- fmt.Errorf("session %d round %d: %d holders inside", i, j, n)
				}
				mu.Lock()
				tokens = append(tokens, m.Token())
				mu.Unlock()
				ok, err := guardedWrite(ctx, c, m, "data", fmt.Sprintf("%d-%d", i, j))
				if err != nil || !ok {
					errs <- fmt.Errorf("session %d round %d: guarded write: applied %v, %v", i, j, ok, err)
				}
				inside.Add(-1)
				if err := m.Unlock(ctx); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	require.Len(t, tokens, sessions*rounds)
	for i := 1; i < len(tokens); i++ {
		assert.Greater(t, tokens[i], tokens[i-1], "token %d", i)
	}
}

// TryLock takes a free lock, and returns ErrLocked without queueing when
// the lock is held; Done is closed when the lock is not held.
func TestMutexTryLock(t *testing.T) {
	c := newClient(t, etcdgw.WithKeyPrefix(testPrefix(t)))
	ctx := testCtx(t)
	a := concurrency.NewMutex(newSession(t, c), "lock")
	b := concurrency.NewMutex(newSession(t, c), "lock")
	assert.True(t, isClosed(b.Done()), "not held")
	require.NoError(t, a.TryLock(ctx))
	assert.False(t, isClosed(a.Done()))
	assert.ErrorIs(t, b.TryLock(ctx), concurrency.ErrLocked)
	queued(t, c, "lock", 1) // b's key is gone
	assert.Zero(t, b.Token())
	ok, err := guardedWrite(ctx, c, b, "x", "b")
	require.NoError(t, err)
	assert.False(t, ok, "IsOwner of a lock not held never holds")
	tokenA := a.Token()
	require.NoError(t, a.Unlock(ctx))
	assert.True(t, isClosed(a.Done()), "Done closes at Unlock")
	require.NoError(t, b.TryLock(ctx))
	assert.Greater(t, b.Token(), tokenA)
}

// A holder whose lease is revoked elsewhere sees Done close, its guarded
// write fails, and the next waiter gets the lock with a higher token.
func TestMutexHolderLeaseRevoked(t *testing.T) {
	c := newClient(t, etcdgw.WithKeyPrefix(testPrefix(t)))
	ctx := testCtx(t)
	sa := newSession(t, c)
	a := concurrency.NewMutex(sa, "lock")
	b := concurrency.NewMutex(newSession(t, c), "lock")
	require.NoError(t, a.Lock(ctx))
	tokenA := a.Token()
	bLocked := lockAsync(ctx, b)
	queued(t, c, "lock", 2)

	_, err := newClient(t).Revoke(ctx, sa.Lease())
	require.NoError(t, err)
	require.True(t, closedWithin(a.Done(), 10*time.Second), "the holder learns it lost the lock")
	ok, err := guardedWrite(ctx, c, a, "data", "a")
	require.NoError(t, err)
	assert.False(t, ok, "the lost holder's guarded write fails")
	require.NoError(t, waitErr(t, bLocked, 10*time.Second, "b.Lock"))
	assert.Greater(t, b.Token(), tokenA)
	ok, err = guardedWrite(ctx, c, b, "data", "b")
	require.NoError(t, err)
	assert.True(t, ok)
}

// A holder cut off from etcd learns it lost the lock by its own clock (Done)
// before etcd gives the lock to the next waiter.
func TestMutexHolderCutOffLearnsFirst(t *testing.T) {
	p := newSlowProxy(t, 500*time.Millisecond)
	prefix := testPrefix(t)
	ca := newClient(t, etcdgw.WithEndpoints(p.Endpoint()), etcdgw.WithKeyPrefix(prefix))
	cb := newClient(t, etcdgw.WithKeyPrefix(prefix))
	ctx := testCtx(t)
	sa, err := concurrency.NewSession(ca, concurrency.WithTTL(3))
	require.NoError(t, err)
	defer sa.Orphan()
	a := concurrency.NewMutex(sa, "lock")
	b := concurrency.NewMutex(newSession(t, cb), "lock")
	require.NoError(t, a.Lock(ctx))
	bLocked := lockAsync(ctx, b)
	queued(t, cb, "lock", 2)

	p.Cut()
	select {
	case <-a.Done():
	case err := <-bLocked:
		t.Fatalf("b got the lock (%v) before a learned it lost it", err)
	case <-time.After(10 * time.Second):
		t.Fatal("a never learned it lost the lock")
	}
	assert.ErrorIs(t, context.Cause(sa.Ctx()), concurrency.ErrSessionExpired, "by the session's clock")
	require.NoError(t, waitErr(t, bLocked, 10*time.Second, "b.Lock"))
	assert.Greater(t, b.Token(), a.Token())
}

// A waiter returns at once when its key is deleted while its session lives
// (ErrLockLost), and when its session ends (ErrSessionExpired); either way
// it leaves the queue.
func TestMutexWaiterReturnsAtOnce(t *testing.T) {
	c := newClient(t, etcdgw.WithKeyPrefix(testPrefix(t)))
	ctx := testCtx(t)
	a := concurrency.NewMutex(newSession(t, c), "lock")
	require.NoError(t, a.Lock(ctx))

	t.Run("key deleted", func(t *testing.T) {
		b := concurrency.NewMutex(newSession(t, c), "lock")
		bLocked := lockAsync(ctx, b)
		queued(t, c, "lock", 2)
		_, err := c.Delete(ctx, b.Key())
		require.NoError(t, err)
		assert.ErrorIs(t, waitErr(t, bLocked, 5*time.Second, "b.Lock"), concurrency.ErrLockLost)
		assert.True(t, isClosed(b.Done()))
	})
	t.Run("lease revoked", func(t *testing.T) {
		sb := newSession(t, c)
		b := concurrency.NewMutex(sb, "lock")
		bLocked := lockAsync(ctx, b)
		queued(t, c, "lock", 2)
		_, err := c.Revoke(ctx, sb.Lease())
		require.NoError(t, err)
		err = waitErr(t, bLocked, 5*time.Second, "b.Lock")
		assert.ErrorIs(t, err, concurrency.ErrSessionExpired)
		assert.NotErrorIs(t, err, concurrency.ErrLockLost)
	})
	t.Run("session closed", func(t *testing.T) {
		sb := newSession(t, c)
		b := concurrency.NewMutex(sb, "lock")
		bLocked := lockAsync(ctx, b)
		queued(t, c, "lock", 2)
		sb.Orphan()
		assert.ErrorIs(t, waitErr(t, bLocked, 5*time.Second, "b.Lock"), concurrency.ErrSessionExpired)
		queued(t, c, "lock", 1)
	})
	t.Run("ctx ended", func(t *testing.T) {
		b := concurrency.NewMutex(newSession(t, c), "lock")
		lctx, cancel := context.WithCancel(ctx)
		bLocked := lockAsync(lctx, b)
		queued(t, c, "lock", 2)
		cancel()
		assert.ErrorIs(t, waitErr(t, bLocked, 5*time.Second, "b.Lock"), context.Canceled)
		queued(t, c, "lock", 1)
	})
	require.NoError(t, a.Unlock(ctx))
}

// A waiter whose watch resumes after a compaction of the revisions it
// missed reads the queue again and still gets the lock, in order.
func TestMutexCompactionDuringWait(t *testing.T) {
	p, err := etcdtest.NewProxy(shared.ClientAddr())
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	prefix := testPrefix(t)
	c := newClient(t, etcdgw.WithKeyPrefix(prefix))
	cb := newClient(t, etcdgw.WithEndpoints(p.Endpoint("http")), etcdgw.WithKeyPrefix(prefix))
	ctx := testCtx(t)
	a := concurrency.NewMutex(newSession(t, c), "lock")
	x := concurrency.NewMutex(newSession(t, c), "lock")
	b := concurrency.NewMutex(newSession(t, cb), "lock")
	require.NoError(t, a.Lock(ctx))
	xLocked := lockAsync(ctx, x)
	queued(t, c, "lock", 2)
	bLocked := lockAsync(ctx, b)
	queued(t, c, "lock", 3)
	// b's session and reads share one connection, its watches (the key
	// before its own, and its own) another: b waits on its watches.
	require.Eventually(t, func() bool { return p.Conns() >= 2 }, 10*time.Second, 10*time.Millisecond)

	// b's watches go through p: cut them, and while b is away the key
	// before b's (x's) goes and the revisions b missed are compacted.
	p.SetRefuse(true)
	p.CutAll()
	require.NoError(t, a.Unlock(ctx))
	require.NoError(t, waitErr(t, xLocked, 10*time.Second, "x.Lock"))
	tokenX := x.Token()
	require.NoError(t, x.Unlock(ctx))
	r, err := c.Set(ctx, "filler", "v")
	require.NoError(t, err)
	require.NoError(t, c.Compact(ctx, r.Header.Revision))
	require.NoError(t, p.SetRefuse(false))

	require.NoError(t, waitErr(t, bLocked, 15*time.Second, "b.Lock"))
	assert.Greater(t, b.Token(), tokenX)
	ok, err := guardedWrite(ctx, cb, b, "data", "b")
	require.NoError(t, err)
	assert.True(t, ok)
}

// Done of a held lock closes when its session is closed, and the guarded
// write of the former holder fails.
func TestMutexDoneOnSessionClose(t *testing.T) {
	c := newClient(t, etcdgw.WithKeyPrefix(testPrefix(t)))
	ctx := testCtx(t)
	s, err := concurrency.NewSession(c)
	require.NoError(t, err)
	m := concurrency.NewMutex(s, "lock")
	require.NoError(t, m.Lock(ctx))
	require.NoError(t, s.Close())
	require.True(t, closedWithin(m.Done(), 5*time.Second))
	ok, err := guardedWrite(ctx, c, m, "data", "late")
	require.NoError(t, err)
	assert.False(t, ok)
	assert.ErrorIs(t, m.Lock(ctx), concurrency.ErrSessionExpired, "a session that ended cannot lock")
	require.NoError(t, m.Unlock(ctx))
}

// Lock and Campaign with a lease that is gone, before the session noticed,
// fail with ErrSessionExpired.
func TestLockWithLeaseGone(t *testing.T) {
	c := newClient(t, etcdgw.WithKeyPrefix(testPrefix(t)))
	ctx := testCtx(t)
	s := newSession(t, c)
	_, err := c.Revoke(ctx, s.Lease())
	require.NoError(t, err)
	err = concurrency.NewMutex(s, "lock").Lock(ctx)
	assert.ErrorIs(t, err, concurrency.ErrSessionExpired)
	assert.ErrorIs(t, err, etcdgw.ErrLeaseNotFound)
	err = concurrency.NewElection(s, "elect").Campaign(ctx, "v")
	assert.ErrorIs(t, err, concurrency.ErrSessionExpired)
}
