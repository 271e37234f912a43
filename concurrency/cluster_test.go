package concurrency_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcdgw/etcdgw"
	"github.com/etcdgw/etcdgw/concurrency"
	"github.com/etcdgw/etcdgw/internal/etcdtest"
)

// On a 3-member cluster, a holder keeps its lock when the leader stops: its
// renewals move to the other members within the TTL, its guarded write
// still lands, and the waiter on another member gets the lock only at
// Unlock, with a higher token.
func TestMutexClusterLeaderStops(t *testing.T) {
	cl := etcdtest.NewCluster(t, 3, etcdtest.Config{Name: "conc"})
	leader := cl.Leader()
	require.GreaterOrEqual(t, leader, 0)
	other := (leader + 1) % 3
	ctx := testCtx(t)
	ca := newClient(t, etcdgw.WithEndpoints(cl.Endpoints()...))
	cb := newClient(t, etcdgw.WithEndpoints(cl.Member(other).Endpoint()))
	const ttl = 5 * time.Second
	a := concurrency.NewMutex(newSession(t, ca, concurrency.WithTTL(5)), "lock")
	b := concurrency.NewMutex(newSession(t, cb, concurrency.WithTTL(5)), "lock")
	require.NoError(t, a.Lock(ctx))
	bLocked := lockAsync(ctx, b)
	queued(t, cb, "lock", 2)

	require.NoError(t, cl.Member(leader).Stop())
	assert.False(t, closedWithin(a.Done(), ttl+time.Second), "the holder kept its lock past a TTL")
	select {
	case err := <-bLocked:
		t.Fatalf("the waiter got the lock while it was held: %v", err)
	default:
	}
	ok, err := guardedWrite(ctx, ca, a, "data", "a")
	require.NoError(t, err)
	assert.True(t, ok, "the holder's guarded write lands")
	tokenA := a.Token()
	require.NoError(t, a.Unlock(ctx))
	assert.Zero(t, a.Token(), "no token once unlocked")
	require.NoError(t, waitErr(t, bLocked, 10*time.Second, "b.Lock"))
	assert.Greater(t, b.Token(), tokenA)
}
