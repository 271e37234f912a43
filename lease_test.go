package etcdgw_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcdgw/etcdgw"
)

func keyExists(t *testing.T, c *etcdgw.Client, key string) bool {
	t.Helper()
	r, err := c.Get(testCtx(t), key)
	require.NoError(t, err)
	return len(r.Kvs) == 1
}

func TestLeaseExpiresKeys(t *testing.T) {
	c, _ := prefixedClient(t)
	ctx := testCtx(t)
	g, err := c.Grant(ctx, 2)
	require.NoError(t, err)
	assert.Positive(t, g.ID)
	assert.Equal(t, int64(2), g.TTL)
	start := time.Now()
	_, err = c.Set(ctx, "k", "v", etcdgw.WithLease(g.ID))
	require.NoError(t, err)

	time.Sleep(time.Until(start.Add(time.Second))) // the assertion is about elapsed time itself
	assert.True(t, keyExists(t, c, "k"), "alive at 1s")
	require.Eventually(t, func() bool { return !keyExists(t, c, "k") }, 4*time.Second, 50*time.Millisecond, "gone by 4s")
	assert.GreaterOrEqual(t, time.Since(start), 2*time.Second, "not before its TTL")
	_, err = c.KeepAliveOnce(ctx, g.ID)
	assert.ErrorIs(t, err, etcdgw.ErrLeaseNotFound)
}

func TestRevokeDeletesAttachedKeys(t *testing.T) {
	c, _ := prefixedClient(t)
	ctx := testCtx(t)
	g, err := c.Grant(ctx, 60)
	require.NoError(t, err)
	for _, k := range []string{"a", "b", "c"} {
		_, err := c.Set(ctx, k, 1, etcdgw.WithLease(g.ID))
		require.NoError(t, err)
	}
	_, err = c.Set(ctx, "free", 1)
	require.NoError(t, err)

	ttl, err := c.TimeToLive(ctx, g.ID, true)
	require.NoError(t, err)
	assert.Equal(t, g.ID, ttl.ID)
	assert.Equal(t, int64(60), ttl.GrantedTTL)
	assert.InDelta(t, 60, ttl.TTL, 2)
	assert.ElementsMatch(t, []string{"a", "b", "c"}, ttl.Keys, "attached keys, key prefix stripped")
	noKeys, err := c.TimeToLive(ctx, g.ID, false)
	require.NoError(t, err)
	assert.Empty(t, noKeys.Keys)

	list, err := c.Leases(ctx)
	require.NoError(t, err)
	assert.Contains(t, list.Leases, g.ID)

	_, err = c.Revoke(ctx, g.ID)
	require.NoError(t, err)
	all, err := c.ReadDir(ctx, "")
	require.NoError(t, err)
	assert.Equal(t, []string{"free"}, keys(all.Kvs), "every attached key deleted at once")

	gone, err := c.TimeToLive(ctx, g.ID, true)
	require.NoError(t, err)
	assert.Equal(t, int64(-1), gone.TTL)
	_, err = c.Revoke(ctx, g.ID)
	assert.ErrorIs(t, err, etcdgw.ErrLeaseNotFound)
	_, err = c.KeepAliveOnce(ctx, g.ID)
	assert.ErrorIs(t, err, etcdgw.ErrLeaseNotFound)
	list, err = c.Leases(ctx)
	require.NoError(t, err)
	assert.NotContains(t, list.Leases, g.ID)
}

