package concurrency_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcdgw/etcdgw"
	"github.com/etcdgw/etcdgw/concurrency"
)

// campaignAsync runs Campaign in the background.
func campaignAsync(ctx context.Context, e *concurrency.Election, val string) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- e.Campaign(ctx, val) }()
	return ch
}

// leaderOf describes an observation: the leader's value, or "none".
func leaderOf(r etcdgw.GetResponse) string {
	if len(r.Kvs) == 0 {
		return "none"
	}
	return string(r.Kvs[0].Value)
}

// next returns the next observation within 10 s.
func next(t *testing.T, ch <-chan etcdgw.GetResponse) string {
	t.Helper()
	select {
	case r, ok := <-ch:
		require.True(t, ok, "Observe closed")
		return leaderOf(r)
	case <-time.After(10 * time.Second):
		t.Fatal("no observation within 10s")
		return ""
	}
}

// Candidates lead in turn; Observe reports "no leader" first, then each
// leader, each Proclaim, and "no leader" again, in order; Leader follows.
func TestElectionObserveOrder(t *testing.T) {
	c := newClient(t, etcdgw.WithKeyPrefix(testPrefix(t)))
	ctx := testCtx(t)
	watcher := concurrency.NewElection(newSession(t, c), "elect")
	octx, cancel := context.WithCancel(ctx)
	defer cancel()
	obs := watcher.Observe(octx)
	assert.Equal(t, "none", next(t, obs))
	_, err := watcher.Leader(ctx)
	assert.ErrorIs(t, err, concurrency.ErrElectionNoLeader)

	a := concurrency.NewElection(newSession(t, c), "elect")
	b := concurrency.NewElection(newSession(t, c), "elect")
	require.NoError(t, a.Campaign(ctx, "a"))
	assert.Equal(t, "a", next(t, obs))
	sa := a.Key()
	assert.Contains(t, sa, "elect/")
	assert.Positive(t, a.Rev())
	bLeads := campaignAsync(ctx, b, "b")
	queued(t, c, "elect", 2)
	require.NoError(t, a.Proclaim(ctx, "a2"))
	assert.Equal(t, "a2", next(t, obs))
	l, err := b.Leader(ctx)
	require.NoError(t, err)
	assert.Equal(t, "a2", string(l.Kvs[0].Value))
	assert.Equal(t, sa, string(l.Kvs[0].Key))

	revA := a.Rev()
	require.NoError(t, a.Resign(ctx))
	assert.Zero(t, a.Rev(), "no Rev once resigned")
	require.NoError(t, waitErr(t, bLeads, 10*time.Second, "b.Campaign"))
	assert.Equal(t, "b", next(t, obs))
	assert.Greater(t, b.Rev(), revA)
	assert.ErrorIs(t, a.Proclaim(ctx, "x"), concurrency.ErrElectionNotLeader)

	require.NoError(t, b.Resign(ctx))
	assert.Equal(t, "none", next(t, obs), "Observe reports that nobody leads")
	cancel()
	for range obs {
	}
}

// Proclaim without leading, or after the key was deleted, is
// ErrElectionNotLeader; a leader whose key was deleted forgets it.
func TestElectionProclaimNotLeader(t *testing.T) {
	c := newClient(t, etcdgw.WithKeyPrefix(testPrefix(t)))
	ctx := testCtx(t)
	e := concurrency.NewElection(newSession(t, c), "elect")
	assert.ErrorIs(t, e.Proclaim(ctx, "v"), concurrency.ErrElectionNotLeader)
	require.NoError(t, e.Campaign(ctx, "v"))
	_, err := c.Delete(ctx, e.Key())
	require.NoError(t, err)
	assert.ErrorIs(t, e.Proclaim(ctx, "w"), concurrency.ErrElectionNotLeader)
	assert.Empty(t, e.Key())
	r, err := c.Get(ctx, "elect/", etcdgw.WithPrefix())
	require.NoError(t, err)
	assert.Empty(t, r.Kvs, "the failed Proclaim wrote nothing")
}

