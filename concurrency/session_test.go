package concurrency_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcdgw/etcdgw"
	"github.com/etcdgw/etcdgw/concurrency"
)

// A session grants a 60 s lease by default and keeps it alive; Close ends it
// with ErrSessionClosed and revokes the lease; a second Close does nothing.
func TestSessionCloseRevokes(t *testing.T) {
	c := newClient(t)
	ctx := testCtx(t)
	s, err := concurrency.NewSession(c)
	require.NoError(t, err)
	assert.Same(t, c, s.Client())
	ttl, err := c.TimeToLive(ctx, s.Lease(), false)
	require.NoError(t, err)
	assert.Equal(t, int64(60), ttl.GrantedTTL)
	assert.False(t, isClosed(s.Done()))
	assert.NoError(t, s.Ctx().Err())

	require.NoError(t, s.Close())
	assert.True(t, isClosed(s.Done()), "Done closes at Close")
	assert.ErrorIs(t, context.Cause(s.Ctx()), concurrency.ErrSessionClosed)
	assert.NotErrorIs(t, context.Cause(s.Ctx()), concurrency.ErrSessionExpired)
	ttl, err = c.TimeToLive(ctx, s.Lease(), false)
	require.NoError(t, err)
	assert.Equal(t, int64(-1), ttl.TTL, "Close revoked the lease")
	assert.NoError(t, s.Close())
}

// Orphan ends the session and keeps the lease; WithTTL sets its TTL.
func TestSessionOrphanKeepsLease(t *testing.T) {
	c := newClient(t)
	ctx := testCtx(t)
	s := newSession(t, c, concurrency.WithTTL(30))
	s.Orphan()
	assert.True(t, isClosed(s.Done()))
	assert.ErrorIs(t, context.Cause(s.Ctx()), concurrency.ErrSessionClosed)
	ttl, err := c.TimeToLive(ctx, s.Lease(), false)
	require.NoError(t, err)
	assert.Equal(t, int64(30), ttl.GrantedTTL)
	assert.Positive(t, ttl.TTL, "Orphan keeps the lease")
	_, err = c.Revoke(ctx, s.Lease())
	require.NoError(t, err)
}

// WithLease keeps an existing lease; a lease that is gone fails NewSession.
func TestSessionWithLease(t *testing.T) {
	c := newClient(t)
	ctx := testCtx(t)
	g, err := c.Grant(ctx, 20)
	require.NoError(t, err)
	s := newSession(t, c, concurrency.WithLease(g.ID))
	assert.Equal(t, g.ID, s.Lease())
	require.NoError(t, s.Close())
	ttl, err := c.TimeToLive(ctx, g.ID, false)
	require.NoError(t, err)
	assert.Equal(t, int64(-1), ttl.TTL, "Close revokes a WithLease lease too")

	_, err = concurrency.NewSession(c, concurrency.WithLease(g.ID))
	assert.ErrorIs(t, err, etcdgw.ErrLeaseNotFound)
}

// The end of WithContext's ctx ends the session with ErrSessionClosed and
// leaves the lease alone; Ctx carries the ctx's values.
func TestSessionWithContext(t *testing.T) {
	c := newClient(t)
	type key struct{}
	ctx, cancel := context.WithCancel(context.WithValue(testCtx(t), key{}, "v"))
	s := newSession(t, c, concurrency.WithContext(ctx))
	assert.Equal(t, "v", s.Ctx().Value(key{}))
	cancel()
	require.True(t, closedWithin(s.Done(), 10*time.Second), "the session ends with its context")
	assert.ErrorIs(t, context.Cause(s.Ctx()), concurrency.ErrSessionClosed)
	ttl, err := c.TimeToLive(testCtx(t), s.Lease(), false)
	require.NoError(t, err)
	assert.Positive(t, ttl.TTL)
}

// A lease revoked elsewhere ends the session at its next renewal, with
// ErrSessionExpired.
func TestSessionLeaseRevoked(t *testing.T) {
	c := newClient(t)
	s := newSession(t, c, concurrency.WithTTL(3))
	_, err := newClient(t).Revoke(testCtx(t), s.Lease())
	require.NoError(t, err)
	require.True(t, closedWithin(s.Done(), 10*time.Second), "the session ends at the next renewal (every second)")
	assert.ErrorIs(t, context.Cause(s.Ctx()), concurrency.ErrSessionExpired)
	assert.NoError(t, s.Close(), "closing a session whose lease is gone")
}

// A session cut off from etcd ends by its own clock, at the latest at the
// send time of its last renewal plus the TTL, while etcd still has the lease.
func TestSessionExpiresByOwnClock(t *testing.T) {
	const delay = 500 * time.Millisecond
	p := newSlowProxy(t, delay)
	c := newClient(t, etcdgw.WithEndpoints(p.Endpoint()))
	const ttl = 3 * time.Second
	s, err := concurrency.NewSession(c, concurrency.WithTTL(3))
	require.NoError(t, err)
	defer s.Orphan()
	cutAt := time.Now()
	p.Cut()
	require.True(t, closedWithin(s.Done(), ttl+2*time.Second), "no renewal for a TTL ends the session")
	assert.Less(t, time.Since(cutAt), ttl+delay, "by the client's clock, from the send time of the last renewal")
	cause := context.Cause(s.Ctx())
	assert.ErrorIs(t, cause, concurrency.ErrSessionExpired)
	assert.Contains(t, cause.Error(), "not renewed")
	r, err := newClient(t).TimeToLive(testCtx(t), s.Lease(), false)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, r.TTL, int64(0), "etcd still had the lease when the session ended")
}

func TestEndCause(t *testing.T) {
	live := context.Background()
	gone, cancel := context.WithCancelCause(live)
	cancel(errors.New("mine"))
	ttl := 3 * time.Second
	for _, tc := range []struct {
		name   string
		parent context.Context
		since  time.Duration
		want   error
		text   string
	}{
		{"context ended", gone, 0, concurrency.ErrSessionClosed, "mine"},
		{"closed a TTL after the last renewal", live, ttl, concurrency.ErrSessionExpired, "not renewed"},
		{"closed two thirds of a TTL after", live, 2 * time.Second, concurrency.ErrSessionExpired, "not renewed"},
		{"closed at a renewal", live, time.Second, concurrency.ErrSessionExpired, "lease gone"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := concurrency.EndCause(tc.parent, tc.since, ttl)
			assert.ErrorIs(t, got, tc.want)
			assert.Contains(t, got.Error(), tc.text)
		})
	}
}