func TestGrantWithIDAndBadInput(t *testing.T) {
	c, _ := prefixedClient(t)
	ctx := testCtx(t)
	id := etcdgw.LeaseID(time.Now().UnixNano()&0xffffffff + 1000)
	g, err := c.Grant(ctx, 30, etcdgw.WithLease(id))
	require.NoError(t, err)
	assert.Equal(t, id, g.ID)
	_, err = c.Grant(ctx, 30, etcdgw.WithLease(id))
	assert.ErrorIs(t, err, etcdgw.ErrLeaseExists)
	_, err = c.Set(ctx, "k", 1, etcdgw.WithLease(id+1))
	assert.ErrorIs(t, err, etcdgw.ErrLeaseNotFound, "a put with an unknown lease")
	t.Cleanup(func() { c.Revoke(context.Background(), id) })

	for name, err := range map[string]error{
		"Grant 0":         func() error { _, err := c.Grant(ctx, 0); return err }(),
		"Grant -1":        func() error { _, err := c.Grant(ctx, -1); return err }(),
		"Revoke -1":       func() error { _, err := c.Revoke(ctx, -1); return err }(),
		"KeepAliveOnce 0": func() error { _, err := c.KeepAliveOnce(ctx, 0); return err }(),
		"KeepAlive -5":    func() error { _, err := c.KeepAlive(ctx, -5); return err }(),
		"TimeToLive 0":    func() error { _, err := c.TimeToLive(ctx, 0, true); return err }(),
	} {
		assert.ErrorIs(t, err, etcdgw.ErrInvalidArgument, name)
	}
	_, err = c.Grant(ctx, 10_000_000_000)
	assert.ErrorIs(t, err, etcdgw.ErrLeaseTTLTooLarge, "the server's typed error")
}

func TestKeepAliveHoldsWhileSiblingExpires(t *testing.T) {
	c, _ := prefixedClient(t)
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	kept, err := c.Grant(ctx, 2)
	require.NoError(t, err)
	sibling, err := c.Grant(ctx, 2)
	require.NoError(t, err)
	_, err = c.Set(ctx, "kept", 1, etcdgw.WithLease(kept.ID))
	require.NoError(t, err)
	_, err = c.Set(ctx, "sibling", 1, etcdgw.WithLease(sibling.ID))
	require.NoError(t, err)

	ch, err := c.KeepAlive(ctx, kept.ID)
	require.NoError(t, err)
	start := time.Now()
	renewals := 0
	for time.Since(start) < 5*time.Second {
		select {
		case r, ok := <-ch:
			require.True(t, ok, "the channel stays open while the lease lives")
			assert.Equal(t, kept.ID, r.ID)
			assert.Positive(t, r.TTL)
			renewals++
		case <-time.After(3 * time.Second):
			t.Fatal("no renewal for 3s")
		}
	}
	assert.GreaterOrEqual(t, renewals, 5, "renewed about every TTL/3")
	assert.True(t, keyExists(t, c, "kept"), "kept alive past two TTLs")
	assert.False(t, keyExists(t, c, "sibling"), "the lease without keepalive expired")

	cancel()
	stop := time.Now()
	for range ch {
	}
	assert.Less(t, time.Since(stop), 100*time.Millisecond, "closed promptly when ctx ends")
}

func TestKeepAliveClosesWhenRevokedElsewhere(t *testing.T) {
	c, _ := prefixedClient(t)
	other := newClient(t)
	ctx := testCtx(t)
	g, err := c.Grant(ctx, 3)
	require.NoError(t, err)
	ch, err := c.KeepAlive(ctx, g.ID)
	require.NoError(t, err)
	<-ch
	_, err = other.Revoke(ctx, g.ID)
	require.NoError(t, err)
	revoked := time.Now()
	deadline := time.After(3 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				assert.Less(t, time.Since(revoked), 1100*time.Millisecond, "within one renewal period (TTL/3)")
				return
			}
		case <-deadline:
			t.Fatal("KeepAlive channel still open after the lease was revoked")
		}
	}
}

func TestKeepAliveSlowReaderStillRenews(t *testing.T) {
	c, _ := prefixedClient(t)
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	g, err := c.Grant(ctx, 2)
	require.NoError(t, err)
	_, err = c.Set(ctx, "k", 1, etcdgw.WithLease(g.ID))
	require.NoError(t, err)
	ch, err := c.KeepAlive(ctx, g.ID)
	require.NoError(t, err)
	// Nobody reads for two TTLs: renewals go on, the key stays. A loop
	// rather than require.Never, whose last check can still run after it
	// returns, and then fails the test on a closed client.
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for end := time.Now().Add(4500 * time.Millisecond); time.Now().Before(end); <-tick.C {
		require.True(t, keyExists(t, c, "k"), "the key of a lease kept alive expired")
	}
	r, ok := <-ch
	require.True(t, ok)
	assert.Positive(t, r.TTL)
	ttl, err := c.TimeToLive(ctx, g.ID, false)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, ttl.TTL, int64(1), "recently renewed")
}