// A Resign that fails keeps the leadership, and a retried Resign resigns; a
// Resign after a Resign that succeeded returns nil.
func TestElectionResignRetry(t *testing.T) {
	c := newClient(t, etcdgw.WithKeyPrefix(testPrefix(t)))
	ctx := testCtx(t)
	e := concurrency.NewElection(newSession(t, c), "elect")
	require.NoError(t, e.Campaign(ctx, "v"))
	key, rev := e.Key(), e.Rev()

	failed, cancel := context.WithCancel(ctx)
	cancel()
	require.Error(t, e.Resign(failed))
	assert.Equal(t, key, e.Key(), "a failed Resign keeps the state")
	assert.Equal(t, rev, e.Rev())
	l, err := e.Leader(ctx)
	require.NoError(t, err)
	assert.Equal(t, key, string(l.Kvs[0].Key), "still the leader")

	require.NoError(t, e.Resign(ctx))
	_, err = e.Leader(ctx)
	assert.ErrorIs(t, err, concurrency.ErrElectionNoLeader, "the retried Resign resigned")
	require.NoError(t, e.Resign(ctx))
	assert.Empty(t, e.Key())
	assert.Zero(t, e.Rev())
}

// A Campaign that fails, with a context error or any other, removes its key;
// one whose key is deleted returns ErrLockLost at once.
func TestElectionCampaignFailureRemovesKey(t *testing.T) {
	prefix := testPrefix(t)
	c := newClient(t, etcdgw.WithKeyPrefix(prefix))
	ctx := testCtx(t)
	leader := concurrency.NewElection(newSession(t, c), "elect")
	// A leader's value larger than what b's client accepts in one answer:
	// b's wait fails with ErrResponseTooLarge, an error that is no
	// context's (clientv3 left the key behind, etcd #21128).
	require.NoError(t, leader.Campaign(ctx, fmt.Sprintf("%08000d", 1)))

	t.Run("not a context error", func(t *testing.T) {
		small := newClient(t, etcdgw.WithKeyPrefix(prefix), etcdgw.WithMaxResponseBytes(4096))
		b := concurrency.NewElection(newSession(t, small), "elect")
		err := b.Campaign(ctx, "b")
		require.ErrorIs(t, err, etcdgw.ErrResponseTooLarge)
		queued(t, c, "elect", 1)
		assert.Empty(t, b.Key())
	})
	t.Run("ctx ended", func(t *testing.T) {
		b := concurrency.NewElection(newSession(t, c), "elect")
		cctx, cancel := context.WithCancel(ctx)
		done := campaignAsync(cctx, b, "b")
		queued(t, c, "elect", 2)
		cancel()
		assert.ErrorIs(t, waitErr(t, done, 5*time.Second, "Campaign"), context.Canceled)
		queued(t, c, "elect", 1)
	})
	t.Run("key deleted", func(t *testing.T) {
		b := concurrency.NewElection(newSession(t, c), "elect")
		done := campaignAsync(ctx, b, "b")
		queued(t, c, "elect", 2)
		// The key is in etcd before Campaign, in its goroutine, records it.
		require.Eventually(t, func() bool { return b.Key() != "" }, 5*time.Second, time.Millisecond)
		_, err := c.Delete(ctx, b.Key())
		require.NoError(t, err)
		assert.ErrorIs(t, waitErr(t, done, 5*time.Second, "Campaign"), concurrency.ErrLockLost)
	})
	require.NoError(t, leader.Resign(ctx))
}

// ResumeElection leads with an earlier Election's key and revision.
func TestResumeElection(t *testing.T) {
	c := newClient(t, etcdgw.WithKeyPrefix(testPrefix(t)))
	ctx := testCtx(t)
	s := newSession(t, c)
	e := concurrency.NewElection(s, "elect")
	require.NoError(t, e.Campaign(ctx, "v"))
	r := concurrency.ResumeElection(s, "elect", e.Key(), e.Rev())
	require.NoError(t, r.Proclaim(ctx, "w"))
	l, err := r.Leader(ctx)
	require.NoError(t, err)
	assert.Equal(t, "w", string(l.Kvs[0].Value))
	require.NoError(t, r.Resign(ctx))
	assert.ErrorIs(t, e.Proclaim(ctx, "x"), concurrency.ErrElectionNotLeader)
}