func TestWithTTLMakesKeysExpire(t *testing.T) {
	c, _ := prefixedClient(t, etcdgw.WithTTL(2))
	ctx := testCtx(t)
	start := time.Now()
	_, err := c.Set(ctx, "k", "v")
	require.NoError(t, err)
	got, err := c.Get(ctx, "k")
	require.NoError(t, err)
	require.Len(t, got.Kvs, 1)
	lease := etcdgw.LeaseID(got.Kvs[0].Lease)
	require.Positive(t, lease, "Set attached a lease")
	ttl, err := c.TimeToLive(ctx, lease, true)
	require.NoError(t, err)
	assert.Equal(t, int64(2), ttl.GrantedTTL)
	assert.Equal(t, []string{"k"}, ttl.Keys)

	// SetNX on an existing key does not write, and revokes its unused lease.
	nx, err := c.SetNX(ctx, "k", "other")
	require.NoError(t, err)
	assert.False(t, nx.Succeeded)
	list, err := c.Leases(ctx)
	require.NoError(t, err)
	leasesBefore := len(list.Leases)

	// An explicit lease wins over the TTL option.
	long, err := c.Grant(ctx, 60)
	require.NoError(t, err)
	_, err = c.Set(ctx, "pinned", "v", etcdgw.WithLease(long.ID))
	require.NoError(t, err)
	list, err = c.Leases(ctx)
	require.NoError(t, err)
	assert.Len(t, list.Leases, leasesBefore+1, "only the explicit lease was added")

	require.Eventually(t, func() bool { return !keyExists(t, c, "k") }, 5*time.Second, 50*time.Millisecond)
	assert.GreaterOrEqual(t, time.Since(start), 2*time.Second)
	assert.True(t, keyExists(t, c, "pinned"))
	_, _ = c.Revoke(ctx, long.ID)
}

func TestKeepAliveSurvivesRestart(t *testing.T) {
	s := newServer(t, etcdtestConfig{})
	c := newClientOf(t, s.Endpoint())
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	g, err := c.Grant(ctx, 3)
	require.NoError(t, err)
	_, err = c.Set(ctx, "k", 1, etcdgw.WithLease(g.ID))
	require.NoError(t, err)
	ch, err := c.KeepAlive(ctx, g.ID)
	require.NoError(t, err)
	<-ch
	require.NoError(t, s.Restart())
	// Renewals resume after the restart, and the lease outlives its TTL.
	deadline := time.After(10 * time.Second)
	renewed := 0
	for renewed < 4 {
		select {
		case _, ok := <-ch:
			require.True(t, ok, "the lease was kept through the restart")
			renewed++
		case <-deadline:
			t.Fatal("no renewals after the restart")
		}
	}
	assert.True(t, keyExists(t, c, "k"))
	ttl, err := c.TimeToLive(ctx, g.ID, false)
	require.NoError(t, err)
	assert.Positive(t, ttl.TTL)
}

func TestKeepAliveClosesWhenUnreachablePastTTL(t *testing.T) {
	s := newServer(t, etcdtestConfig{})
	c := newClientOf(t, s.Endpoint())
	ctx := testCtx(t)
	g, err := c.Grant(ctx, 3)
	require.NoError(t, err)
	ch, err := c.KeepAlive(ctx, g.ID)
	require.NoError(t, err)
	var lastRenewal time.Time
	select {
	case <-ch:
		lastRenewal = time.Now()
	case <-time.After(5 * time.Second):
		t.Fatal("no first renewal")
	}
	require.NoError(t, s.Stop())
	stopped := time.Now()
	deadline := time.After(8 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if ok {
				lastRenewal = time.Now()
				continue
			}
			closedAt := time.Now()
			assert.Less(t, closedAt.Sub(lastRenewal), 3*time.Second+500*time.Millisecond, "closed once the TTL ran out")
			assert.Greater(t, closedAt.Sub(stopped), 500*time.Millisecond, "not at the first failed renewal")
			return
		case <-deadline:
			t.Fatalf("channel still open %v after etcd stopped", time.Since(stopped))
		}
	}
}
